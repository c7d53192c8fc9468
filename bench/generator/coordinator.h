// Coordinator: the parent process. Forks the worker processes, moves them through the
// phases (connect, join, then the scenario's steps) with Commands, samples the server's
// /proc entries at the step boundaries, and merges the workers' Reports into a RunResult.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ipc.h"
#include "options.h"
#include "report.h"

namespace roomcast::bench {

class Coordinator {
 public:
  explicit Coordinator(const Options& options);
  ~Coordinator();

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Runs the whole scenario; fills `result`. Returns false, after printing why on stderr,
  // when the run could not complete (connections failed, a worker died...).
  bool run(RunResult& result);

 private:
  struct WorkerProcess {
    pid_t pid = -1;
    int command_fd = -1;  // parent writes
    int report_fd = -1;  // parent reads
    int first_client = 0;
    int client_count = 0;
    int senders = 0;
  };

  bool spawn_workers();
  bool setup(RunResult& result);
  bool run_steps(RunResult& result);
  bool run_hold(RunResult& result);
  // Sends the same command to every worker, with `rate` split by `share(worker)`.
  bool send_command(Command command, double rate, bool by_senders);
  // Waits for one report of `kind` from every worker, until `deadline_ns`.
  bool collect(ReportKind kind, std::uint64_t deadline_ns, std::vector<Report>& reports);
  void finish(RunResult& result);
  void stop_workers();
  void progress(const char* format, ...) const;
  bool fail(const std::string& why);

  const Options& options_;
  std::vector<WorkerProcess> workers_;
  std::string first_error_;
  bool aborted_ = false;  // the scenario ended early for a reason other than a failed step
};

}  // namespace roomcast::bench
