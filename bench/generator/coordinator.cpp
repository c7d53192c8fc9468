#include "coordinator.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "clock.h"
#include "proc_stats.h"
#include "worker.h"

namespace roomcast::bench {
namespace {

// Time between sending a step's command and the step's start, so every worker has it.
constexpr std::uint64_t kStepLeadNs = 100'000'000;
// Extra time a phase may take beyond its own bound before a worker counts as stuck.
constexpr std::uint64_t kReportSlackNs = 10'000'000'000ULL;
// Files a worker needs besides its sockets: pipes, epoll, stdio.
constexpr rlim_t kSpareFiles = 32;

}  // namespace

Coordinator::Coordinator(const Options& options) : options_(options) {}

Coordinator::~Coordinator() {
  stop_workers();
}

bool Coordinator::run(RunResult& result) {
  result.options = &options_;
  if (!options_.server_pids.empty()) {
    const ProcessSample before = sample_processes(options_.server_pids);
    if (!before.ok) return fail(before.error);
    result.server_rss_before = before.rss_bytes;
  }
  if (!spawn_workers()) return false;
  if (!setup(result)) return false;
  const bool ok = options_.scenario == Scenario::kIdle ? run_hold(result) : run_steps(result);
  if (!ok) return false;
  finish(result);
  return true;
}

bool Coordinator::spawn_workers() {
  // Every worker holds its slice of sockets open at once; it must fit the file limit.
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  const int processes = options_.processes;
  const int largest_slice = (options_.connections + processes - 1) / processes;
  if (static_cast<rlim_t>(largest_slice) + kSpareFiles > limit.rlim_cur) {
    const auto per_process = static_cast<long long>(limit.rlim_cur - kSpareFiles);
    return fail("a process may open " + std::to_string(limit.rlim_cur) + " files, so " +
                std::to_string(options_.connections) + " connections need --processes " +
                std::to_string((options_.connections + per_process - 1) / per_process) +
                " or more");
  }

  std::fflush(stdout);
  std::fflush(stderr);
  for (int w = 0; w < processes; ++w) {
    WorkerProcess worker;
    worker.first_client =
        static_cast<int>(static_cast<long long>(options_.connections) * w / processes);
    worker.client_count =
        static_cast<int>(static_cast<long long>(options_.connections) * (w + 1) / processes) -
        worker.first_client;
    for (int i = worker.first_client; i < worker.first_client + worker.client_count; ++i) {
      if (i % options_.clients_per_room < options_.senders_per_room) ++worker.senders;
    }
    int to_worker[2];
    int from_worker[2];
    if (pipe2(to_worker, O_CLOEXEC) != 0 || pipe2(from_worker, O_CLOEXEC) != 0) {
      return fail(std::string("pipe: ") + std::strerror(errno));
    }
    const pid_t pid = fork();
    if (pid < 0) return fail(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      // Child: keep only our own pipe ends.
      for (const WorkerProcess& other : workers_) {
        ::close(other.command_fd);
        ::close(other.report_fd);
      }
      ::close(to_worker[1]);
      ::close(from_worker[0]);
      int code = 1;
      {
        Worker process(options_, w, worker.first_client, worker.client_count, to_worker[0],
                       from_worker[1]);
        code = process.run();
      }
      std::_Exit(code);  // no atexit handlers or stdio flushing inherited from the parent
    }
    ::close(to_worker[0]);
    ::close(from_worker[1]);
    worker.pid = pid;
    worker.command_fd = to_worker[1];
    worker.report_fd = from_worker[0];
    workers_.push_back(worker);
  }
  return true;
}

bool Coordinator::setup(RunResult& result) {
  std::vector<Report> reports;
  // Connect: each worker connects its slice, connect_concurrency at a time.
  const int per_worker_concurrency = std::max(1, options_.connect_concurrency / options_.processes);
  const double waves =
      static_cast<double>(options_.connections) / (options_.processes * per_worker_concurrency) + 1;
  std::uint64_t deadline =
      monotonic_ns() + s_to_ns(waves * options_.connect_timeout_s) + kReportSlackNs;
  progress("connecting %d clients (%d processes)...", options_.connections, options_.processes);
  if (!collect(ReportKind::kConnected, deadline, reports)) return false;
  std::uint64_t begin = UINT64_MAX;
  std::uint64_t end = 0;
  for (const Report& report : reports) {
    result.connect.ok += report.ok;
    result.connect.failed += report.failed;
    begin = std::min(begin, report.phase_begin_ns);
    end = std::max(end, report.phase_end_ns);
    if (report.failed > 0 && first_error_.empty()) first_error_ = report.error;
  }
  result.connect.seconds = ns_to_s(end > begin ? end - begin : 0);
  progress("connected %llu of %d in %.2f s (%.0f handshakes/s)",
           static_cast<unsigned long long>(result.connect.ok), options_.connections,
           result.connect.seconds, result.connect.per_second());
  if (result.connect.failed > 0) {
    return fail(std::to_string(result.connect.failed) + " of " +
                std::to_string(options_.connections) +
                " connections failed; first: " + first_error_);
  }

  // Join at the bounded rate.
  Command join;
  join.kind = CommandKind::kJoin;
  join.start_ns = monotonic_ns();
  if (!send_command(join, options_.join_rate, false)) return false;
  deadline = join.start_ns + s_to_ns(options_.connections / options_.join_rate) +
             s_to_ns(options_.connect_timeout_s) + kReportSlackNs;
  if (!collect(ReportKind::kJoined, deadline, reports)) return false;
  end = 0;
  for (const Report& report : reports) {
    result.join.ok += report.ok;
    result.join.failed += report.failed;
    end = std::max(end, report.phase_end_ns);
    if (report.failed > 0 && first_error_.empty()) first_error_ = report.error;
  }
  result.join.seconds = ns_to_s(end > join.start_ns ? end - join.start_ns : 0);
  progress("joined %llu in %.2f s (%.0f joins/s)", static_cast<unsigned long long>(result.join.ok),
           result.join.seconds, result.join.per_second());
  if (result.join.failed > 0) {
    return fail(std::to_string(result.join.failed) + " of " + std::to_string(options_.connections) +
                " joins failed; first: " + first_error_);
  }

  // Settle: the last coalesced user_list of a big room comes seconds after its last join.
  Command settle;
  settle.kind = CommandKind::kSettle;
  settle.cutoff_ns = monotonic_ns() + s_to_ns(options_.settle_timeout_s);
  if (!send_command(settle, 0, false)) return false;
  if (!collect(ReportKind::kSettled, settle.cutoff_ns + kReportSlackNs, reports)) return false;
  end = 0;
  for (const Report& report : reports) {
    result.settle.ok += report.ok;
    result.settle.failed += report.failed;
    end = std::max(end, report.phase_end_ns);
  }
  result.settle.seconds = ns_to_s(end > join.start_ns ? end - join.start_ns : 0);
  progress("presence settled: %llu clients saw a full user_list %.2f s after the first join",
           static_cast<unsigned long long>(result.settle.ok), result.settle.seconds);
  if (result.settle.failed > 0) {
    result.warnings.push_back(std::to_string(result.settle.failed) +
                              " clients saw no user_list of their whole room within "
                              "--settle-timeout; the first step may include presence traffic");
  }
  if (!options_.server_pids.empty()) {
    const ProcessSample joined = sample_processes(options_.server_pids);
    if (joined.ok) result.server_rss_joined = joined.rss_bytes;
  }
  return true;
}

bool Coordinator::run_hold(RunResult& result) {
  Command hold;
  hold.kind = CommandKind::kStep;
  hold.start_ns = monotonic_ns() + kStepLeadNs;
  hold.send_end_ns = hold.start_ns + s_to_ns(options_.hold_seconds);
  hold.cutoff_ns = hold.send_end_ns;
  if (!send_command(hold, 0, false)) return false;
  progress("holding %llu connections for %.0f s...",
           static_cast<unsigned long long>(result.connect.ok), options_.hold_seconds);
  sleep_until_ns(hold.start_ns);
  const ProcessSample start = sample_processes(options_.server_pids);
  std::vector<Report> reports;
  if (!collect(ReportKind::kStep, hold.cutoff_ns + kReportSlackNs, reports)) return false;
  const ProcessSample end = sample_processes(options_.server_pids);
  if (start.ok && end.ok) {
    result.server_rss_holding = end.rss_bytes;
    result.server_cpu_holding_s = ns_to_s(end.cpu_ns - start.cpu_ns);
  } else if (!options_.server_pids.empty()) {
    result.warnings.push_back("server sampling failed: " + end.error);
  }
  for (const Report& report : reports) result.open_after_hold += report.health.open_connections;
  return true;
}

bool Coordinator::run_steps(RunResult& result) {
  const std::uint64_t ramp_start = monotonic_ns();
  const std::uint64_t step_ns = s_to_ns(options_.step_seconds);
  const std::uint64_t grace_ns = s_to_ns(options_.grace_seconds);
  std::uint64_t closed_before = 0;
  for (std::size_t index = 0; index < options_.rates.size(); ++index) {
    Command command;
    command.kind = CommandKind::kStep;
    command.step = static_cast<std::uint32_t>(index);
    command.start_ns = monotonic_ns() + kStepLeadNs;
    command.send_end_ns = command.start_ns + step_ns;
    command.cutoff_ns = command.send_end_ns + grace_ns;
    if (options_.duration_s > 0 && command.cutoff_ns - ramp_start > s_to_ns(options_.duration_s)) {
      char why[120];
      std::snprintf(why, sizeof why, "--duration %g s reached before step %zu", options_.duration_s,
                    index + 1);
      result.stop_reason = why;
      break;
    }
    const double rate = options_.rates[index];
    if (!send_command(command, rate, true)) return false;

    StepResult step;
    step.index = command.step;
    step.target_rate = rate;
    step.window_s = ns_to_s(command.send_end_ns - command.start_ns);
    sleep_until_ns(command.start_ns);
    const ProcessSample server_start = sample_processes(options_.server_pids);
    sleep_until_ns(command.send_end_ns);
    const ProcessSample server_end = sample_processes(options_.server_pids);
    if (server_start.ok && server_end.ok) {
      step.server_cpu_s = ns_to_s(server_end.cpu_ns - server_start.cpu_ns);
      step.server_rss_bytes = server_end.rss_bytes;
    } else if (!options_.server_pids.empty()) {
      result.warnings.push_back("step " + std::to_string(index + 1) +
                                ": server sampling failed: " + server_end.error);
    }

    std::vector<Report> reports;
    if (!collect(ReportKind::kStep, command.cutoff_ns + kReportSlackNs, reports)) return false;
    step.generator_cpu.resize(reports.size());
    for (const Report& report : reports) {
      step.sent += report.sent;
      step.expected += report.expected;
      step.sent_bytes += report.sent_bytes;
      step.received += report.received;
      step.wire_bytes += report.wire_bytes;
      step.latency.merge(report.latency);
      step.closed += report.health.closed_by_server;
      step.open_at_end += report.health.open_connections;
      const double share =
          report.window_ns > 0 ? static_cast<double>(report.cpu_ns) / report.window_ns : 0;
      step.generator_cpu[report.worker] = share;
      if (share > options_.saturation_share) {
        step.generator_bound = true;
        char text[200];
        std::snprintf(text, sizeof text,
                      "step %zu: generator process %u used %.0f%% of a core: this step measures "
                      "the generator, not the server",
                      index + 1, report.worker, 100 * share);
        result.warnings.push_back(text);
        std::fprintf(stderr, "roomcast-bench: warning: %s\n", text);
      }
      if (first_error_.empty() && report.error[0] != '\0') first_error_ = report.error;
    }

    // Health counters only grow; the step's share is the difference.
    const std::uint64_t closed_total = step.closed;
    step.closed -= closed_before;
    closed_before = closed_total;
    const double p99_ms = static_cast<double>(step.latency.quantile(0.99)) / 1e6;
    char why[200] = {};
    if (step.closed > 0) {
      std::snprintf(why, sizeof why, "the server closed %llu connection(s)",
                    static_cast<unsigned long long>(step.closed));
    } else if (step.expected == 0) {
      std::snprintf(why, sizeof why, "nothing was sent");
    } else if (step.delivered_share() < options_.min_delivered) {
      std::snprintf(why, sizeof why, "%.2f%% delivered in time (< %.0f%%)",
                    100 * step.delivered_share(), 100 * options_.min_delivered);
    } else if (p99_ms > options_.max_p99_ms) {
      std::snprintf(why, sizeof why, "p99 %.1f ms > %.0f ms", p99_ms, options_.max_p99_ms);
    }
    step.passed = why[0] == '\0';
    step.failure = why;
    progress(
        "step %zu: %.0f msg/s target, %.0f sent/s, %.2f%% of %llu deliveries, p99 %.2f ms, "
        "generator CPU %.0f%%: %s",
        index + 1, rate, step.sent_rate(), 100 * step.delivered_share(),
        static_cast<unsigned long long>(step.expected), p99_ms,
        100 * *std::max_element(step.generator_cpu.begin(), step.generator_cpu.end()),
        step.passed ? "ok" : why);
    result.steps.push_back(step);
    if (step.open_at_end == 0) {
      result.stop_reason = "no connection is open any more (has the server exited?)";
      aborted_ = true;
      break;
    }
    if (!step.passed && !options_.no_stop && index + 1 < options_.rates.size()) {
      result.stop_reason = "step " + std::to_string(index + 1) + " failed: " + why;
      break;
    }
  }
  return true;
}

bool Coordinator::send_command(Command command, double rate, bool by_senders) {
  const double total = by_senders ? options_.total_senders() : options_.connections;
  for (const WorkerProcess& worker : workers_) {
    const double share = by_senders ? worker.senders : worker.client_count;
    command.rate = total > 0 ? rate * share / total : 0;
    if (!write_message(worker.command_fd, &command, sizeof command)) {
      return fail("worker process " + std::to_string(worker.pid) + " is gone");
    }
  }
  return true;
}

bool Coordinator::collect(ReportKind kind, std::uint64_t deadline_ns,
                          std::vector<Report>& reports) {
  reports.assign(workers_.size(), Report{});
  std::vector<bool> done(workers_.size(), false);
  std::size_t remaining = workers_.size();
  while (remaining > 0) {
    std::vector<pollfd> fds;
    std::vector<std::size_t> owners;
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (done[w]) continue;
      fds.push_back({workers_[w].report_fd, POLLIN, 0});
      owners.push_back(w);
    }
    const std::uint64_t now = monotonic_ns();
    if (now >= deadline_ns) {
      return fail(std::to_string(remaining) + " worker process(es) did not report in time");
    }
    const int timeout =
        static_cast<int>(std::min<std::uint64_t>((deadline_ns - now) / 1'000'000 + 1, 1'000));
    const int ready = poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) return fail(std::string("poll: ") + std::strerror(errno));
    for (std::size_t i = 0; i < fds.size() && ready > 0; ++i) {
      if (fds[i].revents == 0) continue;
      const std::size_t w = owners[i];
      Report& report = reports[w];
      if (!read_message(workers_[w].report_fd, &report, sizeof report)) {
        return fail("worker process " + std::to_string(w) + " exited unexpectedly");
      }
      if (report.kind == ReportKind::kFatal) {
        return fail("worker process " + std::to_string(w) + ": " + report.error);
      }
      if (report.kind != kind) {
        return fail("worker process " + std::to_string(w) + " sent an unexpected report");
      }
      done[w] = true;
      --remaining;
    }
  }
  return true;
}

void Coordinator::finish(RunResult& result) {
  Command quit;
  quit.kind = CommandKind::kQuit;
  std::vector<Report> reports;
  if (send_command(quit, 0, false) &&
      collect(ReportKind::kFinal, monotonic_ns() + kReportSlackNs, reports)) {
    for (const Report& report : reports) {
      result.health.pings_received += report.health.pings_received;
      result.health.pongs_sent += report.health.pongs_sent;
      result.health.closed_by_server += report.health.closed_by_server;
      result.health.error_messages += report.health.error_messages;
      result.health.late_deliveries += report.health.late_deliveries;
      result.health.open_connections += report.health.open_connections;
      result.health.deflate_connections += report.health.deflate_connections;
      if (first_error_.empty() && report.error[0] != '\0') first_error_ = report.error;
    }
  }
  result.first_error = first_error_;
  result.completed = !aborted_;
  stop_workers();
}

void Coordinator::stop_workers() {
  for (WorkerProcess& worker : workers_) {
    if (worker.command_fd >= 0) ::close(worker.command_fd);  // EOF tells the worker to stop
    if (worker.report_fd >= 0) ::close(worker.report_fd);
    worker.command_fd = worker.report_fd = -1;
  }
  for (WorkerProcess& worker : workers_) {
    if (worker.pid <= 0) continue;
    // A worker that has not exited within a second of losing its pipes is stuck.
    int status = 0;
    pid_t done = 0;
    for (int tries = 0; tries < 100 && (done = waitpid(worker.pid, &status, WNOHANG)) == 0;
         ++tries) {
      usleep(10'000);
    }
    if (done == 0) {
      kill(worker.pid, SIGKILL);
      waitpid(worker.pid, &status, 0);
    }
    worker.pid = -1;
  }
  workers_.clear();
}

void Coordinator::progress(const char* format, ...) const {
  if (options_.quiet) return;
  std::va_list args;
  va_start(args, format);
  std::fprintf(stderr, "roomcast-bench: ");
  std::vfprintf(stderr, format, args);
  std::fprintf(stderr, "\n");
  va_end(args);
}

bool Coordinator::fail(const std::string& why) {
  std::fprintf(stderr, "roomcast-bench: error: %s\n", why.c_str());
  stop_workers();
  return false;
}

}  // namespace roomcast::bench
