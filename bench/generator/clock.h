// Time sources of the generator. CLOCK_MONOTONIC is shared by every process on the machine,
// so a send time stamped by one worker process is comparable to a receive time in another.
#pragma once

#include <sys/resource.h>
#include <time.h>

#include <cstdint>

namespace roomcast::bench {

inline std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// User + system CPU time this process has used.
inline std::uint64_t process_cpu_ns() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto to_ns = [](const timeval& tv) {
    return static_cast<std::uint64_t>(tv.tv_sec) * 1'000'000'000ULL +
           static_cast<std::uint64_t>(tv.tv_usec) * 1000ULL;
  };
  return to_ns(usage.ru_utime) + to_ns(usage.ru_stime);
}

// Sleeps until CLOCK_MONOTONIC reaches `deadline_ns`.
inline void sleep_until_ns(std::uint64_t deadline_ns) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(deadline_ns / 1'000'000'000ULL);
  ts.tv_nsec = static_cast<long>(deadline_ns % 1'000'000'000ULL);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
  }
}

inline double ns_to_s(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e9;
}
inline std::uint64_t s_to_ns(double s) {
  return static_cast<std::uint64_t>(s * 1e9);
}

}  // namespace roomcast::bench
