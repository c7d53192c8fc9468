// SendQueue: the frames waiting to leave one connection, in order, and the slow-consumer rule
// that bounds them.
//
// Frames are shared (base::SharedFrame): a broadcast queues one reference per recipient, never
// a copy. A flush gathers up to one scratch array of frames into one write on a transport
// (net/transport.h); a write that ends inside a frame leaves the rest of it at the front, so a
// frame is never cut or reordered. Holding more than the byte bound while the transport is
// full (or more than twice the bound at any time) gives the slow-consumer verdict: from then on
// frames are refused, and the owner closes the connection after the loop it is in
// (close_after_loop), never in the middle of a fan-out over its members (STYLE.md rule 5).
//
// Worker-affine: owned by one Connection and touched only by its worker's thread. Knows no
// socket: the transport is a template parameter, so tests flush into a fake one. The bounds
// are passed in by the owner (ServerOptions) rather than kept, because every idle connection
// holds a SendQueue: 48 bytes, as the fields it replaced in Connection (bench/OPTIMIZATIONS.md).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/shared_frame.h"
#include "net/transport.h"

namespace roomcast::net {

class SendQueue {
 public:
  // What push did with a frame.
  enum class Push : std::uint8_t {
    kFirst,  // queued, and nothing else waits: the owner schedules a flush
    kQueued,  // queued behind frames whose flush is already due
    kSlowConsumer,  // queued, and the bound is passed: the verdict is given now, once
    kRefused,  // the verdict was given earlier: the frame is dropped
  };

  // How a flush ended.
  enum class Flushed : std::uint8_t {
    kEmptied,  // everything is written
    kTurnOver,  // the per-turn budget is spent; the rest waits for the next batch of work
    kBlocked,  // the transport is full: wait until it is writable
    kSlowConsumer,  // as kBlocked, and over the bound: the verdict is given now, once
    kFailed,  // the transport failed or the peer is gone: drop the connection
  };
  struct FlushResult {
    Flushed outcome;
    std::size_t bytes;  // written by this flush, whatever its outcome
  };

  struct Limits {
    // Over this many queued bytes while the transport is full, the peer is not reading.
    std::size_t max_queued_bytes;
    // One flush writes at most about this much (it stops at the first write past it).
    std::size_t max_bytes_per_turn;
  };

  // Up to this many frame slots (16 bytes each) stay allocated after the queue empties, so the
  // next message costs no allocation; a burst's larger array is given back.
  static constexpr std::size_t kRetainedCapacity = 8;

  SendQueue() = default;
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;

  // Appends `frame`. Over `max_queued_bytes` while the transport is full (`transport_full`: the
  // last flush ended kBlocked), the peer is not reading: a slow consumer. A burst (a group of
  // messages made durable together) may pass the bound before the next flush has had a chance,
  // up to twice the bound; the flush judges again once it has written.
  Push push(const base::SharedFrame& frame, std::size_t max_queued_bytes, bool transport_full);

  // Queues `frame` ahead of every frame not yet started, but never inside a frame (that would
  // corrupt the framing) nor among the first `keep_bytes` bytes from the front (the bytes a
  // transport's retry must repeat: Transport::kRetryRepeatsBytes while it waits to be
  // writable). Ignores the verdict: the heartbeat's ping is the owner's to refuse.
  Push push_ahead(const base::SharedFrame& frame, std::size_t keep_bytes);

  // Removes `frame` (by identity) if it waits unstarted among the last `scan` frames and
  // outside the first `keep_bytes` bytes (see push_ahead); returns whether it did. For
  // latest-value conflation: a newer state replaces one the reader has not been sent yet.
  bool drop_unsent(const std::string* frame, std::size_t keep_bytes, std::size_t scan);

  // Writes as much as `transport` takes now, gathering up to `scratch.size()` frames (at
  // least one) per write. `on_frame_written(const base::SharedFrame&)` is called for each frame as
  // its last byte is written, in order.
  template <typename Transport, typename OnFrameWritten>
  FlushResult flush(Transport& transport, std::span<iovec> scratch, Limits limits,
                    OnFrameWritten&& on_frame_written);

  // After the loop that gave the verdict: drops every frame not yet started (a frame partly
  // written stays, cutting it would corrupt the framing) and queues `last` (the close frame)
  // behind it. The verdict stays: nothing more is accepted.
  void close_after_loop(const base::SharedFrame& last);

  // Drops everything and gives the memory back (the connection is gone).
  void clear();

  // The periodic sweep: a connection sent nothing for a whole sweep interval gives back its
  // retained slots too, so the many idle connections hold no send buffer while busy ones keep
  // theirs.
  void sweep();

  // Bytes not yet written (the rest of a partly written frame included).
  std::size_t bytes() const { return bytes_; }
  bool empty() const { return head_ == frames_.size(); }
  std::size_t frames() const { return frames_.size() - head_; }
  bool slow_consumer() const { return slow_consumer_; }

 private:
  // Fills `scratch` with the unwritten frames from the front; returns how many it used.
  std::size_t gather(std::span<iovec> scratch) const;
  // `written` bytes from the front are on the wire: pops the frames they completed.
  template <typename OnFrameWritten>
  void consume(std::size_t written, OnFrameWritten& on_frame_written);
  // Everything is written: keep a small array, give back a large one.
  void emptied();
  // Gives the array back (out of line: the rare case).
  void release();

  // Frames from head_ on are unsent; the first may be partly written (front_offset_ bytes).
  std::vector<base::SharedFrame> frames_;
  std::size_t bytes_ = 0;
  std::size_t front_offset_ = 0;
  std::uint32_t head_ = 0;  // the byte bound keeps a queue far below 2^32 frames
  bool slow_consumer_ : 1 = false;  // the verdict is given; frames are refused
  bool pushed_since_sweep_ : 1 = false;
};

// Forced inline, into Connection::flush_to (itself forced into Connection::flush): the plain
// flush then compiles to one function, as it was before this seam. Measured under callgrind
// (bench-style fan-out, plain ws): left to the compiler, the two extra calls cost about 60
// instructions per flush (+22%); inlined, about 17 (+6%, the short-write check).
template <typename Transport, typename OnFrameWritten>
[[gnu::always_inline]] inline SendQueue::FlushResult SendQueue::flush(
    Transport& transport, std::span<iovec> scratch, Limits limits,
    OnFrameWritten&& on_frame_written) {
  std::size_t written = 0;
  while (!empty()) {
    // A reader with a deep backlog (after EPOLLOUT) must not hold the worker while reads,
    // pings and small rooms wait.
    if (written >= limits.max_bytes_per_turn) return {Flushed::kTurnOver, written};
    const IoResult result = transport.write(scratch.first(gather(scratch)));
    consume(result.bytes, on_frame_written);
    written += result.bytes;
    switch (result.status) {
      case IoStatus::kDone:
        continue;
      case IoStatus::kWantWrite:
      case IoStatus::kWantRead:  // TLS: a renegotiation, which we never start
        if (bytes_ > limits.max_queued_bytes && !slow_consumer_) {
          slow_consumer_ = true;
          return {Flushed::kSlowConsumer, written};
        }
        return {Flushed::kBlocked, written};
      case IoStatus::kClosed:
      case IoStatus::kFailed:
        return {Flushed::kFailed, written};
    }
  }
  emptied();
  return {Flushed::kEmptied, written};
}

// push, gather and emptied are inline, as the flush is: each runs once per recipient of
// every message.
inline SendQueue::Push SendQueue::push(const base::SharedFrame& frame, std::size_t max_queued_bytes,
                                       bool transport_full) {
  if (slow_consumer_) return Push::kRefused;
  pushed_since_sweep_ = true;
  frames_.push_back(frame);
  bytes_ += frame->size();
  if (bytes_ > max_queued_bytes && (transport_full || bytes_ > 2 * max_queued_bytes)) {
    slow_consumer_ = true;
    return Push::kSlowConsumer;
  }
  return frames() == 1 ? Push::kFirst : Push::kQueued;
}

inline std::size_t SendQueue::gather(std::span<iovec> scratch) const {
  std::size_t count = 0;
  std::size_t offset = front_offset_;
  for (std::size_t i = head_; i < frames_.size() && count < scratch.size(); ++i) {
    const std::string& bytes = *frames_[i];
    scratch[count].iov_base = const_cast<char*>(bytes.data() + offset);
    scratch[count].iov_len = bytes.size() - offset;
    ++count;
    offset = 0;
  }
  return count;
}

inline void SendQueue::emptied() {
  if (frames_.capacity() > kRetainedCapacity) {
    release();
    return;
  }
  frames_.clear();
  head_ = 0;
  front_offset_ = 0;
}

template <typename OnFrameWritten>
void SendQueue::consume(std::size_t written, OnFrameWritten& on_frame_written) {
  bytes_ -= written;
  // Pop what was fully written; remember how far into the next frame we got.
  written += front_offset_;
  while (head_ < frames_.size() && written >= frames_[head_]->size()) {
    written -= frames_[head_]->size();
    on_frame_written(frames_[head_]);
    frames_[head_].reset();
    ++head_;
  }
  front_offset_ = written;
}

}  // namespace roomcast::net
