#include "proc_stats.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace roomcast::bench {
namespace {

// utime + stime (fields 14 and 15) of /proc/<pid>/stat, in ns. The command name (field 2)
// may hold spaces and parentheses, so fields are counted from the last ')'.
bool read_cpu(pid_t pid, std::uint64_t& cpu_ns) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  std::uint64_t utime = 0;
  std::uint64_t stime = 0;
  // After ')': field 3 (state) is the first; utime is field 14.
  for (int number = 3; number <= 15 && fields >> field; ++number) {
    if (number == 14) utime = std::stoull(field);
    if (number == 15) stime = std::stoull(field);
  }
  static const long ticks = sysconf(_SC_CLK_TCK);
  cpu_ns = (utime + stime) * (1'000'000'000ULL / static_cast<std::uint64_t>(ticks));
  return true;
}

bool read_rss(pid_t pid, std::uint64_t& rss_bytes) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      rss_bytes = std::stoull(line.substr(6)) * 1024;  // "VmRSS:   1234 kB"
      return true;
    }
  }
  return false;
}

}  // namespace

ProcessSample sample_processes(const std::vector<pid_t>& pids) {
  ProcessSample sample;
  sample.ok = !pids.empty();
  for (pid_t pid : pids) {
    std::uint64_t cpu = 0;
    std::uint64_t rss = 0;
    if (!read_cpu(pid, cpu) || !read_rss(pid, rss)) {
      sample.ok = false;
      sample.error = "cannot read /proc/" + std::to_string(pid) + " (has the server exited?)";
      continue;
    }
    sample.cpu_ns += cpu;
    sample.rss_bytes += rss;
  }
  return sample;
}

}  // namespace roomcast::bench
