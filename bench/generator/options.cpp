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

// The app event type rule of the server (docs/protocol.md, App events), so a typo is told
// here rather than as the server's unknown_type on every message.
bool is_event_type(std::string_view type) {
  return !type.empty() && type.size() <= 64 && std::all_of(type.begin(), type.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

std::string validate_message_kind(Options& options) {
  const MessageKind kind = options.message_kind;
  const bool event = kind == MessageKind::kEvent || kind == MessageKind::kPosition;
  if (!event && !options.event_type.empty()) {
    return "--event-type is for --message-kind event or position";
  }
  if (event) {
    if (options.event_type.empty()) {
      options.event_type = kind == MessageKind::kEvent ? "chat_event" : "player_moved";
    }
    if (!is_event_type(options.event_type)) {
      return "--event-type '" + options.event_type + "' must be 1 to 64 of A-Z a-z 0-9 _ - .";
    }
  }
  if (kind == MessageKind::kChat && options.no_echo) {
    return "--no-echo: a chat_message always comes back to its sender";
  }
  // The server never sends a binary message back to its sender.
  if (kind == MessageKind::kBinary) options.no_echo = true;
  if (options.no_echo && options.clients_per_room < 2) {
    return "--no-echo needs rooms of 2 or more: nobody else would receive anything";
  }
  if (options.payload_bytes > 0 &&
      (kind == MessageKind::kPosition || kind == MessageKind::kBinary)) {
    return "--payload-bytes pads chat and event texts; a position update has a fixed size";
  }
  if (options.ids && (kind == MessageKind::kPosition || kind == MessageKind::kBinary)) {
    return "--ids is for chat messages and events; a position update carries no id";
  }
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
  if (auto error = validate_message_kind(options); !error.empty()) return error;
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

int Options::deliveries_per_message(int room) const {
  return room_size(room) - (no_echo ? 1 : 0);
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

const char* message_kind_name(MessageKind kind) {
  switch (kind) {
    case MessageKind::kChat:
      return "chat";
    case MessageKind::kEvent:
      return "event";
    case MessageKind::kPosition:
      return "position";
    case MessageKind::kBinary:
      return "binary";
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
      "  fanout   the first --senders-per-room clients of each room send messages (below) at\n"
      "           an aggregate rate ramped through --rates, --step-seconds per step, round\n"
      "           robin over the senders. Each message carries its CLOCK_MONOTONIC send time;\n"
      "           every receiver (the sender too, unless --no-echo) computes the latency. Per\n"
      "           step: deliveries expected (sent x room size, less the sender with --no-echo)\n"
      "           and received within the step + --grace-seconds, deliveries/s, latency\n"
      "           p50/p90/p99/max, server RSS and CPU (--server-pid), generator CPU per\n"
      "           process. The ramp stops after a failed step (delivered < --min-delivered or\n"
      "           p99 > --max-p99-ms) unless --no-stop. A step where a generator process used\n"
      "           more than 90% of a core is marked generator-bound.\n"
      "  idle     hold the joined connections for --hold-seconds: handshake rate, join rate,\n"
      "           server RSS per connection, pings answered, connections closed by the server.\n"
      "  bigroom  fanout with a single room of every connection; also reports the join time.\n\n"
      "Messages (--message-kind), each stamped \"t=<ns> s=<step>\" (binary: in its last 12 "
      "bytes):\n"
      "  chat      {\"type\":\"chat_message\",\"message\":TEXT} (TEXT: the stamp, padded to\n"
      "            --payload-bytes); sent to every room of the sender, back to it too.\n"
      "  event     the same TEXT as an app event {\"type\":TYPE,\"room\":ROOM,\"message\":TEXT}\n"
      "            (TYPE: --event-type, default chat_event; the server must allow it, e.g.\n"
      "            --app-events chat_event:durable). With --batch, counted inside message_batch.\n"
      "  position  a position update as an app event "
      "{\"type\":TYPE,\"room\":ROOM,\"x\":X,\"y\":Y,\n"
      "            \"z\":Z,\"stamp\":STAMP} (TYPE default player_moved; --no-echo if the server\n"
      "            has player_moved:no-echo).\n"
      "  binary    the chapter's binary position update, 0x01 then x, y, z as float32, with\n"
      "            the stamp appended (uint64 send ns, uint32 step; little-endian): 25 bytes.\n"
      "            Joins with \"binary\": true; never echoed (implies --no-echo).\n\n"
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
                 "Pad each chat or event text with 'x' to this many characters (max 500)")
      ->check(CLI::Range(0, 500))
      ->capture_default_str();
  app.add_flag("--deflate", options.deflate,
               "Offer permessage-deflate and inflate compressed server messages (the step "
               "reports count wire bytes received, so the ratio shows)");
  app.add_flag("--batch", options.batch,
               "Join with \"batch\": true and count every chat_message or event of each "
               "message_batch");
  app.add_flag("--ids", options.ids,
               "Give each chat message or event an \"id\" (its send time), as the browser "
               "library does: the server acks it and checks it for a resend");
  std::string message_kind = "chat";
  app.add_option("--message-kind", message_kind,
                 "What the senders send: chat, event, position or binary (above)")
      ->check(CLI::IsMember({"chat", "event", "position", "binary"}))
      ->type_name("KIND")
      ->capture_default_str();
  app.add_option("--event-type", options.event_type,
                 "App event type of --message-kind event (default chat_event) or position "
                 "(default player_moved)")
      ->type_name("TYPE");
  app.add_flag("--no-echo", options.no_echo,
               "The server does not send a sender's message back to it (an app event type "
               "with no-echo): expect room size - 1 deliveries per message");
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
    options.message_kind = message_kind == "event"      ? MessageKind::kEvent
                           : message_kind == "position" ? MessageKind::kPosition
                           : message_kind == "binary"   ? MessageKind::kBinary
                                                        : MessageKind::kChat;
    if (auto error = validate(options); !error.empty()) throw CLI::ValidationError(error);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the help or the error
    std::exit(code == 0 ? 0 : 2);
  }
  return options;
}

}  // namespace roomcast::bench
