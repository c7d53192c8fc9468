// RateLimiter: the chapter's policy — at most N events per window, then every event is
// refused for twice the window — counted per key (a user, a connection, an address), so
// that opening more connections or reconnecting buys nothing the key does not have.
//
// Memory is constant per key, whatever the rate: a fixed-window counter (window start,
// count, end of block), never a list of timestamps. A key's counter lives while a
// connection holds it, and after the last one lets go until its window and block are over
// (sweep), so a blocked key cannot reset the count by reconnecting.
//
// Thread-safe: the keys are spread over shards, each with its own lock, so the workers of a
// node share one limiter (a user's tabs on two workers spend one budget) and meet only on the
// same shard. A counter without a key (RateBudget's per-connection one) takes no lock: only
// its connection's worker touches it. Time comes from the caller.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
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
    const std::string* key = nullptr;  // in its shard's map; null: a connection's own (RateBudget)
    std::uint32_t events = 0;  // in the current window
    std::uint32_t holders = 0;  // connections that acquired it and have not released it
    std::uint32_t unreported = 0;  // events the cluster has not heard of yet
    bool dirty = false;  // in dirty: to report (or, new here, to ask the cluster about)
    std::uint8_t shard = 0;  // which of the limiter's shards holds it
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
  // How long from `now` until `counter` admits an event again: the rest of its block (or,
  // for a policy that blocks no longer than its window, of the window that refused), rounded
  // up to the millisecond; zero when it is not refusing. What a refused client is told to wait.
  std::chrono::milliseconds retry_after(const Counter* counter, base::SteadyTime now) const;

  // Forgets counters that nobody holds and whose window and block are over (they would
  // behave exactly like a fresh one). Cheap to call often: it walks the keys at most once
  // per window.
  void sweep(base::SteadyTime now);

  // Keys currently remembered.
  std::size_t size() const;

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

 private:
  struct Shard {
    mutable std::mutex mutex;  // mutable: const readers (size, retry_after) lock it too
    // Node-based: a Counter's address is stable while other keys are added and erased.
    std::unordered_map<std::string, Counter> counters;
    std::vector<Counter*> dirty;  // keyed counters with something to report
  };
  static constexpr std::size_t kShards = 16;

  Shard& shard_of(std::string_view key);
  Verdict admit_counted(Counter& counter, Shard* shard, base::SteadyTime now, std::uint32_t cost);
  bool is_spent(const Counter& counter, base::SteadyTime now) const;
  void mark_dirty(Counter& counter, Shard& shard);

  const RatePolicy policy_;
  const std::string name_;
  SharedBudgets* shared_ = nullptr;
  std::array<Shard, kShards> shards_;
  // When the next sweep is due (the steady clock's count; the first, one window after the
  // clock's zero): every worker's Hub calls sweep at each tick, and all but one call a window
  // cost one atomic load instead of 16 locks.
  std::atomic<base::SteadyTime::rep> next_sweep_{
      (base::SteadyTime{} + policy_.window).time_since_epoch().count()};
};

// RateBudget: who pays for an event (the Hub's policy, one instance per kind of event). A
// token holder spends the user's own budget, shared by every connection of the user. An
// anonymous connection spends a budget of its own, and, together with every anonymous
// connection from its client address, the address's much larger one: so a NAT, a company
// proxy or two browser tabs do not make strangers share the chapter's ten messages a
// minute, one flooder among them is limited alone, and reconnecting for a fresh budget
// is capped by the address's.
//
// Thread-safe, like RateLimiter; a Holder is used by its connection's worker only.
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
  // After a refusal: how long until `holder` may send again, the longest wait of the budgets
  // that refuse (a budget that admits waits zero). In a cluster, this node's view of them.
  std::chrono::milliseconds retry_after(const Holder& holder, base::SteadyTime now) const;
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

namespace roomcast::chat {

// RateBudgets: the node's budgets, one per kind of event, shared by every worker's Hub, so
// that a user's connections and an address's people have one budget whichever worker they
// landed on. With a cluster (SharedBudgets), what the node counts is also summed with the other
// nodes' (report(), and the cluster's answers merged as they come).
// Thread-safe. `shared` and `clock` must outlive it.
class RateBudgets final : private SharedBudgets::Listener {
 public:
  struct Policies {
    RatePolicy messages;  // per person
    RatePolicy address_messages;  // per client address, for anonymous connections together
    RatePolicy signals;
    RatePolicy address_signals;
    // App event types with a budget of their own (`rate=`): per person, by type.
    std::map<std::string, RatePolicy, std::less<>> events;
  };
  // An app event type's budget per client address: as many people as the chat budgets' defaults
  // (600 = 60 x 10) sized for behind one NAT or proxy, refused only until its window ends.
  static constexpr std::uint32_t kPeoplePerAddress = 60;
  RateBudgets(Policies policies, const base::Clock& clock, SharedBudgets* shared = nullptr);
  ~RateBudgets() override;

  RateBudgets(const RateBudgets&) = delete;
  RateBudgets& operator=(const RateBudgets&) = delete;

  RateBudget& messages() { return messages_; }
  RateBudget& signals() { return signals_; }
  // The budget of app event type `type`, or nullptr if it has none of its own.
  RateBudget* event(std::string_view type) {
    const auto it = events_.find(type);
    return it == events_.end() ? nullptr : it->second.get();
  }
  // Every app event type's own budget, by type (each connection holds one of each).
  const std::map<std::string, std::unique_ptr<RateBudget>, std::less<>>& events() const {
    return events_;
  }

  // Periodic work (each Hub's tick): tells the cluster what was counted, forgets spent keys.
  void tick(base::SteadyTime now);

 private:
  void on_budget(std::string_view budget, std::string_view key,
                 const SharedBudgets::State& state) override;

  const base::Clock& clock_;
  SharedBudgets* const shared_;
  RateBudget messages_;
  RateBudget signals_;
  std::map<std::string, std::unique_ptr<RateBudget>, std::less<>> events_;  // fixed once made
};

}  // namespace roomcast::chat
