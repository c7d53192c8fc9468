// FanoutBacklog: the server's measure of fan-out work queued and not yet done.
#pragma once

#include <atomic>
#include <cstddef>

namespace roomcast::net {

// Deliveries posted to the workers' mailboxes and not yet handed to connections, counted in
// recipients over all workers. When it, plus what waits for the history store
// (chat::Hub::deliveries_awaiting_store), passes ServerOptions::max_pending_deliveries, workers
// stop reading from the connections that feed it (Connection::pause_reading) until it is half
// drained: the backlog then waits in those senders' sockets (TCP pushes back on them), not
// in our memory; pongs are read as usual, and a join or a small room's message waits behind
// at most the bound. Thread-safe (one relaxed atomic: a threshold, not an exact count, is
// all that is asked of it). Owned by the Server.
class FanoutBacklog {
 public:
  void add(std::size_t recipients) { pending_.fetch_add(recipients, std::memory_order_relaxed); }
  void remove(std::size_t recipients) { pending_.fetch_sub(recipients, std::memory_order_relaxed); }
  std::size_t pending() const { return pending_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::size_t> pending_{0};
};

}  // namespace roomcast::net
