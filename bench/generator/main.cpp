// roomcast-bench: parse the options, run the scenario through the worker processes, print
// the Markdown table and write the JSON report.
#include <csignal>
#include <cstdio>

#include "coordinator.h"
#include "options.h"
#include "report.h"

int main(int argc, char** argv) {
  using namespace roomcast::bench;
  const Options options = parse_options(argc, argv);
  // A server that resets a connection must not kill the generator; send() reports EPIPE.
  std::signal(SIGPIPE, SIG_IGN);

  RunResult result;
  Coordinator coordinator(options);
  if (!coordinator.run(result)) return 1;

  print_markdown(result, stdout);
  std::fflush(stdout);
  if (!options.json_path.empty()) {
    if (const std::string error = write_json(result, options.json_path); !error.empty()) {
      std::fprintf(stderr, "roomcast-bench: error: %s\n", error.c_str());
      return 1;
    }
  }
  if (!result.completed) {
    std::fprintf(stderr, "roomcast-bench: error: the run ended early: %s\n",
                 result.stop_reason.c_str());
    return 1;
  }
  return 0;
}
