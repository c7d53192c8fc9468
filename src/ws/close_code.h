// Close codes of RFC 6455 section 7.4 and the rules for which may appear on the wire.
#pragma once

#include <cstdint>

namespace roomcast::ws {

// The codes roomcast itself sends. Values are fixed by RFC 6455 section 7.4.1, except the
// application range 4000-4999: 4001, which the chapter uses for failed authentication, and
// 4002, roomcast's "token expired", and 4003, "disconnected by the server API" (the chat asks
// for them: chat::close_code).
enum class CloseCode : std::uint16_t {
  kNormal = 1000,
  kGoingAway = 1001,  // server shutdown
  kProtocolError = 1002,  // malformed frame, bad opcode, reserved bits, bad fragmentation
  kUnsupportedData = 1003,  // e.g. binary frame on an endpoint that only takes text
  kNoStatus = 1005,  // never sent: "close frame carried no code"
  kAbnormal = 1006,  // never sent: "connection dropped without a close frame"
  kInvalidPayload = 1007,  // text that is not UTF-8
  kPolicyViolation = 1008,  // slow consumer, and other policy reasons
  kMessageTooBig = 1009,  // over --max-message-size
  kInternalError = 1011,
  kTryAgainLater = 1013,
  kAuthRequired = 4001,
  kTokenExpired = 4002,
  kDisconnected = 4003,  // the server API disconnected the user: do not reconnect
};

// True if `code` may legally appear in a close frame received from a peer
// (RFC 6455 section 7.4 and the IANA registry: 1000-1003, 1007-1014, 3000-4999;
// 1004-1006, 1015 and everything below 1000 or above 4999 are invalid on the wire).
bool is_valid_received_close_code(std::uint16_t code);

}  // namespace roomcast::ws
