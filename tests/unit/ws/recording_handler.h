// Test helpers for the WebSocket codec: a handler that records what the Reader reports,
// and shorthands for building wire bytes.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ws/frame.h"
#include "ws/reader.h"

namespace roomcast::ws::testing {

// Records every callback as one readable line ("text:Hello", "close:1000:bye"), copying
// the payload because the Reader's views die when the callback returns.
class RecordingHandler : public ReaderHandler {
 public:
  void on_message(std::string_view payload, bool binary) override {
    events.push_back((binary ? "binary:" : "text:") + std::string(payload));
  }
  void on_ping(std::string_view payload) override {
    events.push_back("ping:" + std::string(payload));
  }
  void on_pong(std::string_view payload) override {
    events.push_back("pong:" + std::string(payload));
  }
  void on_close(std::uint16_t code, std::string_view reason) override {
    events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
  }

  std::vector<std::string> events;
};

inline constexpr std::array<std::uint8_t, 4> kTestMask{0x37, 0xFA, 0x21, 0x3D};

// A frame as a browser would send it (masked).
inline std::string client_frame(Opcode opcode, std::string_view payload, bool fin = true) {
  return make_masked_frame(opcode, payload, kTestMask, fin);
}

inline std::vector<std::uint8_t> to_bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

// Feeds a copy of `wire` (the Reader unmasks in place, so the original stays reusable).
inline ReadResult feed(Reader& reader, std::string_view wire, ReaderHandler& handler) {
  std::vector<std::uint8_t> buffer = to_bytes(wire);
  return reader.feed(std::span<std::uint8_t>(buffer), handler);
}

}  // namespace roomcast::ws::testing
