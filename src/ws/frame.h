// RFC 6455 section 5 framing: the frame header, opcodes, masking and frame building.
// Pure functions, no I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ws/close_code.h"

namespace roomcast::ws {

enum class Opcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

inline bool is_control(Opcode op) {
  return (static_cast<std::uint8_t>(op) & 0x8) != 0;
}

// Largest header: 2 bytes + 8-byte extended length + 4-byte mask.
inline constexpr std::size_t kMaxHeaderSize = 14;
// Control frames carry at most 125 bytes of payload (section 5.5).
inline constexpr std::size_t kMaxControlPayload = 125;

// FrameHeader::rsv's RSV1 bit: "Per-Message Compressed" once permessage-deflate is
// negotiated (RFC 7692 section 6).
inline constexpr std::uint8_t kRsv1 = 0x4;

struct FrameHeader {
  bool fin = false;
  std::uint8_t rsv = 0;  // the three reserved bits, as bits 2..0
  Opcode opcode = Opcode::kText;
  bool masked = false;
  std::array<std::uint8_t, 4> mask{};
  std::uint64_t payload_length = 0;
  std::size_t header_length = 0;  // bytes the header occupies on the wire
};

// XORs `len` bytes at `data` with `mask`, where `offset` is the position of data[0]
// within the frame's payload (so a payload may be unmasked in pieces).
void apply_mask(std::uint8_t* data, std::size_t len, const std::array<std::uint8_t, 4>& mask,
                std::size_t offset = 0);

// Writes a frame header for a payload of `payload_length` bytes into `out`
// (at least kMaxHeaderSize bytes) and returns its length. Always uses the shortest
// length form. With `mask`, sets the MASK bit and appends the key; the caller masks
// the payload with apply_mask(). `rsv`: the reserved bits, as in FrameHeader.
std::size_t write_frame_header(std::uint8_t* out, Opcode opcode, bool fin,
                               std::uint64_t payload_length,
                               const std::array<std::uint8_t, 4>* mask = nullptr,
                               std::uint8_t rsv = 0);

// A complete unmasked frame (server -> client), header and payload in one string.
std::string make_frame(Opcode opcode, std::string_view payload, bool fin = true,
                       std::uint8_t rsv = 0);

// A complete masked frame (client -> server).
std::string make_masked_frame(Opcode opcode, std::string_view payload,
                              const std::array<std::uint8_t, 4>& mask, bool fin = true,
                              std::uint8_t rsv = 0);

// A close frame payload: 2-byte code in network order followed by the UTF-8 reason,
// truncated to fit the 125-byte control frame limit.
std::string make_close_payload(CloseCode code, std::string_view reason);

}  // namespace roomcast::ws
