// The receiving half of a WebSocket connection: turns bytes into messages and control
// frames, enforcing every rule of RFC 6455 sections 5 and 8 that a receiver must.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ws/close_code.h"
#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/utf8.h"

namespace roomcast::ws {

enum class Role : std::uint8_t {
  kServer,  // peer is a client: every frame must be masked
  kClient,  // peer is a server: no frame may be masked
};

// What the reader hands to its owner. Views are valid only during the call.
class ReaderHandler {
 public:
  virtual ~ReaderHandler() = default;
  // A complete data message (all fragments joined). `binary` is false for text,
  // which has been validated as UTF-8.
  virtual void on_message(std::string_view payload, bool binary) = 0;
  virtual void on_ping(std::string_view payload) = 0;
  virtual void on_pong(std::string_view payload) = 0;
  // The peer's close frame. `code` is kNoStatus when the frame had no payload.
  // After this, feed() ignores further input.
  virtual void on_close(std::uint16_t code, std::string_view reason) = 0;
  // Asked after each frame: true stops feed() there, and the rest of its input waits in
  // the reader, unparsed, until resume() (the owner pushes back on a sender: what it sent
  // after the message that filled a bound is not even parsed meanwhile).
  virtual bool holding() const { return false; }
};

// Outcome of feed(): either all input was consumed (kOk), or the peer broke the
// protocol and the connection must be closed with `close_code`; `reason` says why in
// words fit for a close frame. After an error, feed() returns the same error again.
struct ReadResult {
  bool ok = true;
  CloseCode close_code = CloseCode::kNormal;
  std::string_view reason;

  static ReadResult success() { return {}; }
  static ReadResult failure(CloseCode code, std::string_view why) { return {false, code, why}; }
};

// A byte buffer that costs one pointer while unused: most connections, most of the time,
// hold no partial frame, and a std::string would cost 32 bytes each regardless. Beside the
// bytes it keeps a tally its owner counts in (the message buffer: what the message's frames
// took on the wire), which lives and dies with them.
class LazyBuffer {
 public:
  bool empty() const { return !block_ || block_->bytes.empty(); }
  std::size_t size() const { return block_ ? block_->bytes.size() : 0; }
  char* data() { return block_->bytes.data(); }
  const char* data() const { return block_->bytes.data(); }
  char operator[](std::size_t i) const { return block_->bytes[i]; }
  std::string_view view() const {
    return block_ ? std::string_view(block_->bytes) : std::string_view();
  }
  void append(std::string_view more) { get().append(more); }
  void assign(std::string_view bytes) { get().assign(bytes); }
  void reserve(std::size_t n) { get().reserve(n); }
  void release() { block_.reset(); }
  // The string itself (allocated if need be), for code that appends to it (inflating).
  std::string& get() { return block().bytes; }
  std::size_t tally() const { return block_ ? block_->tally : 0; }
  void add_to_tally(std::size_t n) { block().tally += n; }

 private:
  struct Block {
    std::string bytes;
    std::size_t tally = 0;
  };
  Block& block() {
    if (!block_) block_ = std::make_unique<Block>();
    return *block_;
  }
  std::unique_ptr<Block> block_;
};

// The most bytes one data message may take on the wire across all its frames (headers and
// payloads): twice `max_message_size`, plus 1 KiB for tiny limits. A message of the limit in one
// frame, compressed or not, or in fragments of a few hundred bytes, stays below it.
std::size_t max_message_wire_bytes(std::size_t max_message_size);

// Incremental reader. Not thread-safe; one per connection, touched by its worker only.
//
// Memory: the reader keeps its own buffers only while it holds a partial frame or an
// unfinished fragmented message; between messages it holds none (an idle connection
// costs only sizeof(Reader)). Frames that arrive whole are unmasked in place inside
// the caller's buffer and delivered without a copy, which is why `input` is mutable.
class Reader {
 public:
  // `max_message_size` bounds a message's total payload (all fragments); larger ones
  // fail with kMessageTooBig (1009) before their payload is buffered. What a message's frames
  // take on the wire together (headers and payloads, compressed or not) is bounded by
  // max_message_wire_bytes(max_message_size), also with 1009, so a message cannot go on for
  // ever in empty or tiny fragments.
  Reader(Role role, std::size_t max_message_size)
      : max_message_size_(max_message_size), role_(role) {}

  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Consumes every byte of `input`, calling `handler` for each complete message or
  // control frame. `input` may be modified (unmasked in place).
  ReadResult feed(std::span<std::uint8_t> input, ReaderHandler& handler);

  // True while a partial frame or fragmented message is buffered (or held input).
  bool holds_partial_data() const { return !pending_.empty() || in_fragmented_message_; }

  // Input that feed() kept unparsed because the handler was holding (ReaderHandler::holding).
  bool holds_input() const { return held_; }
  // Parses the held input, as feed() would have; it may stop again if the handler holds
  // again. A no-op without held input.
  ReadResult resume(ReaderHandler& handler);

  // True once a close frame has been received.
  bool closed() const { return closed_; }

  // permessage-deflate was negotiated (RFC 7692): from now on a data message whose first
  // frame has RSV1 set is compressed, and is inflated (bounded by max_message_size) before
  // it is delivered. `context_takeover`: the peer may use earlier messages as its window,
  // so the inflate state is kept between messages.
  void enable_inflate(bool context_takeover);
  bool inflates() const { return inflater_ != nullptr; }

 private:
  // Parses and dispatches whole frames from the front of `data`; returns the number of
  // bytes consumed (the rest is an incomplete frame), or sets `error_`.
  std::size_t consume_frames(std::uint8_t* data, std::size_t len, ReaderHandler& handler);
  // Handles one complete frame whose payload is already unmasked.
  bool on_frame(const FrameHeader& header, std::uint8_t* payload, ReaderHandler& handler);
  // A compressed message's next piece (RFC 7692 section 6.2): inflated onto message_,
  // validated as UTF-8 as it comes; at `fin`, finished and delivered.
  bool inflate_piece(std::string_view compressed, bool fin, ReaderHandler& handler);
  // `piece` (plain or inflated) was just appended to message_: validates it as UTF-8 and, at
  // `fin`, delivers the message. The one end of every fragmented or compressed message.
  bool message_piece_added(std::string_view piece, bool fin, ReaderHandler& handler);
  bool fail(CloseCode code, const char* reason);
  // Keeps the `len` unparsed bytes at `data` (a frame boundary) until resume().
  ReadResult hold(const std::uint8_t* data, std::size_t len);
  ReadResult error() const { return ReadResult::failure(error_code_, error_reason_); }
  void release_message_buffer();

  // Members ordered largest first, so the one-byte ones share a word: every connection
  // holds a Reader for its whole life (48 bytes, the inflater's pointer included).
  std::size_t max_message_size_;
  LazyBuffer pending_;  // bytes of an incomplete frame carried to the next feed()
  // Fragments of an unfinished data message (inflated, if compressed); its tally is the wire
  // bytes of the message's frames so far.
  LazyBuffer message_;
  // Set by fail(), with error_code_; always a string literal (a pointer, not a view: 8 bytes
  // that pay for inflater_).
  const char* error_reason_ = "";
  std::unique_ptr<Inflater> inflater_;  // only on connections that negotiated deflate
  Role role_;
  bool in_fragmented_message_ : 1 = false;
  bool message_is_binary_ : 1 = false;
  bool message_is_compressed_ : 1 = false;
  bool closed_ : 1 = false;
  bool failed_ : 1 = false;  // feed() answers error() from now on
  // pending_ holds input kept at a frame boundary while the handler held (holds_input()),
  // not an incomplete frame.
  bool held_ : 1 = false;
  Utf8Validator utf8_;
  CloseCode error_code_ = CloseCode::kNormal;
};

}  // namespace roomcast::ws
