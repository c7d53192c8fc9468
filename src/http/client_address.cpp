#include "http/client_address.h"

#include <boost/beast/core/string.hpp>
#include <charconv>
#include <stdexcept>

namespace roomcast::http {
namespace {

namespace ip = boost::asio::ip;

ip::address_v6 as_v6(const ip::address& address) {
  return address.is_v4() ? ip::make_address_v6(ip::v4_mapped, address.to_v4()) : address.to_v6();
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Splits `list` at commas into trimmed elements, in order.
std::vector<std::string_view> split_list(std::string_view list) {
  std::vector<std::string_view> out;
  while (true) {
    const auto comma = list.find(',');
    out.push_back(trim(list.substr(0, comma)));
    if (comma == std::string_view::npos) return out;
    list.remove_prefix(comma + 1);
  }
}

// RFC 7239 section 4: an element is "pair;pair;...", each "token=value"; returns the value
// of its `for` parameter (empty if none).
std::string_view forwarded_for(std::string_view element) {
  while (!element.empty()) {
    const auto semicolon = element.find(';');
    const std::string_view pair = trim(element.substr(0, semicolon));
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && boost::beast::iequals(trim(pair.substr(0, eq)), "for")) {
      return trim(pair.substr(eq + 1));
    }
    if (semicolon == std::string_view::npos) break;
    element.remove_prefix(semicolon + 1);
  }
  return {};
}

// An IPv4 client reached over an IPv6 socket appears as ::ffff:a.b.c.d: one client, one
// spelling, so its budgets and limits are not split in two.
std::string canonical_text(const ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

}  // namespace

TrustedProxies TrustedProxies::parse(const std::vector<std::string>& networks) {
  TrustedProxies out;
  for (const std::string& text : networks) {
    const auto slash = text.find('/');
    boost::system::error_code ec;
    const auto address = ip::make_address(text.substr(0, slash), ec);
    if (ec) throw std::invalid_argument("'" + text + "' is not an address or network");
    const unsigned width = address.is_v4() ? 32 : 128;
    unsigned bits = width;
    if (slash != std::string::npos) {
      const std::string_view digits = std::string_view(text).substr(slash + 1);
      const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
      if (digits.empty() || err != std::errc() || end != digits.data() + digits.size() ||
          bits > width) {
        throw std::invalid_argument("'" + text + "': the prefix length must be 0 to " +
                                    std::to_string(width));
      }
    }
    Network network;
    network.prefix_bits = bits + (128 - width);  // an IPv4 network inside ::ffff:0:0/96
    network.prefix_bytes = as_v6(address).to_bytes();
    out.networks_.push_back(network);
  }
  return out;
}

bool TrustedProxies::contains(const ip::address& address) const {
  const auto bytes = as_v6(address).to_bytes();
  for (const Network& network : networks_) {
    unsigned bits = network.prefix_bits;
    bool match = true;
    for (std::size_t i = 0; i < bytes.size() && bits > 0 && match; ++i) {
      const unsigned take = bits >= 8 ? 8 : bits;
      const auto mask = static_cast<unsigned char>(0xFF00u >> take);
      match = (bytes[i] & mask) == (network.prefix_bytes[i] & mask);
      bits -= take;
    }
    if (match) return true;
  }
  return false;
}

bool parse_forwarded_address(std::string_view text, ip::address& out) {
  text = trim(text);
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    text = text.substr(1, text.size() - 2);
  }
  if (text.starts_with('[')) {  // [v6] or [v6]:port
    const auto close = text.find(']');
    if (close == std::string_view::npos) return false;
    text = text.substr(1, close - 1);
  } else if (text.find(':') == text.rfind(':') && text.find(':') != std::string_view::npos) {
    text = text.substr(0, text.find(':'));  // v4:port
  }
  boost::system::error_code ec;
  out = ip::make_address(text, ec);
  return !ec;
}

std::string client_address(const Request& request, const ip::address& peer,
                           const TrustedProxies& trusted, ForwardedHeader header) {
  if (!trusted.contains(peer)) return canonical_text(peer);
  // Beast names no X-Forwarded-For field: look it up by name. Several header lines are one
  // list, in order (RFC 9110 section 5.3).
  const std::string_view name =
      header == ForwardedHeader::kForwarded ? "Forwarded" : "X-Forwarded-For";
  std::vector<std::string_view> hops;
  for (auto [line, end] = request.equal_range(boost::beast::string_view(name.data(), name.size()));
       line != end; ++line) {
    for (const auto element : split_list({line->value().data(), line->value().size()})) {
      hops.push_back(header == ForwardedHeader::kForwarded ? forwarded_for(element) : element);
    }
  }
  ip::address client = peer;
  for (auto hop = hops.rbegin(); hop != hops.rend(); ++hop) {
    ip::address address;
    if (!parse_forwarded_address(*hop, address)) break;
    client = address;
    if (!trusted.contains(address)) break;
  }
  return canonical_text(client);
}

}  // namespace roomcast::http
