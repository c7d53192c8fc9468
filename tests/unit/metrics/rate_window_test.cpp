// The live rates of /api/stats: readings once a second, rates over the last ten.
#include "metrics/rate_window.h"

#include <gtest/gtest.h>

#include "metrics/metrics.h"

namespace roomcast::metrics {
namespace {

using std::chrono::seconds;
using Reading = RateWindow::Reading;

// A reading `t` seconds after the start, with `messages` received so far (each delivered
// twice, one error per ten messages) and `latency_us` added per message to the histogram.
Reading reading(RateWindow::Clock::time_point start, int t, std::uint64_t messages,
                Histogram& delivery) {
  Reading r;
  r.at = start + seconds(t);
  r.messages = messages;
  r.deliveries = 2 * messages;
  r.errors = messages / 10;
  r.delivery = delivery.values();
  return r;
}

TEST(RateWindow, RatesOverTheLastTenSecondsNotSinceTheStart) {
  const auto start = RateWindow::Clock::time_point() + seconds(1000);
  RateWindow window(start);
  Histogram delivery(kSecondsLayout);
  std::uint64_t messages = 0;
  // 20 s at 10 messages a second, 100 µs each...
  for (int t = 1; t <= 20; ++t) {
    messages += 10;
    for (int i = 0; i < 10; ++i) delivery.record(std::chrono::microseconds(100));
    window.add(reading(start, t, messages, delivery));
  }
  // ...then 10 s at 100 a second, 1 ms each.
  for (int t = 21; t <= 30; ++t) {
    messages += 100;
    for (int i = 0; i < 100; ++i) delivery.record(std::chrono::microseconds(1000));
    window.add(reading(start, t, messages, delivery));
  }
  const LiveRates live = window.rates(reading(start, 30, messages, delivery));
  EXPECT_DOUBLE_EQ(live.window_seconds, 10);
  EXPECT_DOUBLE_EQ(live.messages_per_second, 100);
  EXPECT_DOUBLE_EQ(live.deliveries_per_second, 200);
  EXPECT_DOUBLE_EQ(live.errors_per_second, 10);
  EXPECT_DOUBLE_EQ(live.error_rate, 0.1);
  EXPECT_DOUBLE_EQ(live.delivery_latency_avg_seconds, 0.001);
  // 1 ms lies in (512 µs, 1024 µs]: the estimates are within that bucket.
  EXPECT_GT(live.delivery_latency_p99_seconds, 0.000512);
  EXPECT_LE(live.delivery_latency_p99_seconds, 0.001024);
  EXPECT_GT(live.delivery_latency_p50_seconds, 0.000512);
  EXPECT_LE(live.delivery_latency_p50_seconds, live.delivery_latency_p99_seconds);
}

TEST(RateWindow, AtTheStartTheWindowIsTheTimeSinceTheStart) {
  const auto start = RateWindow::Clock::time_point() + seconds(1000);
  RateWindow window(start);
  Histogram delivery(kSecondsLayout);
  EXPECT_DOUBLE_EQ(window.rates(reading(start, 0, 0, delivery)).window_seconds, 0);
  const LiveRates live = window.rates(reading(start, 4, 40, delivery));
  EXPECT_DOUBLE_EQ(live.window_seconds, 4);
  EXPECT_DOUBLE_EQ(live.messages_per_second, 10);
  EXPECT_DOUBLE_EQ(live.delivery_latency_avg_seconds, 0);  // nothing delivered: no latency
  EXPECT_DOUBLE_EQ(live.delivery_latency_p50_seconds, 0);
  EXPECT_DOUBLE_EQ(live.delivery_latency_p99_seconds, 0);
}

TEST(RateWindow, AnIdleServerShowsZeroRates) {
  const auto start = RateWindow::Clock::time_point() + seconds(1000);
  RateWindow window(start);
  Histogram delivery(kSecondsLayout);
  for (int i = 0; i < 5; ++i) delivery.record(std::chrono::microseconds(50));
  for (int t = 1; t <= 30; ++t) window.add(reading(start, t, 5, delivery));
  const LiveRates live = window.rates(reading(start, 30, 5, delivery));
  EXPECT_DOUBLE_EQ(live.window_seconds, 10);
  EXPECT_DOUBLE_EQ(live.messages_per_second, 0);
  EXPECT_DOUBLE_EQ(live.error_rate, 0);
  EXPECT_DOUBLE_EQ(live.delivery_latency_p99_seconds, 0);
}

TEST(RateWindow, ReadsTheChaptersFiguresFromASnapshot) {
  Registry registry(2);
  registry.shard(0).add(Counter::kMessagesReceived, 7);
  registry.shard(1).add(Counter::kDeliveries, 21);
  registry.shard(1).add(Counter::kSlowConsumerCloses, 1);
  registry.shard(0).delivery.record(std::chrono::microseconds(30));
  Snapshot snapshot;
  registry.collect(snapshot);
  snapshot.chat_errors["rate_limited"] = 2;
  const Reading r = RateWindow::reading_of(snapshot, RateWindow::Clock::time_point());
  EXPECT_EQ(r.messages, 7u);
  EXPECT_EQ(r.deliveries, 21u);
  EXPECT_EQ(r.errors, 3u);
  EXPECT_EQ(r.delivery.count(), 1u);
}

}  // namespace
}  // namespace roomcast::metrics
