// Histogram buckets, merging across workers' shards, and the Prometheus text they make.
#include "metrics/histogram.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "metrics/metrics.h"

namespace roomcast::metrics {
namespace {

using std::chrono::microseconds;

// The samples of one histogram family in Prometheus text: {le or suffix: value}.
std::map<std::string, std::string> samples_of(const std::string& text, const std::string& name,
                                              const std::string& labels = "") {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  const std::string prefix = labels.empty() ? "" : labels + ",";
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  while (std::getline(in, line)) {
    const std::string bucket = name + "_bucket{" + prefix + "le=\"";
    if (line.starts_with(bucket)) {
      const auto end = line.find('"', bucket.size());
      out["le=" + line.substr(bucket.size(), end - bucket.size())] =
          line.substr(line.rfind(' ') + 1);
    } else if (line.starts_with(name + "_sum" + braces + " ")) {
      out["sum"] = line.substr(line.rfind(' ') + 1);
    } else if (line.starts_with(name + "_count" + braces + " ")) {
      out["count"] = line.substr(line.rfind(' ') + 1);
    }
  }
  return out;
}

TEST(BucketLayout, BoundsArePowersOfTwoOfTheUnitAndEachValueGoesToTheFirstBoundAtOrAboveIt) {
  constexpr BucketLayout layout = kSecondsLayout;  // 2^3 .. 2^24 µs, then +Inf
  EXPECT_EQ(layout.buckets(), 23u);
  EXPECT_EQ(layout.bound(0), 8u);
  EXPECT_EQ(layout.bound(21), 1u << 24);
  EXPECT_EQ(layout.index_of(0), 0u);
  EXPECT_EQ(layout.index_of(1), 0u);
  EXPECT_EQ(layout.index_of(8), 0u);  // le is inclusive
  EXPECT_EQ(layout.index_of(9), 1u);
  EXPECT_EQ(layout.index_of(16), 1u);
  EXPECT_EQ(layout.index_of(17), 2u);
  EXPECT_EQ(layout.index_of(1u << 24), 21u);
  EXPECT_EQ(layout.index_of((1u << 24) + 1), 22u);  // +Inf
  EXPECT_EQ(layout.index_of(UINT64_MAX), 22u);
  // Every bound is in its own bucket and the next value is in the next one.
  for (std::size_t i = 0; i + 1 < layout.buckets(); ++i) {
    EXPECT_EQ(layout.index_of(layout.bound(i)), i);
    EXPECT_EQ(layout.index_of(layout.bound(i) + 1), i + 1);
  }
}

TEST(BucketLayout, CountsStartAtOne) {
  EXPECT_EQ(kCountLayout.index_of(0), 0u);
  EXPECT_EQ(kCountLayout.index_of(1), 0u);
  EXPECT_EQ(kCountLayout.index_of(2), 1u);
  EXPECT_EQ(kCountLayout.index_of(3), 2u);
  EXPECT_EQ(kCountLayout.index_of(65536), 16u);
  EXPECT_EQ(kCountLayout.index_of(65537), 17u);
  EXPECT_EQ(kCountLayout.buckets(), 18u);
}

TEST(Histogram, RecordsDurationsInWholeMicroseconds) {
  Histogram h(kSecondsLayout);
  h.record(std::chrono::nanoseconds(8999));  // 8 µs: the first bucket
  h.record(microseconds(9));
  h.record(std::chrono::seconds(100));  // beyond the last bound
  h.record(std::chrono::nanoseconds(-5));  // a clock that went back counts as 0
  const HistogramValues v = h.values();
  EXPECT_EQ(v.counts[0], 2u);
  EXPECT_EQ(v.counts[1], 1u);
  EXPECT_EQ(v.counts[22], 1u);
  EXPECT_EQ(v.count(), 4u);
  EXPECT_EQ(v.sum, 8u + 9u + 100'000'000u);
  EXPECT_DOUBLE_EQ(v.sum_in_unit(), 100.000017);
}

TEST(HistogramValues, SinceSubtractsAnEarlierReading) {
  Histogram h(kCountLayout);
  h.record(1);
  h.record(5);
  const HistogramValues earlier = h.values();
  h.record(5);
  h.record(100);
  const HistogramValues window = h.values().since(earlier);
  EXPECT_EQ(window.count(), 2u);
  EXPECT_EQ(window.sum, 105u);
  EXPECT_EQ(window.counts[kCountLayout.index_of(5)], 1u);
  EXPECT_EQ(window.counts[kCountLayout.index_of(100)], 1u);
}

TEST(HistogramValues, QuantileInterpolatesWithinItsBucketAsPrometheusDoes) {
  Histogram h(kCountLayout);
  EXPECT_EQ(h.values().quantile(0.99), 0);  // nothing observed
  // 100 observations: 50 in (2,4], 50 in (64,128].
  for (int i = 0; i < 50; ++i) h.record(3);
  for (int i = 0; i < 50; ++i) h.record(100);
  const HistogramValues v = h.values();
  EXPECT_DOUBLE_EQ(v.quantile(0.5), 4);  // the top of the first occupied bucket
  EXPECT_DOUBLE_EQ(v.quantile(0.25), 3);  // half-way through (2,4]
  EXPECT_DOUBLE_EQ(v.quantile(0.99), 64 + 64 * 49.0 / 50);
  Histogram beyond(kCountLayout);
  beyond.record(1'000'000);
  EXPECT_DOUBLE_EQ(beyond.values().quantile(0.99), 65536);  // +Inf: the last finite bound
}

TEST(Registry, MergesEveryWorkersHistogramsRecordedOnTheirOwnThreads) {
  constexpr std::size_t kWorkers = 4;
  constexpr int kRecords = 10'000;
  Registry registry(kWorkers);
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&registry, w] {
      Shard& shard = registry.shard(w);
      for (int i = 0; i < kRecords; ++i) {
        shard.delivery.record(microseconds(10 * (w + 1)));
        shard.http(HttpEndpoint::kMetrics).record(microseconds(100));
      }
      shard.fan_out.record(w + 1);
    });
  }
  for (auto& t : workers) t.join();
  Snapshot snapshot;
  registry.collect(snapshot);
  const HistogramSet& h = snapshot.histograms;
  EXPECT_EQ(h.delivery.count(), kWorkers * kRecords);
  EXPECT_EQ(h.delivery.sum, kRecords * (10u + 20u + 30u + 40u));
  EXPECT_EQ(h.delivery.counts[kSecondsLayout.index_of(10)], kRecords);  // (8,16]
  EXPECT_EQ(h.delivery.counts[kSecondsLayout.index_of(20)], 2u * kRecords);  // (16,32]: 20, 30
  EXPECT_EQ(h.delivery.counts[kSecondsLayout.index_of(40)], kRecords);  // (32,64]
  EXPECT_EQ(h.http[static_cast<std::size_t>(HttpEndpoint::kMetrics)].count(), kWorkers * kRecords);
  EXPECT_EQ(h.http[static_cast<std::size_t>(HttpEndpoint::kStats)].count(), 0u);
  EXPECT_EQ(h.fan_out.count(), kWorkers);
  EXPECT_EQ(h.fan_out.sum, 1u + 2u + 3u + 4u);
}

TEST(Exposition, IsACumulativePrometheusHistogramWithExactBoundsSumAndCount) {
  Histogram h(kSecondsLayout);
  h.record(microseconds(5));
  h.record(microseconds(8));
  h.record(microseconds(12));
  h.record(std::chrono::seconds(20));
  std::string text;
  append_histogram(text, "x_seconds", "Help text.", h.values());
  EXPECT_TRUE(text.starts_with("# HELP x_seconds Help text.\n# TYPE x_seconds histogram\n"));
  const auto s = samples_of(text, "x_seconds");
  EXPECT_EQ(s.at("le=0.000008"), "2");
  EXPECT_EQ(s.at("le=0.000016"), "3");
  EXPECT_EQ(s.at("le=0.000032"), "3");
  EXPECT_EQ(s.at("le=16.777216"), "3");
  EXPECT_EQ(s.at("le=+Inf"), "4");
  EXPECT_EQ(s.at("count"), "4");
  EXPECT_EQ(s.at("sum"), "20.000025");
  EXPECT_EQ(s.size(), kSecondsLayout.buckets() + 2);
  // Cumulative: never decreasing, in the order of the bounds.
  std::istringstream in(text);
  std::string line;
  long previous = -1;
  while (std::getline(in, line)) {
    if (!line.starts_with("x_seconds_bucket")) continue;
    const long value = std::stol(line.substr(line.rfind(' ') + 1));
    EXPECT_GE(value, previous) << line;
    previous = value;
  }
}

TEST(Exposition, LabelledFamiliesShareOneHeaderAndPutLeLast) {
  Histogram a(kCountLayout);
  Histogram b(kCountLayout);
  a.record(3);
  b.record(70000);
  std::string text;
  append_histogram(text, "y", "Y.", a.values(), "endpoint=\"a\"");
  append_histogram(text, "y", "Y.", b.values(), "endpoint=\"b\"", false);
  EXPECT_EQ(text.find("# TYPE y histogram"), text.rfind("# TYPE y histogram"));
  const auto sa = samples_of(text, "y", "endpoint=\"a\"");
  const auto sb = samples_of(text, "y", "endpoint=\"b\"");
  EXPECT_EQ(sa.at("le=2"), "0");
  EXPECT_EQ(sa.at("le=4"), "1");
  EXPECT_EQ(sa.at("le=65536"), "1");
  EXPECT_EQ(sa.at("count"), "1");
  EXPECT_EQ(sb.at("le=65536"), "0");
  EXPECT_EQ(sb.at("le=+Inf"), "1");
  EXPECT_EQ(sb.at("sum"), "70000");
}

TEST(Exposition, TheServersHistogramsAreAllInItsMetricsText) {
  Registry registry(2);
  registry.shard(0).ping_rtt.record(microseconds(300));
  registry.shard(1).ping_rtt.record(microseconds(500));
  registry.shard(1).http(HttpEndpoint::kHistory).record(microseconds(50));
  Snapshot snapshot;
  registry.collect(snapshot);
  const std::string text = render_prometheus(snapshot);
  for (const char* family : {"roomcast_delivery_latency_seconds", "roomcast_fanout_recipients",
                             "roomcast_ping_rtt_seconds", "roomcast_websocket_handshake_seconds",
                             "roomcast_http_request_duration_seconds"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family + " histogram\n"), std::string::npos)
        << family;
  }
  EXPECT_EQ(samples_of(text, "roomcast_ping_rtt_seconds").at("count"), "2");
  EXPECT_EQ(samples_of(text, "roomcast_ping_rtt_seconds").at("le=0.000512"), "2");
  EXPECT_EQ(samples_of(text, "roomcast_ping_rtt_seconds").at("le=0.000256"), "0");
  EXPECT_EQ(samples_of(text, "roomcast_http_request_duration_seconds", "endpoint=\"history\"")
                .at("count"),
            "1");
  EXPECT_EQ(
      samples_of(text, "roomcast_http_request_duration_seconds", "endpoint=\"static\"").at("count"),
      "0");
}

TEST(FormatNumber, ShortestDecimalWithoutExponent) {
  EXPECT_EQ(format_number(8e-6), "0.000008");
  EXPECT_EQ(format_number(16.777216), "16.777216");
  EXPECT_EQ(format_number(65536), "65536");
  EXPECT_EQ(format_number(0), "0");
}

TEST(ProcessStats, ReadsThisProcessFromProc) {
  const auto stats = read_process_stats();
  ASSERT_TRUE(stats.has_value());
  EXPECT_GT(stats->resident_memory_bytes, 0);
  EXPECT_GE(stats->virtual_memory_bytes, stats->resident_memory_bytes);
  EXPECT_GE(stats->open_fds, 3);  // stdin, stdout, stderr at least
  EXPECT_GE(stats->max_fds, stats->open_fds);
  // Started before now, and not before the kernel's own clock began (2000-01-01).
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(stats->start_time_seconds, now + 1);
  EXPECT_GT(stats->start_time_seconds, 946684800);
  std::string text;
  append_process(text, *stats);
  EXPECT_NE(text.find("# TYPE process_open_fds gauge\nprocess_open_fds "), std::string::npos);
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos);
}

}  // namespace
}  // namespace roomcast::metrics
