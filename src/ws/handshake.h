// The opening handshake of RFC 6455 section 4: validating a client's upgrade request
// and computing Sec-WebSocket-Accept. Works on header values, so it is independent of
// the HTTP parser that produced them.
#pragma once

#include <string>
#include <string_view>

namespace roomcast::ws {

// The request fields the handshake needs. Missing headers are empty views.
struct UpgradeRequest {
  std::string_view method;  // "GET"
  int http_version = 11;  // 11 for HTTP/1.1
  std::string_view host;  // Host: header (required)
  std::string_view upgrade;  // Upgrade: header
  std::string_view connection;
  std::string_view key;  // Sec-WebSocket-Key
  std::string_view version;  // Sec-WebSocket-Version
  // A header the handshake reads one value of (Host, Sec-WebSocket-Key,
  // Sec-WebSocket-Version, Origin) that the request repeats; empty: none. Two values would be
  // read differently by different readers (RFC 6454 section 7.3: one Origin at most).
  std::string_view repeated;
};

enum class HandshakeVerdict {
  kAccept,
  kBadRequest,  // answer 400: malformed upgrade
  kUnsupportedVersion,  // answer 426 with "Sec-WebSocket-Version: 13"
};

struct HandshakeCheck {
  HandshakeVerdict verdict = HandshakeVerdict::kAccept;
  std::string_view reason;  // human-readable, for the error response body
};

// True if the request asks for a WebSocket upgrade at all (Upgrade: websocket, any case).
bool is_upgrade_request(const UpgradeRequest& request);

// Full validation of an upgrade request per section 4.2.1: GET, HTTP/1.1 or later,
// a Host header, "Upgrade: websocket", a Connection header containing the token "upgrade",
// a Sec-WebSocket-Key that is base64 of 16 bytes, and Sec-WebSocket-Version 13; and none of
// the headers it reads repeated.
HandshakeCheck check_upgrade(const UpgradeRequest& request);

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string accept_key(std::string_view client_key);

// True if the comma-separated header value `list` contains `token`, case-insensitively.
bool header_has_token(std::string_view list, std::string_view token);

}  // namespace roomcast::ws
