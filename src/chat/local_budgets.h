// LocalBudgets: the rate budgets of one node's workers, summed, for a node without a cluster.
// Each worker's Hub counts its own connections' events and admits at once; a moment later it
// reports them (SharedBudgets::spend) and merges the node's total, exactly as nodes do through
// Redis (chat/shared_budgets.h). So a user with tabs on two workers, or many people behind one
// address, have one budget whatever worker their connections landed on.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/clock.h"
#include "chat/rate_limiter.h"
#include "chat/shared_budgets.h"

namespace roomcast::chat {

// Thread-safe. Answers each spend at once, from the caller's thread, after releasing its lock.
// The clock must outlive it.
class LocalBudgets final : public SharedBudgets {
 public:
  explicit LocalBudgets(const base::Clock& clock) : clock_(clock) {}

  LocalBudgets(const LocalBudgets&) = delete;
  LocalBudgets& operator=(const LocalBudgets&) = delete;

  void set_budget_listener(Listener* listener) override;
  void spend(std::vector<Spend> spends) override;

 private:
  const base::Clock& clock_;
  std::mutex mutex_;
  Listener* listener_ = nullptr;
  // One limiter per budget name, made with the policy of its first spend (every worker
  // reports a budget with the same policy).
  std::map<std::string, std::unique_ptr<RateLimiter>, std::less<>> limiters_;
};

}  // namespace roomcast::chat
