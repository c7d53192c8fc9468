#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace roomcast::bench {

std::size_t LatencyHistogram::bucket_of(std::uint64_t value_ns) {
  constexpr std::uint64_t kLinearLimit = std::uint64_t{1} << kLinearBits;
  if (value_ns < kLinearLimit) return static_cast<std::size_t>(value_ns);
  int exponent = std::bit_width(value_ns) - 1;  // >= kLinearBits
  if (exponent > kMaxExponent) return kBucketCount - 1;
  const int shift = exponent - (kLinearBits - 1);
  // value >> shift lies in [kSubBuckets, 2 * kSubBuckets).
  return static_cast<std::size_t>(shift) * kSubBuckets +
         static_cast<std::size_t>(value_ns >> shift);
}

std::uint64_t LatencyHistogram::upper_edge(std::size_t bucket) {
  constexpr std::size_t kLinearLimit = std::size_t{1} << kLinearBits;
  if (bucket < kLinearLimit) return bucket;
  const std::size_t shift = bucket / kSubBuckets - 1;
  const std::uint64_t mantissa = bucket % kSubBuckets + kSubBuckets;
  return ((mantissa + 1) << shift) - 1;
}

void LatencyHistogram::record(std::uint64_t value_ns) {
  ++counts_[bucket_of(value_ns)];
  ++count_;
  max_ = std::max(max_, value_ns);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

std::uint64_t LatencyHistogram::quantile(double q) const {
  if (count_ == 0) return 0;
  const double clamped = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(clamped * static_cast<double>(count_)));
  rank = std::max<std::uint64_t>(rank, 1);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(upper_edge(i), max_);
  }
  return max_;
}

}  // namespace roomcast::bench
