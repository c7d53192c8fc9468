#include "ws/frame.h"

#include <cstring>

namespace roomcast::ws {

namespace {

// A control frame's payload limit leaves this much room for the reason text after the
// 2-byte code.
constexpr std::size_t kMaxCloseReason = kMaxControlPayload - 2;

bool is_utf8_continuation_byte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

}  // namespace

void apply_mask(std::uint8_t* data, std::size_t len, const std::array<std::uint8_t, 4>& mask,
                std::size_t offset) {
  // The key repeats every four bytes, so eight consecutive key bytes starting at the
  // right phase form one 64-bit word that works for every aligned-or-not 8-byte block.
  std::array<std::uint8_t, 8> rotated{};
  for (std::size_t i = 0; i < rotated.size(); ++i) rotated[i] = mask[(offset + i) % 4];
  std::uint64_t key = 0;
  std::memcpy(&key, rotated.data(), sizeof(key));

  std::size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    std::uint64_t block = 0;
    std::memcpy(&block, data + i, sizeof(block));
    block ^= key;
    std::memcpy(data + i, &block, sizeof(block));
  }
  // After whole blocks the phase is unchanged (8 is a multiple of 4).
  for (; i < len; ++i) data[i] ^= rotated[i % 4];
}

std::size_t write_frame_header(std::uint8_t* out, Opcode opcode, bool fin,
                               std::uint64_t payload_length,
                               const std::array<std::uint8_t, 4>* mask, std::uint8_t rsv) {
  std::size_t pos = 0;
  out[pos++] = static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | ((rsv & 0x7) << 4) |
                                         static_cast<std::uint8_t>(opcode));
  const std::uint8_t mask_bit = mask != nullptr ? 0x80 : 0x00;
  if (payload_length <= 125) {
    out[pos++] = static_cast<std::uint8_t>(mask_bit | payload_length);
  } else if (payload_length <= 0xFFFF) {
    out[pos++] = static_cast<std::uint8_t>(mask_bit | 126);
    out[pos++] = static_cast<std::uint8_t>(payload_length >> 8);
    out[pos++] = static_cast<std::uint8_t>(payload_length);
  } else {
    out[pos++] = static_cast<std::uint8_t>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      out[pos++] = static_cast<std::uint8_t>(payload_length >> shift);
    }
  }
  if (mask != nullptr) {
    std::memcpy(out + pos, mask->data(), mask->size());
    pos += mask->size();
  }
  return pos;
}

namespace {

std::string build_frame(Opcode opcode, std::string_view payload, bool fin,
                        const std::array<std::uint8_t, 4>* mask, std::uint8_t rsv) {
  std::array<std::uint8_t, kMaxHeaderSize> header{};
  const std::size_t header_length =
      write_frame_header(header.data(), opcode, fin, payload.size(), mask, rsv);
  std::string frame;
  frame.resize(header_length + payload.size());
  std::memcpy(frame.data(), header.data(), header_length);
  if (!payload.empty()) std::memcpy(frame.data() + header_length, payload.data(), payload.size());
  if (mask != nullptr) {
    // std::string's storage is char; the masking routine works on bytes. Both are
    // object representations of the same storage, which uint8_t may alias.
    apply_mask(reinterpret_cast<std::uint8_t*>(frame.data() + header_length), payload.size(),
               *mask);
  }
  return frame;
}

}  // namespace

std::string make_frame(Opcode opcode, std::string_view payload, bool fin, std::uint8_t rsv) {
  return build_frame(opcode, payload, fin, nullptr, rsv);
}

std::string make_masked_frame(Opcode opcode, std::string_view payload,
                              const std::array<std::uint8_t, 4>& mask, bool fin, std::uint8_t rsv) {
  return build_frame(opcode, payload, fin, &mask, rsv);
}

std::string make_close_payload(CloseCode code, std::string_view reason) {
  if (reason.size() > kMaxCloseReason) {
    // Cut before the lead byte of the code point that straddles the limit, so the
    // truncated reason is still valid UTF-8 (the receiver would fail us with 1007).
    std::size_t cut = kMaxCloseReason;
    while (cut > 0 && is_utf8_continuation_byte(reason[cut])) --cut;
    reason = reason.substr(0, cut);
  }
  const auto value = static_cast<std::uint16_t>(code);
  std::string payload;
  payload.reserve(2 + reason.size());
  payload.push_back(static_cast<char>(value >> 8));
  payload.push_back(static_cast<char>(value & 0xFF));
  payload.append(reason);
  return payload;
}

}  // namespace roomcast::ws
