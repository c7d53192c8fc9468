#include "metrics/process.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>
#include <system_error>

#include "metrics/histogram.h"

namespace roomcast::metrics {
namespace {

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return in ? text.str() : std::string();
}

// The kernel's boot time (Unix seconds): /proc/self/stat dates the start from it.
std::optional<double> boot_time() {
  std::istringstream in(read_file("/proc/stat"));
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double value = 0;
      if (in >> value) return value;
      return std::nullopt;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

}  // namespace

std::optional<ProcessStats> read_process_stats() {
  // proc(5): "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the
  // fields are counted from the last ')'.
  const std::string stat = read_file("/proc/self/stat");
  const auto close = stat.rfind(')');
  const auto btime = boot_time();
  if (close == std::string::npos || !btime) return std::nullopt;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  ProcessStats out;
  double utime = 0, stime = 0, starttime = 0, vsize = 0, rss_pages = 0;
  // Fields 3.. of proc(5): we want 14 utime, 15 stime, 22 starttime, 23 vsize, 24 rss.
  for (int n = 3; n <= 24 && fields >> field; ++n) {
    const double value = std::strtod(field.c_str(), nullptr);
    if (n == 14) utime = value;
    if (n == 15) stime = value;
    if (n == 22) starttime = value;
    if (n == 23) vsize = value;
    if (n == 24) rss_pages = value;
  }
  if (!fields) return std::nullopt;
  const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const auto page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  out.cpu_seconds = (utime + stime) / ticks;
  out.start_time_seconds = *btime + starttime / ticks;
  out.virtual_memory_bytes = vsize;
  out.resident_memory_bytes = rss_pages * page;
  std::error_code ec;
  double fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  // Not counting the descriptor the listing itself held open.
  out.open_fds = fds > 0 ? fds - 1 : 0;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out.max_fds = limit.rlim_cur == RLIM_INFINITY ? 0 : static_cast<double>(limit.rlim_cur);
  }
  return out;
}

void append_process(std::string& out, const ProcessStats& stats) {
  auto metric = [&](std::string_view name, std::string_view help, std::string_view type,
                    double value) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
    out.append(name).append(" ").append(format_number(value)).append("\n");
  };
  metric("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter",
         stats.cpu_seconds);
  metric("process_open_fds", "Number of open file descriptors.", "gauge", stats.open_fds);
  metric("process_max_fds", "Maximum number of open file descriptors.", "gauge", stats.max_fds);
  metric("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge",
         stats.virtual_memory_bytes);
  metric("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge",
         stats.resident_memory_bytes);
  metric("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
         "gauge", stats.start_time_seconds);
}

}  // namespace roomcast::metrics
