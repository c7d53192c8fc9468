// Incremental UTF-8 validation (RFC 3629), for text messages that arrive in fragments.
#pragma once

#include <cstdint>
#include <string_view>

namespace roomcast::ws {

// Validates a byte stream fed in arbitrary pieces, so a code point split across two
// fragments (or two TCP reads) is judged as a whole. Rejects overlong encodings,
// surrogates (U+D800..U+DFFF) and code points above U+10FFFF, as RFC 3629 requires.
// A plain value type: cheap to copy, no allocation.
class Utf8Validator {
 public:
  // Feeds more bytes. Returns false as soon as the stream can no longer be valid UTF-8,
  // and keeps returning false until reset().
  bool feed(std::string_view bytes);

  // True if everything fed so far is valid and ends on a code point boundary.
  bool complete() const { return state_ == kAccept; }

  void reset() { state_ = kAccept; }

 private:
  static constexpr std::uint8_t kAccept = 0;
  static constexpr std::uint8_t kReject = 1;
  std::uint8_t state_ = kAccept;
};

// One-shot check of a complete string.
bool is_valid_utf8(std::string_view bytes);

}  // namespace roomcast::ws
