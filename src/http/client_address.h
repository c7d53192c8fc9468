// Which address a request comes from. Behind a reverse proxy every client's TCP peer is
// the proxy, which names the client in a header; a header is believed only from a peer
// the operator trusts (--trusted-proxies), since any client can write any header.
//
// Pure: no I/O, no state beyond the parsed networks. Thread-safe once built.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "http/service.h"

namespace roomcast::http {

// The header a trusted proxy names the client in. Exactly one is read: a proxy appends to
// (or overwrites) the header it writes, and passes any other one on as the client wrote it.
enum class ForwardedHeader {
  kXForwardedFor,  // X-Forwarded-For: client, proxy1, proxy2 (nginx's $proxy_add_x_forwarded_for)
  kForwarded,  // RFC 7239: Forwarded: for=client, for="[2001:db8::1]:4711"
};

// A set of networks ("10.0.0.0/8", "::1/128"; a bare address is a network of one).
class TrustedProxies {
 public:
  TrustedProxies() = default;

  // Parses each entry; an invalid one throws std::invalid_argument naming it and why.
  static TrustedProxies parse(const std::vector<std::string>& networks);

  bool empty() const { return networks_.empty(); }
  bool contains(const boost::asio::ip::address& address) const;

 private:
  struct Network {
    boost::asio::ip::address_v6::bytes_type prefix_bytes{};  // IPv4 as v4-mapped IPv6
    unsigned prefix_bits = 0;  // of the 128
  };
  std::vector<Network> networks_;
};

// The client's address, as text: `peer` itself, unless `peer` is a trusted proxy and
// `header` names the client. Then it is the rightmost address of the header's chain that
// is not itself a trusted proxy: each proxy appends the address it received the request
// from, so whatever lies left of the first untrusted hop was written by the client and
// proves nothing. An unparsable entry (or RFC 7239's "unknown" and obfuscated names) ends
// the walk at the last hop known; a chain of trusted proxies only names its leftmost.
std::string client_address(const Request& request, const boost::asio::ip::address& peer,
                           const TrustedProxies& trusted, ForwardedHeader header);

// One entry of a forwarding header: "192.0.2.1", "192.0.2.1:8080", "2001:db8::1",
// "[2001:db8::1]:4711", optionally quoted (RFC 7239). Returns false if it is no address.
bool parse_forwarded_address(std::string_view text, boost::asio::ip::address& out);

}  // namespace roomcast::http
