#include "http/client_address.h"

#include <gtest/gtest.h>

namespace roomcast::http {
namespace {

namespace ip = boost::asio::ip;

Request request_with(std::initializer_list<std::pair<std::string, std::string>> headers) {
  Request request{beast_http::verb::get, "/", 11};
  for (const auto& [name, value] : headers) request.insert(name, value);
  return request;
}

const TrustedProxies kProxies = TrustedProxies::parse({"127.0.0.1", "10.0.0.0/8", "fd00::/8"});

std::string xff_client(const Request& request, std::string_view peer) {
  return client_address(request, ip::make_address(peer), kProxies, ForwardedHeader::kXForwardedFor);
}

TEST(TrustedProxies, MatchesNetworksOfBothFamilies) {
  EXPECT_TRUE(kProxies.contains(ip::make_address("127.0.0.1")));
  EXPECT_FALSE(kProxies.contains(ip::make_address("127.0.0.2")));
  EXPECT_TRUE(kProxies.contains(ip::make_address("10.255.1.2")));
  EXPECT_FALSE(kProxies.contains(ip::make_address("11.0.0.1")));
  EXPECT_TRUE(kProxies.contains(ip::make_address("fd12::1")));
  EXPECT_FALSE(kProxies.contains(ip::make_address("fe80::1")));
  EXPECT_TRUE(kProxies.contains(ip::make_address("::ffff:10.1.1.1")));  // v4 on a v6 socket
  EXPECT_FALSE(TrustedProxies{}.contains(ip::make_address("127.0.0.1")));
  EXPECT_TRUE(TrustedProxies::parse({"0.0.0.0/0"}).contains(ip::make_address("8.8.8.8")));
  EXPECT_FALSE(TrustedProxies::parse({"0.0.0.0/0"}).contains(ip::make_address("2001:db8::1")));
}

TEST(TrustedProxies, RefusesWhatIsNoNetwork) {
  for (const char* bad : {"", "localhost", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8x",
                          "10.0.0.0/-1", "1.2.3"}) {
    EXPECT_THROW(TrustedProxies::parse({bad}), std::invalid_argument) << bad;
  }
}

TEST(ClientAddress, AnUntrustedPeerIsTheClientWhateverItsHeadersSay) {
  const auto request = request_with({{"X-Forwarded-For", "1.1.1.1"}});
  EXPECT_EQ(xff_client(request, "203.0.113.9"), "203.0.113.9");
}

TEST(ClientAddress, ATrustedProxyNamesTheRightmostUntrustedHop) {
  // The client claims to be 6.6.6.6; the proxy appended the address it really saw.
  const auto request = request_with({{"X-Forwarded-For", "6.6.6.6, 198.51.100.4, 10.0.0.2"}});
  EXPECT_EQ(xff_client(request, "127.0.0.1"), "198.51.100.4");
}

TEST(ClientAddress, SeveralHeaderLinesAreOneList) {
  const auto request =
      request_with({{"X-Forwarded-For", "6.6.6.6"}, {"X-Forwarded-For", "198.51.100.4"}});
  EXPECT_EQ(xff_client(request, "10.1.1.1"), "198.51.100.4");
}

TEST(ClientAddress, WithoutAHeaderOrWithGarbageTheProxyItselfIsTheClient) {
  EXPECT_EQ(xff_client(request_with({}), "127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(xff_client(request_with({{"X-Forwarded-For", "not an address"}}), "127.0.0.1"),
            "127.0.0.1");
  // Garbage left of a good hop ends the walk at that hop.
  EXPECT_EQ(xff_client(request_with({{"X-Forwarded-For", "junk, 198.51.100.4"}}), "127.0.0.1"),
            "198.51.100.4");
}

TEST(ClientAddress, AChainOfTrustedProxiesNamesItsLeftmost) {
  EXPECT_EQ(xff_client(request_with({{"X-Forwarded-For", "10.0.0.7, 10.0.0.8"}}), "127.0.0.1"),
            "10.0.0.7");
}

TEST(ClientAddress, PortsBracketsAndMappedAddressesAreOneSpelling) {
  EXPECT_EQ(xff_client(request_with({{"X-Forwarded-For", "198.51.100.4:5123"}}), "127.0.0.1"),
            "198.51.100.4");
  EXPECT_EQ(xff_client(request_with({{"X-Forwarded-For", "[2001:db8::1]:443"}}), "127.0.0.1"),
            "2001:db8::1");
  EXPECT_EQ(xff_client(request_with({{"X-Forwarded-For", "2001:db8::1"}}), "127.0.0.1"),
            "2001:db8::1");
  EXPECT_EQ(xff_client(request_with({{"X-Forwarded-For", "::ffff:198.51.100.4"}}), "127.0.0.1"),
            "198.51.100.4");
  EXPECT_EQ(xff_client(request_with({}), "::ffff:203.0.113.9"), "203.0.113.9");
}

TEST(ClientAddress, Rfc7239ForwardedIsReadOnlyWhenConfigured) {
  const auto request = request_with(
      {{"Forwarded", R"(for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.1)"},
       {"X-Forwarded-For", "198.51.100.4"}});
  EXPECT_EQ(
      client_address(request, ip::make_address("127.0.0.1"), kProxies, ForwardedHeader::kForwarded),
      "2001:db8:cafe::17");
  EXPECT_EQ(xff_client(request, "127.0.0.1"), "198.51.100.4");
  // An obfuscated or unknown hop ends the walk at the proxy.
  const auto hidden = request_with({{"Forwarded", "for=_hidden, for=unknown"}});
  EXPECT_EQ(
      client_address(hidden, ip::make_address("127.0.0.1"), kProxies, ForwardedHeader::kForwarded),
      "127.0.0.1");
}

}  // namespace
}  // namespace roomcast::http
