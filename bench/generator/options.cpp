#include "options.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "wire.h"

namespace roomcast::bench {
namespace {

// Splits ws://HOST[:PORT][/PATH] into its parts; returns an error text or "".
std::string parse_url(Options& options) {
  constexpr std::string_view kScheme = "ws://";
  std::string_view rest = options.url;
  if (rest.substr(0, kScheme.size()) != kScheme) return "the URL must start with ws://";
  rest.remove_prefix(kScheme.size());
  const auto slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  options.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  const auto colon = authority.rfind(':');
  options.host = std::string(authority.substr(0, colon));
  options.port = 80;
  if (colon != std::string_view::npos) {
    const std::string_view port = authority.substr(colon + 1);
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) {
      return "bad port in URL";
    }
    options.port = static_cast<std::uint16_t>(value);
  }
  if (options.host.empty()) return "no host in URL";
  // Resolve once here, so every worker connects to the same IPv4 address.
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(options.host.c_str(), nullptr, &hints, &found); rc != 0) {
    return "cannot resolve " + options.host + ": " + gai_strerror(rc);
  }
  char text[INET_ADDRSTRLEN] = {};
  sockaddr_in address{};
  std::memcpy(&address, found->ai_addr, sizeof address);
  freeaddrinfo(found);
  inet_ntop(AF_INET, &address.sin_addr, text, sizeof text);
  options.host = text;
  return {};
}

std::string validate(Options& options) {
  if (auto error = parse_url(options); !error.empty()) return error;
  if (options.scenario == Scenario::kBigroom) options.clients_per_room = options.connections;
  if (options.processes == 0) options.processes = (options.connections + 17999) / 18000;
  if (options.processes > options.connections) options.processes = options.connections;
  if (options.senders_per_room > options.clients_per_room) {
    return "--senders-per-room cannot exceed --clients-per-room";
  }
  if (options.payload_bytes > static_cast<int>(kMaxChatText)) {
    return "--payload-bytes is at most 500 (the protocol's message limit)";
  }
  if (options.scenario != Scenario::kIdle && options.rates.empty()) return "--rates is empty";
  for (double rate : options.rates) {
    if (!(rate > 0)) return "every rate in --rates must be positive";
  }
  if (options.connect_concurrency < options.processes) {
    options.connect_concurrency = options.processes;
  }
  return {};
}

}  // namespace

bool Options::target_is_loopback() const {
  return host.rfind("127.", 0) == 0;
}

int Options::room_count() const {
  return (connections + clients_per_room - 1) / clients_per_room;
}

int Options::room_size(int room) const {
  return std::min(clients_per_room, connections - room * clients_per_room);
}

int Options::senders_in_room(int room) const {
  return std::min(senders_per_room, room_size(room));
}

int Options::total_senders() const {
  const int full_rooms = connections / clients_per_room;
  int total = full_rooms * senders_per_room;
  if (full_rooms < room_count()) total += senders_in_room(full_rooms);
  return total;
}

const char* scenario_name(Scenario scenario) {
  switch (scenario) {
    case Scenario::kFanout:
      return "fanout";
    case Scenario::kIdle:
      return "idle";
    case Scenario::kBigroom:
      return "bigroom";
  }
  return "?";
}

Options parse_options(int argc, char** argv) {
  Options options;
  CLI::App app{
      "roomcast-bench: load generator for roomcast's chat protocol.\n\n"
      "Opens --connections WebSocket connections (spread over --processes worker processes and\n"
      "--source-ips loopback source addresses), joins client i to room \"room-<i/K>\" as \"u<i>\"\n"
      "(K = --clients-per-room) at --join-rate, then runs the scenario:\n"
      "  fanout   the first --senders-per-room clients of each room send chat_message at an\n"
      "           aggregate rate ramped through --rates, --step-seconds per step. Each text\n"
      "           carries its CLOCK_MONOTONIC send time; every receiver (the sender included)\n"
      "           computes the latency. Per step: deliveries expected (sent x room size) and\n"
      "           received within the step + --grace-seconds, deliveries/s, latency\n"
      "           p50/p90/p99/max, server RSS and CPU (--server-pid), generator CPU per\n"
      "           process. The ramp stops after a failed step (delivered < --min-delivered or\n"
      "           p99 > --max-p99-ms) unless --no-stop. A step where a generator process used\n"
      "           more than 90% of a core is marked generator-bound.\n"
      "  idle     hold the joined connections for --hold-seconds: handshake rate, join rate,\n"
      "           server RSS per connection, pings answered, connections closed by the server.\n"
      "  bigroom  fanout with a single room of every connection; also reports the join time.\n\n"
      "Writes a Markdown table to stdout and, with --json, a JSON report. Exit status 0 when\n"
      "the run completed (even if a step failed), 1 when it could not (connect failure...),\n"
      "2 for bad options."};
  app.get_formatter()->column_width(36);

  std::string scenario = "fanout";
  app.add_option("--scenario", scenario, "fanout, idle or bigroom")
      ->check(CLI::IsMember({"fanout", "idle", "bigroom"}))
      ->type_name("NAME")
      ->capture_default_str();
  app.add_option("--url", options.url, "Server WebSocket URL ws://HOST:PORT/PATH")
      ->capture_default_str();
  app.add_option("-n,--connections", options.connections, "WebSocket connections to open")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  app.add_option("--source-ips", options.source_ips,
                 "Bind client i to 127.0.0.(1 + i % K) (loopback targets; 0: no bind)")
      ->check(CLI::Range(0, 254))
      ->capture_default_str();
  app.add_option("--processes", options.processes,
                 "Worker processes (0: ceil(connections / 18000); ~20,000 files per process)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  app.add_option("--clients-per-room", options.clients_per_room,
                 "Room size K: client i joins room-<i/K> (bigroom: all in one)")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  app.add_option("--senders-per-room", options.senders_per_room,
                 "The first S clients of each room send")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  app.add_option("--join-rate", options.join_rate, "join_room messages per second, in total")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--connect-concurrency", options.connect_concurrency,
                 "Connections in TCP connect/upgrade at once, in total")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--connect-timeout", options.connect_timeout_s,
                 "Seconds for one connection to be established (TCP + upgrade + "
                 "connection_established); a join has as long to be welcomed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--settle-timeout", options.settle_timeout_s,
                 "After joining, wait at most this long for every client to see a full "
                 "user_list before the first step")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--rates", options.rates, "Aggregate send rates of the ramp, messages/s")
      ->delimiter(',')
      ->default_str("100,1000,5000,10000,20000,50000");
  app.add_option("--step-seconds", options.step_seconds, "Sending time per step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--grace-seconds", options.grace_seconds,
                 "Deliveries still count this long after a step's last send")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--duration", options.duration_s,
                 "Cap on the whole ramp in seconds; no step starts that would end later (0: "
                 "no cap)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--payload-bytes", options.payload_bytes,
                 "Pad each chat text with 'x' to this many characters (max 500)")
      ->check(CLI::Range(0, 500))
      ->capture_default_str();
  app.add_flag("--deflate", options.deflate,
               "Offer permessage-deflate and inflate compressed server messages (the step "
               "reports count wire bytes received, so the ratio shows)");
  app.add_flag("--batch", options.batch,
               "Join with \"batch\": true and count every chat_message of each message_batch");
  app.add_flag("--no-stop", options.no_stop, "Run every step even after one failed");
  app.add_option("--min-delivered", options.min_delivered,
                 "A step fails below this share of deliveries in time")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--max-p99-ms", options.max_p99_ms, "A step fails above this p99 latency")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--hold-seconds", options.hold_seconds,
                 "idle: how long to hold the joined connections")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--server-pid", options.server_pids,
                 "Server process to sample RSS and CPU from /proc (repeatable; summed)");
  app.add_option("--json", options.json_path, "Write the JSON report to this file");
  app.add_flag("-q,--quiet", options.quiet, "No progress lines on stderr");

  try {
    app.parse(argc, argv);
    options.scenario = scenario == "idle"      ? Scenario::kIdle
                       : scenario == "bigroom" ? Scenario::kBigroom
                                               : Scenario::kFanout;
    if (auto error = validate(options); !error.empty()) throw CLI::ValidationError(error);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the help or the error
    std::exit(code == 0 ? 0 : 2);
  }
  return options;
}

}  // namespace roomcast::bench
