// The decisions of the HTTP phase, kept free of sockets so the connection and the fuzz
// target share them: which endpoint a request goes to, the handshake fields it carries,
// and the answers to requests that cannot be served.
#pragma once

#include <boost/system/error_code.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/service.h"
#include "ws/handshake.h"

namespace roomcast::net {

enum class Route {
  kHttp,  // a plain request: static files, /healthz, /metrics, /api/stats
  kChat,  // a WebSocket handshake for the chat (/ or /ws)
  kEcho,  // a WebSocket handshake for /echo (only with --echo-endpoint)
  kNoWebSocketHere,  // asks for an upgrade on a path with no WebSocket endpoint: 404
};

// "/" is also the web client's page: there, only a request that asks for an upgrade is a
// handshake. "/ws" and "/echo" are WebSocket endpoints only, so any request to them is
// judged as a handshake (and a plain GET gets 400, not 404).
Route route_request(const http::Request& request, bool echo_endpoint);

// The header values ws::check_upgrade() judges. Views into `request`.
ws::UpgradeRequest upgrade_fields(const http::Request& request);

// Every Sec-WebSocket-Extensions line of `request`, joined with "," as one list (RFC 7230
// section 3.2.2): a client may spread its offers over several lines.
std::string extension_offers(const http::Request& request);

// The answer to a refused handshake: 400, or 426 with "Sec-WebSocket-Version: 13".
// The connection ends after it.
http::Response handshake_refusal(const http::Request& request, const ws::HandshakeCheck& check);

// Whether a handshake's Origin is acceptable. `allowed` holds origins such as
// "https://chat.example.com" (compared case-insensitively); empty allows every origin. A
// request without Origin is not from a browser page, so cross-site rules do not apply.
bool origin_allowed(const http::Request& request, const std::vector<std::string>& allowed);

// Whether `origin` can be an entry of the allowed origins: what browsers send in Origin,
// scheme://host[:port] with no path, query or trailing slash ("https://chat.example.com",
// "http://localhost:8080"). Returns the broken rule, or nullopt.
std::optional<std::string> check_origin(std::string_view origin);

// An answer that refuses a handshake (or a long-poll) for a reason of policy (403 for a
// foreign Origin, 503 at a connection limit). The connection ends after it. Under /api/ it
// is the server API's JSON error with `code`; elsewhere (a WebSocket handshake) plain text.
http::Response policy_refusal(const http::Request& request, boost::beast::http::status status,
                              std::string_view code, std::string_view message);

// The answer to a request the parser could not accept (431 for headers over the limit,
// 413 for a body over the limit, 400 otherwise). The connection ends after it.
http::Response parse_error_response(boost::system::error_code ec);

}  // namespace roomcast::net
