// SharedBudgets: rate budgets that span the nodes of a cluster, so that reconnecting to
// another node gives nobody a fresh budget. A single node needs none of this; with a
// cluster (cluster::RedisCluster) every node counts its clients' events on its own
// counters and admits or refuses at once (a worker never waits for the network), reports
// what it counted a moment later (Hub::tick, every 20 ms), and merges the answer: the key's
// count over every node, and how long its window and block still last. So two nodes may
// together let a few events more through than the budget in the instant before they hear
// of each other; nobody gets a second budget.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat/rate_policy.h"

namespace roomcast::chat {

class SharedBudgets {
 public:
  struct Spend {
    std::string budget;  // which one: RateLimiter's name ("messages/person", ...)
    std::string key;  // whose: a user ("user:alice") or a client address
    std::uint32_t events = 0;  // counted here since the last report; 0 only asks
    RatePolicy policy;
  };
  // A key's budget as the whole cluster has spent it.
  struct State {
    std::uint32_t events = 0;  // in the current window
    std::chrono::milliseconds window_left{0};
    std::chrono::milliseconds blocked_for{0};  // zero: not blocked
  };

  // How the cluster answers spend(). Called from the cluster's thread, never while it holds
  // a lock its other methods take; one call per Spend, unless the cluster is unreachable
  // (then none: the node's own counters go on limiting alone).
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void on_budget(std::string_view budget, std::string_view key, const State& state) = 0;
  };

  virtual ~SharedBudgets() = default;

  // Sets (or, with nullptr, clears) the listener.
  virtual void set_budget_listener(Listener* listener) = 0;

  // Adds each spend's events to its key's budget across the cluster. Returns at once.
  // Thread-safe.
  virtual void spend(std::vector<Spend> spends) = 0;
};

}  // namespace roomcast::chat
