// Specification of the sweep's schedule (net/sweep_schedule.h): every slot once per sweep
// interval, in slices; after a stall, a round that judges no one, then a round that judges
// every connection once, late or not.
#include "net/sweep_schedule.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

namespace roomcast::net {
namespace {

using std::chrono::milliseconds;

base::SteadyTime at(int ms) {
  return base::SteadyTime{} + milliseconds(ms);
}

TEST(SweepSchedule, ASecondIntervalIsTenTicksOfATenthOfASecond) {
  const SweepSchedule schedule(milliseconds(1000));
  EXPECT_EQ(schedule.slices(), 10U);
  EXPECT_EQ(schedule.tick(), milliseconds(100));
}

TEST(SweepSchedule, AShortIntervalGetsFewerSlicesNeverATickUnderTenMilliseconds) {
  EXPECT_EQ(SweepSchedule(milliseconds(50)).slices(), 5U);
  EXPECT_EQ(SweepSchedule(milliseconds(50)).tick(), milliseconds(10));
  EXPECT_EQ(SweepSchedule(milliseconds(10)).slices(), 1U);
  EXPECT_EQ(SweepSchedule(milliseconds(10)).tick(), milliseconds(10));
}

TEST(SweepSchedule, EachRoundLooksAtEverySlotExactlyOnceInSlices) {
  SweepSchedule schedule(milliseconds(1000));
  constexpr std::size_t kSlots = 2048;
  for (int round = 0; round < 3; ++round) {
    std::vector<int> seen(kSlots, 0);
    int ticks = 0;
    for (;;) {
      const SweepSchedule::Tick tick = schedule.next(at((round * 10 + ticks) * 100), kSlots);
      ++ticks;
      EXPECT_TRUE(tick.judge);
      EXPECT_LE(tick.end - tick.begin, (kSlots + 9) / 10);
      for (std::size_t i = tick.begin; i < tick.end; ++i) ++seen[i];
      if (tick.round_done) break;
      ASSERT_LT(ticks, 20);
    }
    EXPECT_EQ(ticks, 10);
    for (std::size_t i = 0; i < kSlots; ++i) ASSERT_EQ(seen[i], 1) << i;
  }
}

TEST(SweepSchedule, ATableThatGrowsMidRoundLosesNoSlot) {
  SweepSchedule schedule(milliseconds(1000));
  std::vector<int> seen(512, 0);
  std::size_t slots = 256;
  for (int t = 0;; ++t) {
    const SweepSchedule::Tick tick = schedule.next(at(t * 100), slots);
    for (std::size_t i = tick.begin; i < tick.end; ++i) ++seen[i];
    if (t == 4) slots = 512;  // connections arrived
    if (tick.round_done) break;
    ASSERT_LT(t, 30);
  }
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << i;
}

// A tick a whole interval late (the worker was stalled): the round from it on pings but
// judges no one, and the round after judges everyone once even if every tick is late.
TEST(SweepSchedule, AfterAStallOneRoundJudgesNoOneThenOneRoundJudgesEveryone) {
  SweepSchedule schedule(milliseconds(1000));
  int now = 0;
  for (int t = 0; t < 10; ++t) ASSERT_TRUE(schedule.next(at(now += 100), 100).judge);
  now += 1101;  // a stall of more than a whole interval
  std::vector<bool> judged;
  for (int t = 0; t < 20; ++t) {
    judged.push_back(schedule.next(at(now), 100).judge);
    now += 1200;  // every tick late from here on
  }
  for (int t = 0; t < 10; ++t) EXPECT_FALSE(judged[t]) << t;
  for (int t = 10; t < 20; ++t) EXPECT_TRUE(judged[t]) << t;
  // Then the next late tick starts another round without judging.
  EXPECT_FALSE(schedule.next(at(now), 100).judge);
}

TEST(SweepSchedule, ATickLateByLessThanAnIntervalStillJudges) {
  SweepSchedule schedule(milliseconds(1000));
  ASSERT_TRUE(schedule.next(at(100), 100).judge);
  EXPECT_TRUE(schedule.next(at(1200), 100).judge);  // 1,100 ms: the tick and one interval
  EXPECT_FALSE(schedule.next(at(2301), 100).judge);  // 1,101 ms
}

}  // namespace
}  // namespace roomcast::net
