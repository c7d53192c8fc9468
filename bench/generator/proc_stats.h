// Samples of the server's resource use from /proc/<pid>/stat and /proc/<pid>/status.
// Several pids (a multi-process server) are summed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace roomcast::bench {

struct ProcessSample {
  bool ok = false;  // every pid was readable
  std::uint64_t rss_bytes = 0;  // VmRSS
  std::uint64_t cpu_ns = 0;  // utime + stime
  std::string error;  // why not ok
};

ProcessSample sample_processes(const std::vector<pid_t>& pids);

}  // namespace roomcast::bench
