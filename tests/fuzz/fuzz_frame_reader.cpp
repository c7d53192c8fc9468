// Fuzz target for ws::Reader, the receiving half of RFC 6455 framing, with and without
// permessage-deflate's inflate path (RFC 7692), and for the UTF-8 validator it relies on.
//
// Input layout: byte 0 picks the role (bit 0: 0 = server, whose peer masks; 1 = client),
// the message size limit (bits 1-2) and permessage-deflate (bit 3: negotiated, so RSV1
// messages are inflated; bit 4: with the peer's context takeover); byte 1 seeds how the rest
// is cut into reads; the rest is the byte stream from the peer.
//
// The stream goes through two Readers: one gets it in a single feed(), the other in the
// pieces byte 1 chose, each piece in a heap block of its own so that ASan sees any read
// past the end of a read. Both must report the same events and end in the same state:
// where TCP splits the bytes must never matter. Every event is also checked against the
// RFC's rules by code written here, independently of the Reader's.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ws/close_code.h"
#include "ws/frame.h"
#include "ws/reader.h"
#include "ws/utf8.h"

namespace roomcast::ws {
namespace {

[[noreturn]] void violated(std::string_view what) {
  std::fprintf(stderr, "fuzz_frame_reader: invariant violated: %.*s\n",
               static_cast<int>(what.size()), what.data());
  std::abort();
}

void require(bool ok, std::string_view what) {
  if (!ok) violated(what);
}

// Limits byte 0 can choose: the server's default, tiny ones that make most messages too
// big, one that sits at the control frame limit, and one in between.
constexpr std::array<std::size_t, 4> kMessageLimits{1 << 20, 16, 125, 4096};

// RFC 3629 decoding, written plainly so it can judge the table-driven validator.
bool reference_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<unsigned char>(s[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t continuation_bytes = 0;
    std::uint32_t code_point = 0;
    std::uint32_t smallest = 0;  // anything below needs fewer bytes: overlong
    if ((lead & 0xE0) == 0xC0) {
      continuation_bytes = 1;
      code_point = lead & 0x1Fu;
      smallest = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      continuation_bytes = 2;
      code_point = lead & 0x0Fu;
      smallest = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      continuation_bytes = 3;
      code_point = lead & 0x07u;
      smallest = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i <= continuation_bytes) return false;
    for (std::size_t k = 1; k <= continuation_bytes; ++k) {
      const auto next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3Fu);
    }
    if (code_point < smallest || code_point > 0x10FFFF) return false;
    if (code_point >= 0xD800 && code_point <= 0xDFFF) return false;
    i += continuation_bytes + 1;
  }
  return true;
}

// RFC 6455 section 7.4 and the IANA registry, restated.
bool reference_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

// Records every event as one line and checks each against the rules a receiver enforces.
class CheckingHandler final : public ReaderHandler {
 public:
  explicit CheckingHandler(std::size_t max_message_size) : max_message_size_(max_message_size) {}

  void on_message(std::string_view payload, bool binary) override {
    require(!closed_, "message after the close frame");
    require(payload.size() <= max_message_size_, "message larger than the limit");
    if (!binary) require(reference_utf8(payload), "text message is not valid UTF-8");
    record(binary ? "binary:" : "text:", payload);
  }
  void on_ping(std::string_view payload) override {
    require(!closed_, "ping after the close frame");
    require(payload.size() <= kMaxControlPayload, "ping payload over 125 bytes");
    record("ping:", payload);
  }
  void on_pong(std::string_view payload) override {
    require(!closed_, "pong after the close frame");
    require(payload.size() <= kMaxControlPayload, "pong payload over 125 bytes");
    record("pong:", payload);
  }
  void on_close(std::uint16_t code, std::string_view reason) override {
    require(!closed_, "second close frame");
    closed_ = true;
    if (code == static_cast<std::uint16_t>(CloseCode::kNoStatus)) {
      require(reason.empty(), "close without a code but with a reason");
    } else {
      require(reference_close_code(code), "invalid close code delivered");
      require(reason.size() <= kMaxControlPayload - 2, "close reason too long");
      require(reference_utf8(reason), "close reason is not valid UTF-8");
    }
    record("close:" + std::to_string(code) + ":", reason);
  }

  const std::vector<std::string>& events() const { return events_; }

 private:
  void record(std::string_view kind, std::string_view payload) {
    std::string line(kind);
    line.append(payload);
    events_.push_back(std::move(line));
  }

  std::size_t max_message_size_;
  bool closed_ = false;
  std::vector<std::string> events_;
};

// Deterministic read sizes from one seed byte: 0 means one byte per read, larger seeds
// allow larger reads.
class ReadSizes {
 public:
  explicit ReadSizes(std::uint8_t seed) : max_(seed), state_(0x9E3779B9u ^ seed) {}

  std::size_t next() {
    if (max_ == 0) return 1;
    // xorshift32: cheap, and good enough to vary the split points.
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return 1 + state_ % (2u * max_);
  }

 private:
  std::uint32_t max_;
  std::uint32_t state_;
};

void same_result(const ReadResult& a, const ReadResult& b, std::string_view what) {
  require(a.ok == b.ok, what);
  require(a.close_code == b.close_code, what);
  require(a.reason == b.reason, what);
}

}  // namespace
}  // namespace roomcast::ws

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace roomcast::ws;
  if (size < 2) return 0;
  const Role role = (data[0] & 1) != 0 ? Role::kClient : Role::kServer;
  const std::size_t max_message_size = kMessageLimits[(data[0] >> 1) & 3];
  const bool inflate = (data[0] & 0x8) != 0;
  const bool context_takeover = (data[0] & 0x10) != 0;
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  // Everything in one read.
  Reader whole(role, max_message_size);
  if (inflate) whole.enable_inflate(context_takeover);
  CheckingHandler whole_events(max_message_size);
  std::vector<std::uint8_t> whole_bytes(stream.begin(), stream.end());
  const ReadResult whole_result = whole.feed(whole_bytes, whole_events);
  if (!whole_result.ok) {
    require(!whole_result.reason.empty(), "error without a reason");
    std::vector<std::uint8_t> nothing;
    same_result(whole.feed(nothing, whole_events), whole_result, "error not sticky");
  }

  // The same bytes in pieces; the UTF-8 validator gets the same pieces.
  Reader pieces(role, max_message_size);
  if (inflate) pieces.enable_inflate(context_takeover);
  CheckingHandler piece_events(max_message_size);
  ReadResult piece_result;
  Utf8Validator utf8;
  bool utf8_ok = true;
  ReadSizes sizes(data[1]);
  for (std::size_t pos = 0; pos < stream.size();) {
    const std::size_t n = std::min(sizes.next(), stream.size() - pos);
    const std::string_view piece = stream.substr(pos, n);
    utf8_ok = utf8.feed(piece) && utf8_ok;
    if (piece_result.ok) {
      std::vector<std::uint8_t> read(piece.begin(), piece.end());
      piece_result = pieces.feed(read, piece_events);
    }
    pos += n;
  }

  same_result(piece_result, whole_result, "outcome depends on how the stream was split");
  require(piece_events.events() == whole_events.events(),
          "events depend on how the stream was split");
  require(pieces.closed() == whole.closed(), "closed() depends on the split");
  require(pieces.holds_partial_data() == whole.holds_partial_data(),
          "holds_partial_data() depends on the split");
  if (!whole_result.ok) require(!whole.holds_partial_data(), "buffers kept after an error");

  const bool valid = reference_utf8(stream);
  require(is_valid_utf8(stream) == valid, "is_valid_utf8 disagrees with RFC 3629");
  require((utf8_ok && utf8.complete()) == valid, "Utf8Validator disagrees with RFC 3629");
  return 0;
}
