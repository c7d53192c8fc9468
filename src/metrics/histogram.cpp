#include "metrics/histogram.h"

#include <cstdio>

namespace roomcast::metrics {

static_assert(kSecondsLayout.buckets() <= kMaxBuckets);
static_assert(kCountLayout.buckets() <= kMaxBuckets);

std::uint64_t HistogramValues::count() const {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < layout.buckets(); ++i) n += counts[i];
  return n;
}

void HistogramValues::merge(const HistogramValues& other) {
  for (std::size_t i = 0; i < layout.buckets(); ++i) counts[i] += other.counts[i];
  sum += other.sum;
}

HistogramValues HistogramValues::since(const HistogramValues& earlier) const {
  HistogramValues out{layout, {}, 0};
  // Counters only grow; a reading older than `earlier` (never the case) would give zero.
  for (std::size_t i = 0; i < layout.buckets(); ++i) {
    out.counts[i] = counts[i] > earlier.counts[i] ? counts[i] - earlier.counts[i] : 0;
  }
  out.sum = sum > earlier.sum ? sum - earlier.sum : 0;
  return out;
}

double HistogramValues::quantile(double q) const {
  const std::uint64_t total = count();
  if (total == 0) return 0;
  const double rank = q * static_cast<double>(total);
  double below = 0;
  for (std::size_t i = 0; i < layout.buckets(); ++i) {
    const double in_bucket = static_cast<double>(counts[i]);
    if (below + in_bucket >= rank && in_bucket > 0) {
      if (i == layout.buckets() - 1) {
        return static_cast<double>(layout.bound(i - 1)) * layout.unit;
      }
      const double lower = i == 0 ? 0 : static_cast<double>(layout.bound(i - 1));
      const double upper = static_cast<double>(layout.bound(i));
      return (lower + (upper - lower) * (rank - below) / in_bucket) * layout.unit;
    }
    below += in_bucket;
  }
  return static_cast<double>(layout.bound(layout.buckets() - 2)) * layout.unit;
}

HistogramValues Histogram::values() const {
  HistogramValues out{layout_, {}, 0};
  // Relaxed reads of a writer that goes on: the sum may be a record ahead of or behind the
  // counts. The count shown is the sum of the buckets, so _count always equals +Inf.
  out.sum = sum_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < layout_.buckets(); ++i) {
    out.counts[i] = counts_[i].load(std::memory_order_relaxed);
  }
  return out;
}

std::string format_number(double value) {
  // Every bound and sum we expose is a multiple of 1e-6 (microseconds) or a whole count:
  // six decimals are exact, and trailing zeros go.
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", value);
  std::string text(buf);
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text;
}

void append_histogram(std::string& out, std::string_view name, std::string_view help,
                      const HistogramValues& values, std::string_view labels, bool header) {
  if (header) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" histogram\n");
  }
  const std::string label_prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  std::uint64_t cumulative = 0;
  const std::size_t n = values.layout.buckets();
  for (std::size_t i = 0; i < n; ++i) {
    cumulative += values.counts[i];
    out.append(name).append("_bucket{").append(label_prefix).append("le=\"");
    if (i + 1 < n) {
      out.append(format_number(static_cast<double>(values.layout.bound(i)) * values.layout.unit));
    } else {
      out.append("+Inf");
    }
    out.append("\"} ").append(std::to_string(cumulative)).append("\n");
  }
  std::string braces;  // appended, not "{" + labels + "}": GCC 12 at -O3 warns on that (-Wrestrict)
  if (!labels.empty()) braces.append("{").append(labels).append("}");
  out.append(name).append("_sum").append(braces).append(" ");
  out.append(format_number(values.sum_in_unit())).append("\n");
  out.append(name).append("_count").append(braces).append(" ");
  out.append(std::to_string(cumulative)).append("\n");
}

}  // namespace roomcast::metrics
