#include "chat/rate_limiter.h"

#include <algorithm>
#include <cstdint>

namespace roomcast::chat {

RateLimiter::Shard& RateLimiter::shard_of(std::string_view key) {
  return shards_[std::hash<std::string_view>{}(key) % kShards];
}

RateLimiter::Counter* RateLimiter::acquire(std::string_view key) {
  if (!policy_.enabled()) return nullptr;
  Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  auto it = shard.counters.find(std::string(key));
  if (it == shard.counters.end()) {
    it = shard.counters.emplace(std::string(key), Counter{}).first;
    it->second.key = &it->first;
    it->second.shard = static_cast<std::uint8_t>(&shard - shards_.data());
  }
  // A key (re)appearing here may have spent elsewhere meanwhile: ask the cluster.
  if (it->second.holders++ == 0) mark_dirty(it->second, shard);
  return &it->second;
}

void RateLimiter::mark_dirty(Counter& counter, Shard& shard) {
  if (shared_ == nullptr || counter.key == nullptr || counter.dirty) return;
  counter.dirty = true;
  shard.dirty.push_back(&counter);
}

void RateLimiter::report() {
  if (shared_ == nullptr) return;
  std::vector<SharedBudgets::Spend> spends;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    for (Counter* counter : shard.dirty) {
      spends.push_back({name_, *counter->key, counter->unreported, policy_});
      counter->unreported = 0;
      counter->dirty = false;
    }
    shard.dirty.clear();
  }
  if (!spends.empty()) shared_->spend(std::move(spends));
}

void RateLimiter::merge(std::string_view key, const SharedBudgets::State& state,
                        base::SteadyTime now) {
  Shard& shard = shard_of(key);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.counters.find(std::string(key));
  if (it == shard.counters.end()) return;
  Counter& counter = it->second;
  // Events counted here since the report are in neither number twice: keep the larger.
  if (state.blocked_for.count() > 0 && now + state.blocked_for > counter.blocked_until) {
    counter.blocked_until = now + state.blocked_for;
    if (policy_.block_windows > 0) counter.events = 0;  // as admit() leaves a block
  } else if (state.events > counter.events) {
    counter.events = state.events;
    counter.window_start = now - (policy_.window - state.window_left);
  }
}

void RateLimiter::release(Counter* counter) {
  if (counter == nullptr) return;
  std::lock_guard lock(shards_[counter->shard].mutex);
  // The counter stays until sweep(): erasing it now would let a blocked user start afresh
  // by reconnecting.
  if (counter->holders > 0) --counter->holders;
}

RateLimiter::Verdict RateLimiter::admit(Counter* counter, base::SteadyTime now,
                                        std::uint32_t cost) {
  if (counter == nullptr) return Verdict::kAllowed;
  if (counter->key == nullptr) return admit_counted(*counter, nullptr, now, cost);
  Shard& shard = shards_[counter->shard];
  std::lock_guard lock(shard.mutex);
  return admit_counted(*counter, &shard, now, cost);
}

RateLimiter::Verdict RateLimiter::admit_counted(Counter& counter, Shard* shard,
                                                base::SteadyTime now, std::uint32_t cost) {
  if (now < counter.blocked_until) return Verdict::kBlocked;
  if (counter.events == 0 || now - counter.window_start >= policy_.window) {
    counter.window_start = now;
    counter.events = 0;
  }
  // The cluster hears of every event judged in a window, the one that starts a block too.
  if (shard != nullptr) {
    counter.unreported += cost;
    mark_dirty(counter, *shard);
  }
  if (cost <= policy_.max_events - std::min(counter.events, policy_.max_events)) {
    counter.events += cost;
    return Verdict::kAllowed;
  }
  if (policy_.block_windows > 0) {
    counter.blocked_until = now + policy_.block();
    counter.events = 0;  // the window after the block starts empty
  } else {
    counter.blocked_until = counter.window_start + policy_.window;
  }
  return Verdict::kLimited;
}

std::chrono::milliseconds RateLimiter::retry_after(const Counter* counter,
                                                   base::SteadyTime now) const {
  if (counter == nullptr) return std::chrono::milliseconds(0);
  base::SteadyTime until{};
  if (counter->key == nullptr) {
    until = counter->blocked_until;
  } else {
    std::lock_guard lock(shards_[counter->shard].mutex);
    until = counter->blocked_until;
  }
  // A refusal always sets blocked_until (to the end of the block or of the window), and a
  // counter refuses exactly while now is before it.
  if (until <= now) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(until - now);
}

bool RateLimiter::is_spent(const Counter& counter, base::SteadyTime now) const {
  return now >= counter.blocked_until &&
         (counter.events == 0 || now - counter.window_start >= policy_.window);
}

void RateLimiter::sweep(base::SteadyTime now) {
  const auto at = now.time_since_epoch().count();
  auto due = next_sweep_.load(std::memory_order_relaxed);
  if (at < due) return;
  const auto next = (now + policy_.window).time_since_epoch().count();
  // One caller sweeps per window; another that sees it due at the same time leaves it.
  if (!next_sweep_.compare_exchange_strong(due, next, std::memory_order_relaxed)) return;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    std::erase_if(shard.counters, [&](const auto& entry) {
      return entry.second.holders == 0 && !entry.second.dirty && is_spent(entry.second, now);
    });
  }
}

std::size_t RateLimiter::size() const {
  std::size_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    total += shard.counters.size();
  }
  return total;
}

void RateBudget::attach(Holder& holder, std::string_view user_key, std::string_view address) {
  if (!user_key.empty()) {
    holder.person = people_.acquire(user_key);
    return;
  }
  holder.own = {};
  holder.person = people_.policy().enabled() ? &holder.own : nullptr;
  if (!address.empty()) holder.address = addresses_.acquire(address);
}

void RateBudget::detach(Holder& holder) {
  if (holder.person != &holder.own) people_.release(holder.person);
  addresses_.release(holder.address);
  holder.person = nullptr;
  holder.address = nullptr;
}

RateLimiter::Verdict RateBudget::admit(Holder& holder, base::SteadyTime now, std::uint32_t cost) {
  const auto verdict = people_.admit(holder.person, now, cost);
  if (verdict != RateLimiter::Verdict::kAllowed) return verdict;
  return addresses_.admit(holder.address, now, cost);
}

std::chrono::milliseconds RateBudget::retry_after(const Holder& holder,
                                                  base::SteadyTime now) const {
  return std::max(people_.retry_after(holder.person, now),
                  addresses_.retry_after(holder.address, now));
}

void RateBudget::sweep(base::SteadyTime now) {
  people_.sweep(now);
  addresses_.sweep(now);
}

void RateBudget::share(SharedBudgets* shared) {
  people_.share(shared);
  addresses_.share(shared);
}

void RateBudget::report() {
  people_.report();
  addresses_.report();
}

void RateBudget::merge(std::string_view budget, std::string_view key,
                       const SharedBudgets::State& state, base::SteadyTime now) {
  if (budget == people_.name()) people_.merge(key, state, now);
  if (budget == addresses_.name()) addresses_.merge(key, state, now);
}

RateBudgets::RateBudgets(Policies policies, const base::Clock& clock, SharedBudgets* shared)
    : clock_(clock),
      shared_(shared),
      messages_("messages", policies.messages, policies.address_messages),
      signals_("signals", policies.signals, policies.address_signals) {
  for (const auto& [type, person] : policies.events) {
    // Sized like the chat budgets' address defaults, and never blocking past the window.
    const RatePolicy address{
        person.max_events * std::min(kPeoplePerAddress, UINT32_MAX / person.max_events),
        person.window, 0};
    events_.emplace(type, std::make_unique<RateBudget>("event:" + type, person, address));
  }
  if (shared_ == nullptr) return;
  messages_.share(shared_);
  signals_.share(shared_);
  for (auto& [type, budget] : events_) budget->share(shared_);
  shared_->set_budget_listener(this);
}

RateBudgets::~RateBudgets() {
  if (shared_ != nullptr) shared_->set_budget_listener(nullptr);
}

void RateBudgets::tick(base::SteadyTime now) {
  messages_.report();
  signals_.report();
  messages_.sweep(now);
  signals_.sweep(now);
  for (auto& [type, budget] : events_) {
    budget->report();
    budget->sweep(now);
  }
}

void RateBudgets::on_budget(std::string_view budget, std::string_view key,
                            const SharedBudgets::State& state) {
  const auto now = clock_.now();
  messages_.merge(budget, key, state, now);
  signals_.merge(budget, key, state, now);
  // Only a type's budgets are named "event:TYPE/...".
  if (!budget.starts_with("event:")) return;
  for (auto& [type, own] : events_) own->merge(budget, key, state, now);
}

}  // namespace roomcast::chat
