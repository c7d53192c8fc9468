// Options of roomcast-bench: what to load, how hard, and when a step counts as failed.
// Parsed once in main(); every process reads its own copy after fork().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "wire.h"

namespace roomcast::bench {

enum class Scenario {
  kFanout,  // rooms of --clients-per-room, ramp the send rate
  kIdle,  // connect, join, hold: handshake/join rate, bytes per connection, heartbeats
  kBigroom,  // one room of every connection: join time, then the ramp
};

struct Options {
  Scenario scenario = Scenario::kFanout;

  // Target, from --url ws://HOST:PORT/PATH. HOST is an IPv4 address or a name that
  // resolves to one.
  std::string url = "ws://127.0.0.1:3000/";
  std::string host;
  std::uint16_t port = 0;
  std::string path;

  int connections = 1000;
  // Client sockets bind to 127.0.0.(1 + i % source_ips) when the server is on loopback, so
  // N connections need only N / source_ips ephemeral ports per address (0: do not bind).
  int source_ips = 8;
  // Worker processes, each owning a contiguous slice of the connections. A process may hold
  // at most ~20,000 files here, hence the default of one per 18,000 connections.
  int processes = 0;  // 0: ceil(connections / 18000)

  int clients_per_room = 10;
  int senders_per_room = 1;
  double join_rate = 5000;  // join_room messages per second, all processes together
  // Connections in the TCP connect + upgrade stage at once, all processes together: keeps
  // the burst below the server's accept backlog.
  int connect_concurrency = 512;
  double connect_timeout_s = 10;  // per connection: TCP connect through connection_established

  std::vector<double> rates = {100, 1000, 5000, 10000, 20000, 50000};  // messages/s sent
  double step_seconds = 10;
  double grace_seconds = 2;  // after a step's last send, deliveries still count this long
  double duration_s = 0;  // cap on the whole ramp; 0: none
  int payload_bytes = 0;  // pad each chat text to this many characters (<= 500)
  // Offer permessage-deflate (RFC 7692) in every upgrade and inflate what the server
  // compresses, so deliveries are counted after inflation whatever --compression says.
  bool deflate = false;
  // Join with "batch": true: the room's messages come in message_batch (docs/protocol.md,
  // Batches), each chat_message or event in it counted as a delivery.
  bool batch = false;
  // Chat messages and events carry an "id", as the browser library's do (the server acks
  // each, and looks it up among the resends it keeps).
  bool ids = false;
  // What the senders send (wire.h). kBinary joins with "binary": true.
  MessageKind message_kind = MessageKind::kChat;
  // The app event type of kEvent and kPosition (the server must allow it: --app-events);
  // validate() fills in chat_event or player_moved when none is given.
  std::string event_type;
  // The sender does not get its own message back (an app event type with no-echo; binary
  // messages always): a message is then delivered to its room less one.
  bool no_echo = false;
  bool no_stop = false;

  // A step fails when fewer than this share of its deliveries arrived in time, or when its
  // p99 latency is above max_p99_ms.
  double min_delivered = 0.95;
  double max_p99_ms = 250;
  // A worker process above this share of one core during a step makes the step
  // "generator-bound": the figure then measures the generator, not the server.
  double saturation_share = 0.90;

  // After the joins, the ramp waits until every client has seen a user_list of its whole
  // room (presence coalescing sends the last one up to seconds later in a big room), so
  // the first step does not measure the join's presence traffic. At most this long.
  double settle_timeout_s = 30;

  double hold_seconds = 40;  // idle: long enough for two server pings (15 s interval)

  std::vector<pid_t> server_pids;
  std::string json_path;
  bool quiet = false;

  bool target_is_loopback() const;
  // Clients in room `room` (the last room may be smaller).
  int room_size(int room) const;
  int room_count() const;
  int senders_in_room(int room) const;
  // Deliveries one message sent in `room` makes: its members, less the sender with no_echo.
  int deliveries_per_message(int room) const;
  int total_senders() const;
};

// Parses argv. On --help prints the help and exits 0; on a bad option prints why and
// exits 2.
Options parse_options(int argc, char** argv);

const char* scenario_name(Scenario scenario);
const char* message_kind_name(MessageKind kind);

}  // namespace roomcast::bench
