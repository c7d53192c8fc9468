// Clock: the one source of time, injectable so heartbeats, typing expiry and rate limits
// are unit-tested without sleeping.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace roomcast::base {

using SteadyTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for timeouts and intervals.
  virtual SteadyTime now() const = 0;
  // Milliseconds since the Unix epoch, for the protocol's `timestamp` fields.
  virtual std::int64_t unix_ms() const = 0;
};

// The real clocks. Stateless; safe from any thread.
class SystemClock final : public Clock {
 public:
  SteadyTime now() const override { return std::chrono::steady_clock::now(); }
  std::int64_t unix_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock the test moves by hand. Safe from any thread: a store's own thread reads it while
// the test advances it (what each thread then sees is ordered by the store's own hand-overs).
class ManualClock final : public Clock {
 public:
  SteadyTime now() const override {
    return SteadyTime(SteadyTime::duration(now_.load(std::memory_order_relaxed)));
  }
  std::int64_t unix_ms() const override { return unix_ms_.load(std::memory_order_relaxed); }
  void advance(std::chrono::milliseconds by) {
    now_.fetch_add(std::chrono::duration_cast<SteadyTime::duration>(by).count(),
                   std::memory_order_relaxed);
    unix_ms_.fetch_add(by.count(), std::memory_order_relaxed);
  }

 private:
  std::atomic<SteadyTime::rep> now_{0};
  std::atomic<std::int64_t> unix_ms_{1'700'000'000'000};
};

}  // namespace roomcast::base
