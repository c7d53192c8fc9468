// RateWindow: the chapter's live figures (messages per second, average, p50 and p99 delivery
// latency, error rate) over the last few seconds, for /api/stats. A reading of the counters
// and of the delivery histogram is kept once a second in a small ring; a request compares the
// reading it takes now with the oldest one kept. The cost is O(1) per second and per
// request, nothing per message.
//
// Thread-safe: the server's control thread adds readings, workers answering /api/stats ask.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "metrics/histogram.h"

namespace roomcast::metrics {

struct Snapshot;

// The figures over the window (all zero when nothing happened).
struct LiveRates {
  double window_seconds = 0;  // what the rates are over (up to the window; less at start)
  double messages_per_second = 0;  // WebSocket messages received from clients
  double deliveries_per_second = 0;  // messages queued to recipients
  double errors_per_second = 0;  // error replies and connections closed for an error
  double error_rate = 0;  // errors per message received (0 without messages)
  double delivery_latency_avg_seconds = 0;
  // Estimated from the histogram's buckets (within a bucket's width: a factor of 2).
  double delivery_latency_p50_seconds = 0;
  double delivery_latency_p99_seconds = 0;
};

class RateWindow {
 public:
  using Clock = std::chrono::steady_clock;
  // The chapter's window.
  static constexpr std::chrono::seconds kWindow{10};

  // What one reading keeps of a Snapshot.
  struct Reading {
    Clock::time_point at{};
    std::uint64_t messages = 0;
    std::uint64_t deliveries = 0;
    std::uint64_t errors = 0;
    HistogramValues delivery{kSecondsLayout};
  };
  static Reading reading_of(const Snapshot& snapshot, Clock::time_point at);

  // Starts with an all-zero reading at `start` (the server's start).
  explicit RateWindow(Clock::time_point start);

  // Keeps `reading` (call about once a second); the oldest beyond the window is dropped.
  void add(const Reading& reading);
  // The rates from the oldest reading kept to `now`.
  LiveRates rates(const Reading& now) const;

 private:
  // A reading a second over the window, and one spare for the second under way.
  static constexpr std::size_t kSlots = 12;
  mutable std::mutex mutex_;
  std::array<Reading, kSlots> ring_{};
  std::size_t oldest_ = 0;
  std::size_t size_ = 0;
};

}  // namespace roomcast::metrics
