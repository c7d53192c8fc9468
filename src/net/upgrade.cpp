#include "net/upgrade.h"

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>

namespace roomcast::net {

namespace bhttp = boost::beast::http;

namespace {

std::string_view to_view(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

}  // namespace

ws::UpgradeRequest upgrade_fields(const http::Request& request) {
  ws::UpgradeRequest fields;
  fields.method = to_view(request.method_string());
  fields.http_version = static_cast<int>(request.version());
  fields.host = to_view(request[bhttp::field::host]);
  fields.upgrade = to_view(request[bhttp::field::upgrade]);
  fields.connection = to_view(request[bhttp::field::connection]);
  fields.key = to_view(request[bhttp::field::sec_websocket_key]);
  fields.version = to_view(request[bhttp::field::sec_websocket_version]);
  for (const auto& [field, name] :
       {std::pair{bhttp::field::host, "Host"},
        std::pair{bhttp::field::sec_websocket_key, "Sec-WebSocket-Key"},
        std::pair{bhttp::field::sec_websocket_version, "Sec-WebSocket-Version"},
        std::pair{bhttp::field::origin, "Origin"}}) {
    if (request.count(field) > 1) fields.repeated = name;
  }
  return fields;
}

std::string extension_offers(const http::Request& request) {
  std::string offers;
  const auto [first, last] = request.equal_range(bhttp::field::sec_websocket_extensions);
  for (auto field = first; field != last; ++field) {
    if (!offers.empty()) offers += ',';
    offers += to_view(field->value());
  }
  return offers;
}

Route route_request(const http::Request& request, bool echo_endpoint) {
  const std::string_view target = to_view(request.target());
  const std::string_view path = target.substr(0, target.find('?'));
  const ws::UpgradeRequest fields = upgrade_fields(request);
  const bool asks_for_upgrade = ws::is_upgrade_request(fields) || !fields.key.empty();
  if (path == "/echo" && echo_endpoint) return Route::kEcho;
  if (path == "/ws" || (path == "/" && asks_for_upgrade)) return Route::kChat;
  return asks_for_upgrade ? Route::kNoWebSocketHere : Route::kHttp;
}

http::Response handshake_refusal(const http::Request& request, const ws::HandshakeCheck& check) {
  const bool wrong_version = check.verdict == ws::HandshakeVerdict::kUnsupportedVersion;
  auto response = http::Service::error(
      request, wrong_version ? bhttp::status::upgrade_required : bhttp::status::bad_request,
      "WebSocket handshake refused: " + std::string(check.reason));
  if (wrong_version) response.set(bhttp::field::sec_websocket_version, "13");
  response.keep_alive(false);
  return response;
}

bool origin_allowed(const http::Request& request, const std::vector<std::string>& allowed) {
  if (allowed.empty()) return true;
  const auto origin = request.find(bhttp::field::origin);
  if (origin == request.end()) return true;
  const std::string_view value = to_view(origin->value());
  return std::any_of(allowed.begin(), allowed.end(), [value](const std::string& candidate) {
    return boost::beast::iequals(value, candidate);
  });
}

std::optional<std::string> check_origin(std::string_view origin) {
  const auto is_alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (origin.empty()) return "an origin cannot be empty";
  const auto scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0 || !is_alpha(origin.front())) {
    return "an origin starts with a scheme, as in https://chat.example.com";
  }
  for (const char c : origin.substr(0, scheme_end)) {
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') {
      return "an origin starts with a scheme, as in https://chat.example.com";
    }
  }
  std::string_view authority = origin.substr(scheme_end + 3);
  if (authority.find_first_of("/?#") != std::string_view::npos) {
    return "an origin has no path, query or trailing slash: scheme://host[:port]";
  }
  if (authority.find('@') != std::string_view::npos) return "an origin has no user name";
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {  // an IPv6 literal: [::1]:8080
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return "an IPv6 host needs its closing ']'";
    host = authority.substr(0, close + 1);
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return "only a :port may follow the host";
    if (!rest.empty()) port = rest.substr(1);
    if (host.size() == 2) return "an origin needs a host";
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (host.empty()) return "an origin needs a host";
  }
  if (host.empty()) return "an origin needs a host";
  if (!host.starts_with('[')) {
    for (const char c : host) {
      if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_') {
        return "the host of an origin is a name or an address, nothing else";
      }
    }
  }
  if (authority.size() != host.size()) {  // a port was given
    unsigned value = 0;
    if (port.empty() || port.size() > 5) return "the port of an origin is a number from 1 to 65535";
    for (const char c : port) {
      if (!is_digit(c)) return "the port of an origin is a number from 1 to 65535";
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return "the port of an origin is a number from 1 to 65535";
  }
  return std::nullopt;
}

http::Response policy_refusal(const http::Request& request, bhttp::status status,
                              std::string_view code, std::string_view message) {
  auto response = request.target().starts_with("/api/")
                      ? http::json_error(request, status, code, message)
                      : http::Service::error(request, status, message);
  if (status == bhttp::status::service_unavailable) response.set(bhttp::field::retry_after, "5");
  response.keep_alive(false);
  return response;
}

http::Response parse_error_response(boost::system::error_code ec) {
  bhttp::status status = bhttp::status::bad_request;
  if (ec == bhttp::error::header_limit) status = bhttp::status::request_header_fields_too_large;
  if (ec == bhttp::error::body_limit) status = bhttp::status::payload_too_large;
  http::Request unparsed;
  unparsed.version(11);
  unparsed.keep_alive(false);
  return http::Service::error(unparsed, status, "Bad request: " + ec.message());
}

}  // namespace roomcast::net
