// The socket-free parts of webhook delivery: URL, signature, retry schedule, bounded queue.
#include "hooks/delivery.h"

#include <gtest/gtest.h>

#include <string>

namespace roomcast::hooks {
namespace {

using std::chrono::milliseconds;

TEST(ParseHttpUrl, HostPortAndPath) {
  auto parsed = parse_http_url("http://backend.internal:8080/hooks/roomcast?x=1");
  ASSERT_TRUE(std::holds_alternative<HttpTarget>(parsed));
  const auto& target = std::get<HttpTarget>(parsed);
  EXPECT_EQ(target.host, "backend.internal");
  EXPECT_EQ(target.port, "8080");
  EXPECT_EQ(target.path, "/hooks/roomcast?x=1");
  EXPECT_EQ(target.host_header, "backend.internal:8080");
}

TEST(ParseHttpUrl, DefaultsAndIpv6) {
  auto plain = parse_http_url("http://example.com");
  ASSERT_TRUE(std::holds_alternative<HttpTarget>(plain));
  EXPECT_EQ(std::get<HttpTarget>(plain).port, "80");
  EXPECT_EQ(std::get<HttpTarget>(plain).path, "/");
  EXPECT_FALSE(std::get<HttpTarget>(plain).tls);
  auto secure = parse_http_url("https://example.com/hook");
  ASSERT_TRUE(std::holds_alternative<HttpTarget>(secure));
  EXPECT_TRUE(std::get<HttpTarget>(secure).tls);
  EXPECT_EQ(std::get<HttpTarget>(secure).port, "443");
  EXPECT_EQ(std::get<HttpTarget>(secure).host_header, "example.com");
  auto v6 = parse_http_url("http://[::1]:9000/e");
  ASSERT_TRUE(std::holds_alternative<HttpTarget>(v6));
  EXPECT_EQ(std::get<HttpTarget>(v6).host, "::1");
  EXPECT_EQ(std::get<HttpTarget>(v6).port, "9000");
}

TEST(ParseHttpUrl, RefusesWhatItCannotUse) {
  for (const char* bad : {"ftp://x/", "example.com/hook", "http://", "https://", "http://:80/",
                          "http://host:0/", "http://host:65536/", "http://host:8x/",
                          "http://u:p@host/", "http://[::1/", "http://host/a b"}) {
    EXPECT_TRUE(std::holds_alternative<std::string>(parse_http_url(bad))) << bad;
  }
}

TEST(Sign, IsHexHmacSha256OfTheBody) {
  // RFC 4231, test case 2.
  EXPECT_EQ(sign("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_NE(sign("Jefe", "what do ya want for nothing!"),
            sign("Jefe", "what do ya want for nothing?"));
}

TEST(RetryDelay, DoublesUpToTheCeiling) {
  const milliseconds first{1000};
  const milliseconds most{30000};
  EXPECT_EQ(retry_delay(1, first, most), milliseconds(1000));
  EXPECT_EQ(retry_delay(2, first, most), milliseconds(2000));
  EXPECT_EQ(retry_delay(5, first, most), milliseconds(16000));
  EXPECT_EQ(retry_delay(6, first, most), milliseconds(30000));
  EXPECT_EQ(retry_delay(1000, first, most), milliseconds(30000));
}

TEST(EventQueue, KeepsEachLanesOrderUnderOneBoundForAll) {
  EventQueue queue(3, 2);
  EXPECT_TRUE(queue.push({"a1", "t", "x"}, 0));
  EXPECT_TRUE(queue.push({"b1", "t", "x"}, 1));
  EXPECT_TRUE(queue.push({"a2", "t", "x"}, 0));
  // The bound is the lanes' together: a fourth is dropped, whichever lane it is for.
  EXPECT_FALSE(queue.push({"b2", "t", "x"}, 1));
  EXPECT_EQ(queue.dropped(), 1u);
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_EQ(queue.waiting(0), 2u);
  EXPECT_EQ(queue.waiting(1), 1u);
  EXPECT_EQ(queue.pop(1)->id, "b1");
  EXPECT_FALSE(queue.pop(1).has_value());
  EXPECT_EQ(queue.pop(0)->id, "a1");
  EXPECT_EQ(queue.pop(0)->id, "a2");
  EXPECT_EQ(queue.size(), 0u);
}

TEST(EventQueue, KeepsOrderAndDropsTheNewestOverItsBound) {
  EventQueue queue(2);
  EXPECT_TRUE(queue.push({"1", "t", "a"}));
  EXPECT_TRUE(queue.push({"2", "t", "b"}));
  EXPECT_FALSE(queue.push({"3", "t", "c"}));
  EXPECT_EQ(queue.dropped(), 1u);
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.pop()->id, "1");
  EXPECT_TRUE(queue.push({"4", "t", "d"}));
  EXPECT_EQ(queue.pop()->id, "2");
  EXPECT_EQ(queue.pop()->id, "4");
  EXPECT_FALSE(queue.pop().has_value());
  EXPECT_EQ(queue.dropped(), 1u);
}

}  // namespace
}  // namespace roomcast::hooks
