// permessage-deflate's compression of message payloads (RFC 7692 section 7.2), over zlib's
// raw DEFLATE streams. No I/O; the frame layer marks compressed messages with RSV1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct z_stream_s;

namespace roomcast::ws {

// Decompresses the messages of one peer. Not thread-safe; one per connection that negotiated
// deflate, touched by its worker only.
//
// Memory: zlib's inflate state (about 7 KiB, plus the 32 KiB window once output is made)
// exists only while a message is being inflated, unless the peer keeps its context between
// messages (`context_takeover`), in which case the window must outlive the message.
//
// Bounded: output is appended to the caller's string in steps of at most kStepBytes and
// never grows past `limit` + 1 bytes, so a message that would inflate past the limit is
// refused as soon as it crosses it, whatever its compressed size (a decompression bomb
// costs at most the limit).
class Inflater {
 public:
  enum class Result : std::uint8_t {
    kOk,
    kTooBig,  // the output would pass `limit`
    kCorrupt,  // not a valid DEFLATE stream (or data after its final block)
  };

  // Output is made in steps of this many bytes.
  static constexpr std::size_t kStepBytes = 16 << 10;

  explicit Inflater(bool context_takeover);
  ~Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Inflates the next piece of a message's payload (a frame's, for fragmented messages),
  // appending to `out`. Fails with kTooBig once `out` would hold more than `limit` bytes.
  Result inflate(std::string_view compressed, std::size_t limit, std::string& out);

  // The message's last piece has been given: inflates the 00 00 ff ff that the sender
  // removed (section 7.2.2) and, without context takeover, frees the inflate state.
  Result finish(std::size_t limit, std::string& out);

  // Forgets the message in progress and frees the inflate state (a failed connection).
  void reset();

  // True while zlib's state is allocated (tests: memory is given back between messages).
  bool holds_state() const { return stream_ != nullptr; }

 private:
  Result run(const std::uint8_t* data, std::size_t len, std::size_t limit, std::string& out);
  bool ensure_stream();
  // After a block with BFINAL set (RFC 7692 section 7.2.3 shows a sender may end a message that
  // way), a new raw DEFLATE stream starts; with context takeover the window carries over as its
  // dictionary, since the sender's context did not end with the block.
  bool restart_after_final_block();

  std::unique_ptr<z_stream_s> stream_;
  bool context_takeover_;
  // The current DEFLATE stream has taken no input yet (fresh, or just restarted after a final
  // block): a message that ended with a final block needs no tail.
  bool at_stream_start_ = true;
};

// Compresses messages for permessage-deflate. Not thread-safe.
//
// Shared (the default constructor): each message on its own (no context takeover, section
// 7.1.1.1), so the same compressed payload is valid for every peer that negotiated deflate
// with server_no_context_takeover, and may be shared by all of them. One per worker; holds
// zlib's deflate state (about 256 KiB with a 2^15 window) for its life and resets it between
// messages, so a message costs no allocation inside zlib.
//
// Dedicated (WithContext): one peer's compressor that keeps its window from message to message
// (context takeover), so a message compresses against the ones before it. Its frames are
// valid for that peer alone. Memory: zlib's state for `window_bits` and `mem_level`, about
// 2^(window_bits+2) + 2^(mem_level+9) bytes plus 6 KiB, for the peer's whole life.
class Deflater {
 public:
  // zlib's knobs for the shared compressor. The defaults are the server's: on ~200-byte chat
  // JSON no other level, memory level or strategy saves a byte worth its cost
  // (bench/COMPRESSION.md, "Shared mode on short messages"); the tool that measured it,
  // roomcast-deflate-params, passes others.
  struct Tuning {
    int level = -1;  // zlib's Z_DEFAULT_COMPRESSION (6)
    int mem_level = 8;  // 1..9: zlib's hash table size
    int strategy = 0;  // zlib's Z_DEFAULT_STRATEGY; Z_FILTERED 1, Z_HUFFMAN_ONLY 2, ...
  };
  Deflater() : Deflater(Tuning{}) {}
  explicit Deflater(Tuning tuning);
  struct WithContext {
    int window_bits;  // 9..15, at most the peer's server_max_window_bits
    int mem_level;  // 1..9: zlib's hash table size
  };
  explicit Deflater(WithContext context);
  ~Deflater();
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;

  // Longest message compress() takes: zlib counts bytes in 32 bits. Longer ones go plain.
  static constexpr std::size_t kMaxMessageBytes = std::size_t{1} << 30;

  // The payload of a frame with RSV1 set that carries `message` (section 7.2.1: compressed
  // and flushed to a byte boundary, the trailing 00 00 ff ff removed). Shared: no
  // back-reference reaches before the message's first byte, so it is valid for a peer whose
  // window is at least message.size() bytes (server_max_window_bits). Requires
  // message.size() <= kMaxMessageBytes.
  std::string compress(std::string_view message);

 private:
  std::unique_ptr<z_stream_s> stream_;
  bool context_takeover_ = false;
};

}  // namespace roomcast::ws
