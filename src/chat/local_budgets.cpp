#include "chat/local_budgets.h"

namespace roomcast::chat {

void LocalBudgets::set_budget_listener(Listener* listener) {
  std::lock_guard lock(mutex_);
  listener_ = listener;
}

void LocalBudgets::spend(std::vector<Spend> spends) {
  std::vector<State> states;
  states.reserve(spends.size());
  Listener* listener = nullptr;
  {
    std::lock_guard lock(mutex_);
    listener = listener_;
    const auto now = clock_.now();
    for (const Spend& spend : spends) {
      auto it = limiters_.find(spend.budget);
      if (it == limiters_.end()) {
        it = limiters_
                 .emplace(spend.budget, std::make_unique<RateLimiter>(spend.policy, spend.budget))
                 .first;
      }
      states.push_back(it->second->tally(spend.key, spend.events, now));
      it->second->sweep(now);
    }
  }
  if (listener == nullptr) return;
  for (std::size_t i = 0; i < spends.size(); ++i) {
    listener->on_budget(spends[i].budget, spends[i].key, states[i]);
  }
}

}  // namespace roomcast::chat
