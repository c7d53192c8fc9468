// LatencyHistogram: an HDR-style log-linear histogram of nanosecond values. Fixed size,
// trivially copyable (it travels through the worker -> parent pipe as bytes), and
// mergeable by adding counts, so per-process histograms combine exactly.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace roomcast::bench {

// Values below 2^kLinearBits ns land in exact buckets; above, every power of two is split
// into 2^(kLinearBits-1) sub-buckets, so a recorded value is off by at most 1/64 (1.6%).
// Values beyond 2^kMaxExponent ns (~18 minutes) are clamped into the last bucket.
class LatencyHistogram {
 public:
  static constexpr int kLinearBits = 7;
  static constexpr int kMaxExponent = 40;
  static constexpr std::size_t kSubBuckets = std::size_t{1} << (kLinearBits - 1);
  static constexpr std::size_t kBucketCount =
      (kMaxExponent - kLinearBits + 1) * kSubBuckets + (std::size_t{1} << kLinearBits);

  void record(std::uint64_t value_ns);
  void merge(const LatencyHistogram& other);

  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  // The value at quantile q (0..1): the upper edge of the bucket holding it, capped by
  // max(); 0 when empty.
  std::uint64_t quantile(double q) const;

  static std::size_t bucket_of(std::uint64_t value_ns);
  // Largest value that maps to `bucket`.
  static std::uint64_t upper_edge(std::size_t bucket);

 private:
  std::array<std::uint64_t, kBucketCount> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace roomcast::bench
