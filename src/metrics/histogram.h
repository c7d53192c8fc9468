// Histogram: counts of observed values in fixed, log-scale buckets, exposed as a Prometheus
// classic histogram (cumulative `_bucket{le=...}`, `_sum`, `_count`). Quantiles are the
// scraper's job (histogram_quantile); the server computes none for /metrics.
//
// Buckets: upper bounds unit * 2^k for k in [first_exponent, last_exponent], then +Inf. A
// value is recorded in whole units (microseconds for durations, 1 for counts), so finding its
// bucket is one bit_width, with no search and no floating point on the record path.
//
// Single writer: one thread (a worker, the storage thread, the Redis thread) owns a Histogram
// and records with relaxed load + store (no read-modify-write, no lock, no shared cache line
// with another writer). Any thread may read values() at any time: a read may miss the last
// few records, and its sum may be a record ahead of or behind its counts, never torn.
// Histograms of several writers with the same layout are summed at scrape (merge).
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace roomcast::metrics {

struct BucketLayout {
  int first_exponent = 0;  // the first bucket's upper bound is unit * 2^first_exponent
  int last_exponent = 0;  // the last finite bucket's upper bound is unit * 2^last_exponent
  double unit = 1;  // what one recorded unit is in the exposed unit (1e-6: µs recorded, s shown)

  // Finite buckets plus +Inf.
  constexpr std::size_t buckets() const {
    return static_cast<std::size_t>(last_exponent - first_exponent) + 2;
  }
  // The upper bound of bucket `i` (< buckets() - 1) in recorded units.
  constexpr std::uint64_t bound(std::size_t i) const {
    return std::uint64_t{1} << (static_cast<std::size_t>(first_exponent) + i);
  }
  // The bucket of `value` (in recorded units): the first whose bound is >= value.
  constexpr std::size_t index_of(std::uint64_t value) const {
    if (value <= bound(0)) return 0;
    // The smallest k with 2^k >= value is bit_width(value - 1).
    const auto k = static_cast<std::size_t>(std::bit_width(value - 1));
    const std::size_t i = k - static_cast<std::size_t>(first_exponent);
    return i < buckets() - 1 ? i : buckets() - 1;
  }
  constexpr bool operator==(const BucketLayout&) const = default;
};

// Whether histograms record (the ROOMCAST_HISTOGRAMS build option; OFF only to measure what
// they cost). Record points whose only purpose is a histogram skip their work too.
#ifdef ROOMCAST_NO_HISTOGRAMS
inline constexpr bool kHistogramsRecorded = false;
#else
inline constexpr bool kHistogramsRecorded = true;
#endif

// Durations recorded in microseconds, shown in seconds: 8 µs to 16.8 s, 23 buckets. Covers a
// delivery inside one server (tens of µs) as well as a slow client's ping or an fsync stall.
inline constexpr BucketLayout kSecondsLayout{3, 24, 1e-6};
// Counts (recipients of a message): 1 to 65,536, 18 buckets.
inline constexpr BucketLayout kCountLayout{0, 16, 1};

// The most buckets any layout above has; a layout must fit (checked where it is used).
inline constexpr std::size_t kMaxBuckets = 32;

// What a Histogram holds at one moment, or several summed. Plain values: copied freely.
struct HistogramValues {
  BucketLayout layout{};
  std::array<std::uint64_t, kMaxBuckets> counts{};  // per bucket, not cumulative; +Inf last
  std::uint64_t sum = 0;  // of recorded values, in recorded units

  std::uint64_t count() const;
  // The sum in the exposed unit (seconds for durations).
  double sum_in_unit() const { return static_cast<double>(sum) * layout.unit; }
  // Adds `other` (same layout) to these values.
  void merge(const HistogramValues& other);
  // These values minus an earlier reading of the same histogram (for rates over a window).
  HistogramValues since(const HistogramValues& earlier) const;
  // The q-quantile (0 < q <= 1) estimated as Prometheus' histogram_quantile does: linear
  // within the bucket that holds it; in the exposed unit. 0 with no observation; a quantile
  // in +Inf is reported as the last finite bound.
  double quantile(double q) const;
};

class Histogram {
 public:
  explicit constexpr Histogram(BucketLayout layout) : layout_(layout) {}
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Owner thread only.
  void record(std::uint64_t value) {
    if constexpr (!kHistogramsRecorded) return;
    auto& bucket = counts_[layout_.index_of(value)];
    bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    sum_.store(sum_.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
  }
  // A duration, in whole microseconds (a layout of seconds); negative counts as zero.
  void record(std::chrono::steady_clock::duration elapsed) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    record(us > 0 ? static_cast<std::uint64_t>(us) : 0);
  }

  // Any thread.
  HistogramValues values() const;
  const BucketLayout& layout() const { return layout_; }

 private:
  const BucketLayout layout_;
  std::array<std::atomic<std::uint64_t>, kMaxBuckets> counts_{};
  std::atomic<std::uint64_t> sum_{0};
};

// Appends one histogram in Prometheus text format (with its HELP and TYPE lines unless
// `header` is false, for the second and later label sets of a family). `labels` is either
// empty or `key="value"` pairs joined by commas, put before `le`.
void append_histogram(std::string& out, std::string_view name, std::string_view help,
                      const HistogramValues& values, std::string_view labels = {},
                      bool header = true);

// A bucket bound or a sum as Prometheus reads it: shortest decimal, no exponent.
std::string format_number(double value);

}  // namespace roomcast::metrics
