// What a run measured, aggregated over every worker process, and its two renderings:
// a Markdown table for people (stdout) and a JSON document for scripts (--json).
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "histogram.h"
#include "ipc.h"
#include "options.h"

namespace roomcast::bench {

// A setup phase (connecting, joining): how many made it and how fast.
struct PhaseResult {
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  double seconds = 0;  // first start to last success, over all processes
  double per_second() const { return seconds > 0 ? static_cast<double>(ok) / seconds : 0; }
};

struct StepResult {
  std::uint32_t index = 0;
  double target_rate = 0;  // messages/s asked for
  double window_s = 0;  // the send window's length
  std::uint64_t sent = 0;
  std::uint64_t expected = 0;  // deliveries: sum over sent messages of the room's size (less
                               // the sender with --no-echo)
  std::uint64_t sent_bytes = 0;  // payload bytes of the messages sent (frame headers not)
  std::uint64_t received = 0;  // deliveries that arrived before the step's cutoff
  std::uint64_t wire_bytes = 0;  // WebSocket bytes received, window start to cutoff
  std::uint64_t closed = 0;  // connections the server closed during the step
  std::uint64_t open_at_end = 0;
  LatencyHistogram latency;
  std::optional<double> server_cpu_s;  // CPU the server used during the send window
  std::optional<std::uint64_t> server_rss_bytes;  // at the end of the send window
  std::vector<double> generator_cpu;  // per worker process: share of one core in the window
  bool generator_bound = false;
  bool passed = true;
  std::string failure;  // why not passed

  double sent_rate() const { return window_s > 0 ? static_cast<double>(sent) / window_s : 0; }
  double deliveries_per_second() const {
    return window_s > 0 ? static_cast<double>(received) / window_s : 0;
  }
  double bytes_per_message_sent() const {
    return sent > 0 ? static_cast<double>(sent_bytes) / static_cast<double>(sent) : 0;
  }
  double wire_bytes_per_delivery() const {
    return received > 0 ? static_cast<double>(wire_bytes) / static_cast<double>(received) : 0;
  }
  double delivered_share() const {
    return expected > 0 ? static_cast<double>(received) / static_cast<double>(expected) : 0;
  }
};

struct RunResult {
  const Options* options = nullptr;
  PhaseResult connect;
  PhaseResult join;
  PhaseResult settle;  // join start until every client saw a user_list of its whole room
  std::optional<std::uint64_t> server_rss_before;  // before the first connection
  std::optional<std::uint64_t> server_rss_joined;  // every client joined
  std::optional<std::uint64_t> server_rss_holding;  // idle: at the end of the hold
  std::optional<double> server_cpu_holding_s;  // idle: CPU used during the hold
  std::uint64_t open_after_hold = 0;  // idle
  std::vector<StepResult> steps;
  HealthCounters health;  // summed over processes, at the end
  // False when the run ended early for a reason other than a failed step (the server
  // closed every connection...): the exit status is then 1.
  bool completed = false;
  std::string stop_reason;  // why the ramp ended early, if it did
  std::vector<std::string> warnings;
  std::string first_error;  // first error any worker saw, for the reader

  std::optional<double> bytes_per_connection() const;
};

void print_markdown(const RunResult& result, std::FILE* out);
// Returns "" on success, else why the file could not be written.
std::string write_json(const RunResult& result, const std::string& path);

}  // namespace roomcast::bench
