#include "chat/rate_limiter.h"

namespace roomcast::chat {

RateLimiter::Counter* RateLimiter::acquire(std::string_view key) {
  if (!policy_.enabled()) return nullptr;
  auto it = counters_.find(std::string(key));
  if (it == counters_.end()) it = counters_.emplace(std::string(key), Counter{}).first;
  ++it->second.holders;
  return &it->second;
}

void RateLimiter::release(Counter* counter) {
  // The counter stays until sweep(): erasing it now would let a blocked user start afresh
  // by reconnecting.
  if (counter != nullptr && counter->holders > 0) --counter->holders;
}

RateLimiter::Verdict RateLimiter::admit(Counter* counter, base::SteadyTime now) {
  if (counter == nullptr) return Verdict::kAllowed;
  if (now < counter->blocked_until) return Verdict::kBlocked;
  if (counter->events == 0 || now - counter->window_start >= policy_.window) {
    counter->window_start = now;
    counter->events = 0;
  }
  if (counter->events < policy_.max_events) {
    ++counter->events;
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
    return entry.second.holders == 0 && is_spent(entry.second, now);
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

RateLimiter::Verdict RateBudget::admit(Holder& holder, base::SteadyTime now) {
  const auto verdict = people_.admit(holder.person, now);
  if (verdict != RateLimiter::Verdict::kAllowed) return verdict;
  return addresses_.admit(holder.address, now);
}

void RateBudget::sweep(base::SteadyTime now) {
  people_.sweep(now);
  addresses_.sweep(now);
}

}  // namespace roomcast::chat
