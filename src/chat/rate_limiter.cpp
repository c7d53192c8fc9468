#include "chat/rate_limiter.h"

#include <algorithm>

namespace roomcast::chat {

RateLimiter::Counter* RateLimiter::acquire(std::string_view key) {
  if (!policy_.enabled()) return nullptr;
  auto it = counters_.find(std::string(key));
  if (it == counters_.end()) {
    it = counters_.emplace(std::string(key), Counter{}).first;
    it->second.key = &it->first;
  }
  // A key (re)appearing here may have spent elsewhere meanwhile: ask the cluster.
  if (it->second.holders++ == 0) mark_dirty(it->second);
  return &it->second;
}

void RateLimiter::mark_dirty(Counter& counter) {
  if (shared_ == nullptr || counter.key == nullptr || counter.dirty) return;
  counter.dirty = true;
  dirty_.push_back(&counter);
}

void RateLimiter::report() {
  if (shared_ == nullptr || dirty_.empty()) return;
  std::vector<SharedBudgets::Spend> spends;
  spends.reserve(dirty_.size());
  for (Counter* counter : dirty_) {
    spends.push_back({name_, *counter->key, counter->unreported, policy_});
    counter->unreported = 0;
    counter->dirty = false;
  }
  dirty_.clear();
  shared_->spend(std::move(spends));
}

void RateLimiter::merge(std::string_view key, const SharedBudgets::State& state,
                        base::SteadyTime now) {
  const auto it = counters_.find(std::string(key));
  if (it == counters_.end()) return;
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

SharedBudgets::State RateLimiter::tally(std::string_view key, std::uint32_t events,
                                        base::SteadyTime now) {
  SharedBudgets::State state;
  Counter* counter = acquire(key);
  if (counter == nullptr) return state;  // disabled: never limited
  if (events > 0 && now >= counter->blocked_until) admit(counter, now, events);
  release(counter);
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  const bool in_window = counter->events > 0 && now - counter->window_start < policy_.window;
  state.events = in_window ? counter->events : 0;
  if (in_window) {
    state.window_left = duration_cast<milliseconds>(policy_.window - (now - counter->window_start));
  }
  if (now < counter->blocked_until) {
    state.blocked_for = duration_cast<milliseconds>(counter->blocked_until - now);
  }
  return state;
}

void RateLimiter::release(Counter* counter) {
  // The counter stays until sweep(): erasing it now would let a blocked user start afresh
  // by reconnecting.
  if (counter != nullptr && counter->holders > 0) --counter->holders;
}

RateLimiter::Verdict RateLimiter::admit(Counter* counter, base::SteadyTime now,
                                        std::uint32_t cost) {
  if (counter == nullptr) return Verdict::kAllowed;
  if (now < counter->blocked_until) return Verdict::kBlocked;
  if (counter->events == 0 || now - counter->window_start >= policy_.window) {
    counter->window_start = now;
    counter->events = 0;
  }
  // The cluster hears of every event judged in a window, the one that starts a block too.
  counter->unreported += cost;
  mark_dirty(*counter);
  if (cost <= policy_.max_events - std::min(counter->events, policy_.max_events)) {
    counter->events += cost;
    return Verdict::kAllowed;
  }
  if (policy_.block_windows > 0) {
    counter->blocked_until = now + policy_.block();
    counter->events = 0;  // the window after the block starts empty
  } else {
    counter->blocked_until = counter->window_start + policy_.window;
  }
  return Verdict::kLimited;
}

bool RateLimiter::is_spent(const Counter& counter, base::SteadyTime now) const {
  return now >= counter.blocked_until &&
         (counter.events == 0 || now - counter.window_start >= policy_.window);
}

void RateLimiter::sweep(base::SteadyTime now) {
  if (counters_.empty() || now - last_sweep_ < policy_.window) return;
  last_sweep_ = now;
  std::erase_if(counters_, [&](const auto& entry) {
    return entry.second.holders == 0 && !entry.second.dirty && is_spent(entry.second, now);
  });
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

}  // namespace roomcast::chat
