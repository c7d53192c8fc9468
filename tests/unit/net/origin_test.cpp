#include <gtest/gtest.h>

#include "net/upgrade.h"

namespace roomcast::net {
namespace {

TEST(CheckOrigin, AcceptsWhatBrowsersSendInOrigin) {
  for (const char* origin : {"https://chat.example.com", "http://localhost:8080",
                             "http://127.0.0.1:3000", "https://[::1]:8443", "http://[2001:db8::1]",
                             "https://a-b.example.co.uk:65535", "chrome-extension://abcdef"}) {
    EXPECT_EQ(check_origin(origin), std::nullopt) << origin;
  }
}

TEST(CheckOrigin, RefusesWhatCanNeverMatchAnOrigin) {
  for (const char* origin : {"",
                             "chat.example.com",
                             "://chat.example.com",
                             "https://",
                             "https://chat.example.com/",
                             "https://chat.example.com/app",
                             "https://chat.example.com?x=1",
                             "https://x#y",
                             "https://user@chat.example.com",
                             "https://chat.example.com:",
                             "https://x:0",
                             "https://x:65536",
                             "https://x:80a",
                             "https://:80",
                             "https://[::1",
                             "https://[]",
                             "https://[::1]x",
                             "https://chat example.com",
                             "1http://x",
                             "ht tp://x",
                             "*"}) {
    const auto broken = check_origin(origin);
    ASSERT_NE(broken, std::nullopt) << origin;
    EXPECT_FALSE(broken->empty());
  }
}

}  // namespace
}  // namespace roomcast::net
