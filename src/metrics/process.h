// ProcessStats: what the operating system says of this process (the standard Prometheus
// process_* metrics): memory, descriptors and their limit, CPU time, start time. Read from
// /proc/self at scrape time; nothing is kept between scrapes.
#pragma once

#include <optional>
#include <string>

namespace roomcast::metrics {

struct ProcessStats {
  double resident_memory_bytes = 0;
  double virtual_memory_bytes = 0;
  double open_fds = 0;  // descriptors open now
  double max_fds = 0;  // the soft RLIMIT_NOFILE: accept() fails beyond it
  double cpu_seconds = 0;  // user + system
  double start_time_seconds = 0;  // Unix time the process started
};

// Thread-safe. nullopt where /proc is not there (not Linux) or cannot be read.
std::optional<ProcessStats> read_process_stats();

// Appends the process_* families (Prometheus text format).
void append_process(std::string& out, const ProcessStats& stats);

}  // namespace roomcast::metrics
