// RateLimiter: the chapter's policy — at most N events per window, then every event is
// refused for twice the window — counted per key (a user, a connection, an address), so
// that opening more connections or reconnecting buys nothing the key does not have.
//
// Memory is constant per key, whatever the rate: a fixed-window counter (window start,
// count, end of block), never a list of timestamps. A key's counter lives while a
// connection holds it, and after the last one lets go until its window and block are over
// (sweep), so a blocked key cannot reset the count by reconnecting.
//
// Not thread-safe: the Hub calls it under its own lock. Time comes from the caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "chat/rate_policy.h"
#include "chat/shared_budgets.h"

namespace roomcast::chat {

class RateLimiter {
 public:
  // One key's state. Opaque to callers; shared by every connection of the key.
  class Counter {
   private:
    friend class RateLimiter;
    base::SteadyTime window_start{};
    base::SteadyTime blocked_until{};
    const std::string* key = nullptr;  // in counters_; null: a connection's own (RateBudget)
    std::uint32_t events = 0;  // in the current window
    std::uint32_t holders = 0;  // connections that acquired it and have not released it
    std::uint32_t unreported = 0;  // events the cluster has not heard of yet
    bool dirty = false;  // in dirty_: to report (or, new here, to ask the cluster about)
  };

  enum class Verdict : std::uint8_t {
    kAllowed,
    kLimited,  // refused, and this event started the block
    kBlocked,  // refused: the block is still on
  };

  // `name` says which budget this is to the other nodes of a cluster (see share()).
  explicit RateLimiter(RatePolicy policy, std::string name = {})
      : policy_(policy), name_(std::move(name)) {}

  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  const RatePolicy& policy() const { return policy_; }

  // The counter of `key`, made on first use. Returns nullptr when the policy is disabled
  // (admit() then allows everything). The pointer stays valid until the matching
  // release(), however many other keys come and go.
  Counter* acquire(std::string_view key);
  void release(Counter* counter);

  // Counts an event of `counter`'s key at `now`, worth `cost` events (a message to several
  // rooms costs one per room), and says whether it may go through.
  Verdict admit(Counter* counter, base::SteadyTime now, std::uint32_t cost = 1);

  // Forgets counters that nobody holds and whose window and block are over (they would
  // behave exactly like a fresh one). Cheap to call often: it walks the keys at most once
  // per window.
  void sweep(base::SteadyTime now);

  // Keys currently remembered.
  std::size_t size() const { return counters_.size(); }

  // Cluster: from now on, the keys' budgets are shared with the other nodes through
  // `shared` (which must outlive the limiter). report() tells them what was counted here;
  // merge() takes in what they answer.
  void share(SharedBudgets* shared) { shared_ = shared; }
  // Sends the events counted since the last report, and asks about keys new here (so a
  // user who comes from another node arrives with what they spent there). Call often.
  void report();
  // The cluster's state of `key`, as SharedBudgets::Listener heard it; ignored when the
  // key is no longer remembered.
  void merge(std::string_view key, const SharedBudgets::State& state, base::SteadyTime now);
  const std::string& name() const { return name_; }

  // The other side of sharing: counts `events` that a sharer reported for `key` at `now` (as
  // admit() would judge them) and returns the key's state as SharedBudgets answers it, for
  // chat::LocalBudgets, which sums a node's workers as Redis sums the nodes.
  SharedBudgets::State tally(std::string_view key, std::uint32_t events, base::SteadyTime now);

 private:
  bool is_spent(const Counter& counter, base::SteadyTime now) const;
  void mark_dirty(Counter& counter);

  const RatePolicy policy_;
  const std::string name_;
  SharedBudgets* shared_ = nullptr;
  std::vector<Counter*> dirty_;  // keyed counters with something to report
  base::SteadyTime last_sweep_{};
  // Node-based: a Counter's address is stable while other keys are added and erased.
  std::unordered_map<std::string, Counter> counters_;
};

// RateBudget: who pays for an event (the Hub's policy, one instance per kind of event). A
// token holder spends the user's own budget, shared by every connection of the user. An
// anonymous connection spends a budget of its own, and, together with every anonymous
// connection from its client address, the address's much larger one: so a NAT, a company
// proxy or two browser tabs do not make strangers share the chapter's ten messages a
// minute, one flooder among them is limited alone, and reconnecting for a fresh budget
// is capped by the address's.
//
// Not thread-safe, like RateLimiter: the Hub calls it under its lock.
class RateBudget {
 public:
  // One connection's hold on its budgets, kept by the Hub in the connection's session.
  // An anonymous connection's own counter lives here: nobody else can name it.
  class Holder {
   private:
    friend class RateBudget;
    RateLimiter::Counter* person = nullptr;  // the user's, or &own; null: no limit
    RateLimiter::Counter* address = nullptr;  // anonymous only; null: no limit
    RateLimiter::Counter own;
  };

  // `name` ("messages", "signals") names its two budgets to the other nodes of a cluster.
  RateBudget(std::string_view name, RatePolicy person, RatePolicy address)
      : people_(person, std::string(name) + "/person"),
        addresses_(address, std::string(name) + "/address") {}

  RateBudget(const RateBudget&) = delete;
  RateBudget& operator=(const RateBudget&) = delete;

  // Starts `holder` on the budgets of `user_key` (a user id; empty: anonymous) and
  // `address` (the client's address, used for anonymous connections only; empty: none).
  // Pair with detach() before `holder` goes.
  void attach(Holder& holder, std::string_view user_key, std::string_view address);
  void detach(Holder& holder);

  // Counts an event of `holder` at `now`, worth `cost` events. The person's budget is asked
  // first, so events it refuses cost the address nothing.
  RateLimiter::Verdict admit(Holder& holder, base::SteadyTime now, std::uint32_t cost = 1);
  // The person's policy (what one person may spend per window).
  const RatePolicy& person_policy() const { return people_.policy(); }

  void sweep(base::SteadyTime now);

  // Cluster: see RateLimiter::share, report and merge (a connection's own budget stays
  // here: the connection cannot move). merge() takes what is addressed to either budget.
  void share(SharedBudgets* shared);
  void report();
  void merge(std::string_view budget, std::string_view key, const SharedBudgets::State& state,
             base::SteadyTime now);

 private:
  RateLimiter people_;  // by user id
  RateLimiter addresses_;  // by client address
};

}  // namespace roomcast::chat
