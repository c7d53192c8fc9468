#include "chat/rate_limiter.h"

#include <gtest/gtest.h>

namespace roomcast::chat {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Verdict = RateLimiter::Verdict;

class RateLimiterTest : public ::testing::Test {
 protected:
  // Admits `n` events at the current time; returns how many were allowed.
  int admit_n(RateLimiter::Counter* counter, int n) {
    int allowed = 0;
    for (int i = 0; i < n; ++i) allowed += limiter.admit(counter, clock.now()) == Verdict::kAllowed;
    return allowed;
  }

  base::ManualClock clock;
  RateLimiter limiter{RatePolicy{10, seconds(60)}};
};

TEST_F(RateLimiterTest, TheChaptersPolicyTenPerMinuteThenBlockedForTwo) {
  auto* alice = limiter.acquire("user:alice");
  EXPECT_EQ(admit_n(alice, 10), 10);
  EXPECT_EQ(limiter.admit(alice, clock.now()), Verdict::kLimited);
  EXPECT_EQ(limiter.admit(alice, clock.now()), Verdict::kBlocked);
  // The window is over, but the block lasts twice the window.
  clock.advance(seconds(61));
  EXPECT_EQ(limiter.admit(alice, clock.now()), Verdict::kBlocked);
  clock.advance(seconds(59));
  EXPECT_EQ(limiter.admit(alice, clock.now()), Verdict::kAllowed);
  EXPECT_EQ(admit_n(alice, 20), 9);  // a fresh window
}

TEST_F(RateLimiterTest, AWindowThatEndsStartsAfresh) {
  auto* alice = limiter.acquire("user:alice");
  EXPECT_EQ(admit_n(alice, 6), 6);
  clock.advance(seconds(59));
  EXPECT_EQ(admit_n(alice, 4), 4);
  clock.advance(seconds(1));  // 60 s since the window opened
  EXPECT_EQ(admit_n(alice, 10), 10);
}

TEST_F(RateLimiterTest, KeysAreIndependentAndConnectionsOfOneKeyShareACounter) {
  auto* alice_phone = limiter.acquire("user:alice");
  auto* alice_laptop = limiter.acquire("user:alice");
  auto* bob = limiter.acquire("user:bob");
  EXPECT_EQ(alice_phone, alice_laptop);
  EXPECT_EQ(admit_n(alice_phone, 5) + admit_n(alice_laptop, 10), 10);
  EXPECT_EQ(admit_n(bob, 10), 10);
  EXPECT_EQ(limiter.size(), 2u);
}

TEST_F(RateLimiterTest, ADisabledPolicyAllowsEverythingAndRemembersNothing) {
  RateLimiter off(RatePolicy{0, seconds(60)});
  auto* counter = off.acquire("user:alice");
  EXPECT_EQ(counter, nullptr);
  for (int i = 0; i < 10'000; ++i) ASSERT_EQ(off.admit(counter, clock.now()), Verdict::kAllowed);
  EXPECT_EQ(off.size(), 0u);
}

TEST_F(RateLimiterTest, ABlockedUserCannotResetByReconnecting) {
  auto* first = limiter.acquire("address:10.0.0.1");
  admit_n(first, 11);
  limiter.release(first);
  clock.advance(seconds(61));
  limiter.sweep(clock.now());  // blocked until 120 s: kept
  auto* again = limiter.acquire("address:10.0.0.1");
  EXPECT_EQ(limiter.admit(again, clock.now()), Verdict::kBlocked);
  limiter.release(again);
}

TEST_F(RateLimiterTest, SweepForgetsOnlySpentCountersNobodyHolds) {
  auto* held = limiter.acquire("user:held");
  auto* gone = limiter.acquire("user:gone");
  admit_n(held, 1);
  admit_n(gone, 1);
  limiter.release(gone);
  clock.advance(seconds(30));
  limiter.sweep(clock.now());  // within the first window: nothing is spent, and too early
  EXPECT_EQ(limiter.size(), 2u);
  clock.advance(seconds(31));
  limiter.sweep(clock.now());
  EXPECT_EQ(limiter.size(), 1u);  // "gone" behaved like a fresh key: forgotten
  EXPECT_EQ(limiter.admit(held, clock.now()), Verdict::kAllowed);  // still valid
}

TEST_F(RateLimiterTest, MemoryIsConstantPerKeyWhateverTheRate) {
  RateLimiter generous(RatePolicy{1'000'000, seconds(1)});
  auto* counter = generous.acquire("user:fast");
  for (int i = 0; i < 100'000; ++i) generous.admit(counter, clock.now());
  EXPECT_EQ(generous.size(), 1u);
  EXPECT_LE(sizeof(RateLimiter::Counter), 40u);
}

TEST_F(RateLimiterTest, ASharedBudgetRefusesUntilItsWindowEndsAndBlocksNoLonger) {
  RateLimiter address(RatePolicy{3, seconds(60), 0});
  auto* counter = address.acquire("203.0.113.7");
  EXPECT_EQ(admit_n(counter, 3), 3);
  EXPECT_EQ(address.admit(counter, clock.now()), Verdict::kLimited);
  clock.advance(seconds(59));
  EXPECT_EQ(address.admit(counter, clock.now()), Verdict::kBlocked);
  clock.advance(seconds(1));
  EXPECT_EQ(address.admit(counter, clock.now()), Verdict::kAllowed);
  address.release(counter);
}

TEST_F(RateLimiterTest, ARefusedKeyIsToldToWaitUntilItsBlockEnds) {
  auto* alice = limiter.acquire("user:alice");
  EXPECT_EQ(limiter.retry_after(alice, clock.now()), milliseconds(0));  // nothing refused
  EXPECT_EQ(admit_n(alice, 10), 10);
  EXPECT_EQ(limiter.retry_after(alice, clock.now()), milliseconds(0));  // spent, not refused
  EXPECT_EQ(limiter.admit(alice, clock.now()), Verdict::kLimited);
  // The chapter's block: twice the window from the refused event.
  EXPECT_EQ(limiter.retry_after(alice, clock.now()), seconds(120));
  clock.advance(milliseconds(30'500));
  EXPECT_EQ(limiter.admit(alice, clock.now()), Verdict::kBlocked);
  const auto wait = limiter.retry_after(alice, clock.now());
  EXPECT_EQ(wait, milliseconds(89'500));
  // Waiting exactly that long is enough, and a moment less is not.
  clock.advance(wait - milliseconds(1));
  EXPECT_EQ(limiter.admit(alice, clock.now()), Verdict::kBlocked);
  clock.advance(milliseconds(1));
  EXPECT_EQ(limiter.retry_after(alice, clock.now()), milliseconds(0));
  EXPECT_EQ(limiter.admit(alice, clock.now()), Verdict::kAllowed);
  limiter.release(alice);
}

TEST_F(RateLimiterTest, AWaitIsRoundedUpToTheMillisecond) {
  using std::chrono::microseconds;
  RateLimiter fine(RatePolicy{1, seconds(1)});
  auto* counter = fine.acquire("user:alice");
  const base::SteadyTime start = clock.now();
  EXPECT_EQ(fine.admit(counter, start), Verdict::kAllowed);
  EXPECT_EQ(fine.admit(counter, start + microseconds(250)), Verdict::kLimited);
  // Blocked until 2.00025 s; 500 us of it remain: a client told 0 would come back too soon.
  EXPECT_EQ(fine.retry_after(counter, start + microseconds(1'999'750)), milliseconds(1));
  fine.release(counter);
}

TEST_F(RateLimiterTest, ASharedBudgetsWaitIsTheRestOfItsWindow) {
  RateLimiter address(RatePolicy{3, seconds(60), 0});
  auto* counter = address.acquire("203.0.113.7");
  EXPECT_EQ(admit_n(counter, 1), 1);
  clock.advance(seconds(20));
  EXPECT_EQ(admit_n(counter, 2), 2);
  EXPECT_EQ(address.admit(counter, clock.now()), Verdict::kLimited);
  EXPECT_EQ(address.retry_after(counter, clock.now()), seconds(40));  // the window opened at 0
  address.release(counter);
}

TEST_F(RateLimiterTest, ADisabledPolicyNeverMakesAnyoneWait) {
  RateLimiter off(RatePolicy{0, seconds(60)});
  EXPECT_EQ(off.retry_after(off.acquire("user:alice"), clock.now()), milliseconds(0));
}

class RateBudgetTest : public RateLimiterTest {
 protected:
  RateBudget budget{"messages", RatePolicy{2, seconds(60)}, RatePolicy{5, seconds(60), 0}};

  int admit_n(RateBudget::Holder& holder, int n) {
    int allowed = 0;
    for (int i = 0; i < n; ++i) allowed += budget.admit(holder, clock.now()) == Verdict::kAllowed;
    return allowed;
  }
};

TEST_F(RateBudgetTest, AnonymousConnectionsHaveTheirOwnBudgetAndShareTheirAddresss) {
  RateBudget::Holder a, b, c;
  budget.attach(a, "", "10.0.0.1");
  budget.attach(b, "", "10.0.0.1");
  budget.attach(c, "", "10.0.0.1");
  EXPECT_EQ(admit_n(a, 10), 2);  // a's own budget; refusals cost the address nothing
  EXPECT_EQ(admit_n(b, 10), 2);
  EXPECT_EQ(admit_n(c, 10), 1);  // the address's fifth
  for (auto* holder : {&a, &b, &c}) budget.detach(*holder);
}

TEST_F(RateBudgetTest, AUsersConnectionsShareOneBudgetAndNoAddresss) {
  RateBudget::Holder phone, laptop, anonymous;
  budget.attach(phone, "user:alice", "10.0.0.1");
  budget.attach(laptop, "user:alice", "10.0.0.2");
  budget.attach(anonymous, "", "10.0.0.1");
  EXPECT_EQ(admit_n(phone, 1) + admit_n(laptop, 10), 2);
  EXPECT_EQ(admit_n(anonymous, 10), 2);
  for (auto* holder : {&phone, &laptop, &anonymous}) budget.detach(*holder);
}

TEST_F(RateBudgetTest, TheWaitIsTheRefusingBudgets) {
  RateBudget::Holder a, b, c;
  budget.attach(a, "", "10.0.0.1");
  budget.attach(b, "", "10.0.0.1");
  budget.attach(c, "", "10.0.0.1");
  EXPECT_EQ(admit_n(a, 3), 2);  // a's own budget refuses: blocked for two windows
  EXPECT_EQ(budget.retry_after(a, clock.now()), seconds(120));
  clock.advance(seconds(10));
  EXPECT_EQ(admit_n(b, 2) + admit_n(c, 2), 3);  // the address's fifth, then it refuses
  // c's own budget admitted; the address refuses until its window (opened at 0) ends.
  EXPECT_EQ(budget.retry_after(c, clock.now()), seconds(50));
  EXPECT_EQ(budget.retry_after(a, clock.now()), seconds(110));  // the longer of a's two
  for (auto* holder : {&a, &b, &c}) budget.detach(*holder);
}

TEST_F(RateBudgetTest, DisabledPoliciesAllowEverything) {
  RateBudget off{"messages", RatePolicy{0, seconds(60)}, RatePolicy{0, seconds(60), 0}};
  RateBudget::Holder holder;
  off.attach(holder, "", "10.0.0.1");
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(off.admit(holder, clock.now()), Verdict::kAllowed);
  off.detach(holder);
}

// What a node tells the cluster, kept for the test to look at.
class RecordingBudgets : public SharedBudgets {
 public:
  void set_budget_listener(Listener*) override {}
  void spend(std::vector<Spend> spends) override {
    for (auto& spend : spends) sent.push_back(std::move(spend));
  }
  std::vector<Spend> sent;
};

TEST_F(RateLimiterTest, ASharedLimiterAsksAboutNewKeysAndReportsWhatItCounted) {
  RecordingBudgets cluster;
  RateLimiter shared(RatePolicy{3, seconds(60)}, "messages/person");
  shared.share(&cluster);
  auto* alice = shared.acquire("user:alice");
  shared.report();
  ASSERT_EQ(cluster.sent.size(), 1u);
  EXPECT_EQ(cluster.sent[0].budget, "messages/person");
  EXPECT_EQ(cluster.sent[0].key, "user:alice");
  EXPECT_EQ(cluster.sent[0].events, 0u);  // only asks
  for (int i = 0; i < 5; ++i) shared.admit(alice, clock.now());
  shared.report();
  ASSERT_EQ(cluster.sent.size(), 2u);
  EXPECT_EQ(cluster.sent[1].events, 4u);  // 3 allowed, and the one that started the block
  shared.report();
  EXPECT_EQ(cluster.sent.size(), 2u);  // nothing new: nothing sent
  shared.release(alice);
}

TEST_F(RateLimiterTest, WhatTheClusterSpentElsewhereCountsHere) {
  RecordingBudgets cluster;
  RateLimiter shared(RatePolicy{5, seconds(60)}, "messages/person");
  shared.share(&cluster);
  auto* bob = shared.acquire("user:bob");
  // Bob spent 4 on another node, whose window has 30 s left.
  shared.merge("user:bob", {4, seconds(30), seconds(0)}, clock.now());
  EXPECT_EQ(shared.admit(bob, clock.now()), Verdict::kAllowed);
  EXPECT_EQ(shared.admit(bob, clock.now()), Verdict::kLimited);
  shared.release(bob);

  auto* carol = shared.acquire("user:carol");
  shared.merge("user:carol", {0, seconds(0), seconds(90)}, clock.now());  // blocked elsewhere
  EXPECT_EQ(shared.admit(carol, clock.now()), Verdict::kBlocked);
  clock.advance(seconds(90));
  EXPECT_EQ(shared.admit(carol, clock.now()), Verdict::kAllowed);
  shared.merge("user:nobody", {9, seconds(1), seconds(1)}, clock.now());  // not here: ignored
  EXPECT_EQ(shared.size(), 2u);
  shared.release(carol);
}

TEST_F(RateLimiterTest, AConnectionsOwnBudgetIsNeverReported) {
  RecordingBudgets cluster;
  RateBudget budget{"messages", RatePolicy{2, seconds(60)}, RatePolicy{5, seconds(60), 0}};
  budget.share(&cluster);
  RateBudget::Holder anonymous;
  budget.attach(anonymous, "", "10.0.0.1");
  budget.admit(anonymous, clock.now());
  budget.report();
  ASSERT_EQ(cluster.sent.size(), 1u);
  EXPECT_EQ(cluster.sent[0].budget, "messages/address");
  EXPECT_EQ(cluster.sent[0].key, "10.0.0.1");
  EXPECT_EQ(cluster.sent[0].events, 1u);
  budget.detach(anonymous);
}

}  // namespace
}  // namespace roomcast::chat
