// TransportSink: the net layer's implementation of chat::Sink.
#pragma once

#include <atomic>
#include <vector>

#include "chat/sink.h"

namespace roomcast::net {

class Worker;

// Encodes each message into a WebSocket frame once and hands one pointer to it to every
// worker with recipients. Each worker's mailbox is FIFO, and the Hub calls the sink under
// its lock, so each recipient sees messages in the Hub's order.
// Thread-safe; the workers must outlive it.
class TransportSink final : public chat::Sink {
 public:
  void attach(std::vector<Worker*> workers) { workers_ = std::move(workers); }

  void send(chat::ConnectionId to, std::string payload) override;
  void broadcast(const chat::MemberSnapshot& members, std::string payload,
                 chat::ConnectionId except) override;
  void close(chat::ConnectionId who, std::uint16_t close_code, std::string reason) override;

  std::uint64_t published() const { return published_.load(std::memory_order_relaxed); }

 private:
  std::vector<Worker*> workers_;
  std::atomic<std::uint64_t> published_{0};
};

}  // namespace roomcast::net
