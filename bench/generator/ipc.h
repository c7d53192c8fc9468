// The pipe protocol between the parent (coordinator) and its worker processes. Messages are
// fixed-size, trivially copyable structs written whole by one writer per pipe; both ends
// run the same binary (fork without exec), so raw bytes are a faithful encoding.
#pragma once

#include <cstdint>
#include <type_traits>

#include "histogram.h"

namespace roomcast::bench {

// Parent -> worker.
enum class CommandKind : std::uint32_t {
  kJoin,  // start joining rooms at `rate` joins/s
  kSettle,  // report once every client saw a full user_list, or at cutoff_ns
  kStep,  // send at `rate` messages/s in [start_ns, send_end_ns), report at cutoff_ns
  kQuit,  // report final counters and exit
};

struct Command {
  CommandKind kind = CommandKind::kQuit;
  std::uint32_t step = 0;
  double rate = 0;  // this worker's share of the aggregate rate
  std::uint64_t start_ns = 0;
  std::uint64_t send_end_ns = 0;
  std::uint64_t cutoff_ns = 0;
};

// Worker -> parent.
enum class ReportKind : std::uint32_t {
  kConnected,  // every connection of the slice is established (or failed)
  kJoined,  // every join was welcomed (or failed)
  kSettled,  // every client saw a user_list of its whole room (or the cutoff passed)
  kStep,  // a step's counters at its cutoff
  kFinal,  // counters at the end
  kFatal,  // the worker cannot go on; `error` says why
};

// Counters that only grow over a worker's life.
struct HealthCounters {
  std::uint64_t pings_received = 0;
  std::uint64_t pongs_sent = 0;
  std::uint64_t closed_by_server = 0;  // close frames or EOF from the server
  std::uint64_t error_messages = 0;  // "error" messages from the server
  std::uint64_t late_deliveries = 0;  // stamped deliveries that arrived after their cutoff
  std::uint64_t open_connections = 0;  // at the time of the report
  std::uint64_t deflate_connections = 0;  // upgrades where the server accepted deflate
};

struct Report {
  ReportKind kind = ReportKind::kFatal;
  std::uint32_t worker = 0;
  std::uint32_t step = 0;

  // kConnected / kJoined / kSettled: how many succeeded and failed, and when the phase began and
  // its last success happened (CLOCK_MONOTONIC ns).
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::uint64_t phase_begin_ns = 0;
  std::uint64_t phase_end_ns = 0;

  // kStep.
  std::uint64_t sent = 0;
  std::uint64_t expected = 0;  // sum over sent messages of the deliveries each makes
  std::uint64_t sent_bytes = 0;  // WebSocket payload bytes of the messages sent
  std::uint64_t received = 0;  // deliveries of this step that arrived before its cutoff
  // WebSocket bytes (frame headers and payloads, as on the wire before inflation) read from
  // the send window's start to the cutoff.
  std::uint64_t wire_bytes = 0;
  std::uint64_t cpu_ns = 0;  // this process's user+system CPU during the send window
  std::uint64_t window_ns = 0;
  LatencyHistogram latency;

  HealthCounters health;
  char error[240] = {};  // first error seen (kFatal, or the reason for `failed`)
};

static_assert(std::is_trivially_copyable_v<Command>);
static_assert(std::is_trivially_copyable_v<Report>);

// Writes/reads one whole message; false on EOF or error. Blocking.
bool write_message(int fd, const void* data, std::size_t size);
bool read_message(int fd, void* data, std::size_t size);

// Copies `text` into a fixed error field, truncating.
void set_error(char (&field)[240], const char* text);

}  // namespace roomcast::bench
