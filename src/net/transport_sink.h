// TransportSink: the net layer's implementation of chat::Sink, one per worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <unordered_map>

#include "base/shared_frame.h"
#include "chat/sink.h"
#include "ws/frame.h"

namespace roomcast::net {

class Worker;

// Hands what the worker's Hub says to the worker's own connections: every recipient of a Hub
// lives on its worker, so a message is encoded into a WebSocket frame once and queued on each
// recipient's connection at once, with no lock and no hop to another thread. Queuing never
// writes: the worker flushes each connection once per batch of work, and closes (a slow
// consumer, an expired token) happen after the batch, so the Hub is never called back from
// inside a call to the sink.
// Worker-affine, like the Hub that calls it; published() may be read from any thread.
class TransportSink final : public chat::Sink {
 public:
  explicit TransportSink(Worker& worker) : worker_(worker) {}

  void send(chat::ConnectionId to, std::string payload) override;
  void broadcast(const chat::MemberSnapshot& members, std::string payload,
                 chat::ConnectionId except) override;
  // Records the message's fan-out, and its delivery latency once the worker's flush phase
  // has handed its frame to the recipients' sockets (Worker::note_delivery).
  void broadcast_message(const chat::MemberSnapshot& members, std::string payload,
                         chat::ConnectionId except, const chat::Delivery& delivery) override;
  void broadcast_binary(const chat::MemberSnapshot& members, std::string_view payload,
                        chat::ConnectionId except) override;
  // Conflation: a recipient whose socket is full and whose queue still holds the previous
  // frame of `key` has that frame replaced by this one (moved to the end: order with the rest
  // is kept). Not for connections with a compression context of their own, whose frames depend
  // on the ones before them.
  void broadcast_latest(const chat::MemberSnapshot& members, std::string payload,
                        chat::ConnectionId except, std::uint64_t key) override;
  void close(chat::ConnectionId who, std::uint16_t close_code, std::string reason) override;
  void hold_reading(chat::ConnectionId who, bool hold) override;

  // Messages handed out (a broadcast counts once), for /metrics.
  std::uint64_t published() const { return published_.load(std::memory_order_relaxed); }

 private:
  // Frames `payload` once (as `opcode`) and queues it on every member here but `except`;
  // returns how many.
  std::uint64_t fan_out(const chat::MemberSnapshot& members, ws::Opcode opcode,
                        std::string_view payload, chat::ConnectionId except);

  // The frames of the last conflating broadcast of each key (plain and compressed), by
  // identity in the recipients' queues; forgotten once no queue holds them.
  struct Latest {
    base::SharedFrame plain;
    base::SharedFrame compressed;
  };
  std::unordered_map<std::uint64_t, Latest> latest_;

  Worker& worker_;
  std::atomic<std::uint64_t> published_{0};
};

}  // namespace roomcast::net
