#include "config/config.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <charconv>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "net/upgrade.h"

namespace roomcast::config {

std::string parse_duration(const std::string& text, milliseconds& out) {
  double value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || value < 0) return "expected a duration such as 250ms, 15s or 2m";
  const std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  double scale = 0;
  if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "ms") {
    scale = 1;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else if (unit == "d") {
    scale = 86'400'000;
  } else {
    return "unknown unit '" + std::string(unit) + "' (use ms, s, m, h or d)";
  }
  out = milliseconds(static_cast<std::int64_t>(value * scale));
  return {};
}

std::string format_duration(milliseconds duration) {
  const auto ms = duration.count();
  if (ms > 0 && ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

namespace {

// Registers a duration flag that shows the target's current value (its default) in --help.
// `zero_refusal`: the error for 0 where 0 makes no sense (a timeout of 0 would drop every
// connection at once); empty: 0 is accepted. A coarser target (seconds) keeps the whole
// units of the value, as duration_cast does.
template <typename Rep, typename Period>
void add_duration(CLI::App& app, const std::string& name,
                  std::chrono::duration<Rep, Period>& target, const std::string& help,
                  const std::string& zero_refusal = {}) {
  app.add_option_function<std::string>(
         name,
         [&target, name, zero_refusal](const std::string& text) {
           milliseconds value{};
           if (auto error = parse_duration(text, value); !error.empty()) {
             throw CLI::ValidationError(name, error);
           }
           if (!zero_refusal.empty() && value.count() == 0) {
             throw CLI::ValidationError(name, zero_refusal);
           }
           target = std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(value);
         },
         help)
      ->default_str(format_duration(std::chrono::duration_cast<milliseconds>(target)))
      ->type_name("DURATION");
}

// Registers a flag that takes one of `names`, stored as the matching value of `values` in
// `target` (--history-store, --history-sync, --client-address-header). --help shows the name
// of the target's current value, its default. With `ignore_case`, "Forwarded" is "forwarded":
// CLI11's IsMember accepts it but passes it on as typed, so the match is made here too.
template <typename T, std::size_t N>
CLI::Option* add_choice(CLI::App& app, const std::string& name, T& target,
                        const std::array<std::string, N>& names, const std::array<T, N>& values,
                        const std::string& help, bool ignore_case = false) {
  std::string shown;
  for (std::size_t i = 0; i < N; ++i) {
    if (values[i] == target) shown = names[i];
  }
  const std::vector<std::string> members(names.begin(), names.end());
  return app
      .add_option_function<std::string>(
          name,
          [&target, names, values, ignore_case](const std::string& text) {
            // IsMember below has already refused anything else.
            const std::string chosen = ignore_case ? CLI::detail::to_lower(text) : text;
            for (std::size_t i = 0; i < N; ++i) {
              if (names[i] == chosen) target = values[i];
            }
          },
          help)
      ->check(ignore_case ? CLI::IsMember(members, CLI::ignore_case) : CLI::IsMember(members))
      ->default_str(shown);
}

// Refuses a negative count: CLI11 reads a size_t with strtoull, which takes "-1" for 2^64-1, so
// --max-rooms-per-connection -1 would quietly mean "no limit".
const CLI::Validator kNotNegative(
    [](std::string& text) {
      const auto first = text.find_first_not_of(" \t");
      return first != std::string::npos && text[first] == '-' ? "must not be negative"
                                                              : std::string();
    },
    "");

// Refuses 0 for a count where 0 would make the server useless rather than mean "no limit".
const CLI::Validator kAtLeastOne(
    [](std::string& text) {
      return text.find_first_not_of('0') == std::string::npos ? "must be at least 1"
                                                              : std::string();
    },
    "");

// Adds the origins of one --allowed-origins value ("https://a.example,http://b.example:8080")
// to `out`. Refuses an empty entry (a stray comma would otherwise vanish unnoticed) and an
// entry no browser can send in Origin (it would never match).
void add_origins(const std::string& list, std::vector<std::string>& out) {
  std::string_view rest = list;
  while (true) {
    const auto comma = rest.find(',');
    const std::string origin(rest.substr(0, comma));
    if (origin.empty()) {
      throw CLI::ValidationError(
          "--allowed-origins",
          "an empty entry in '" + list + "' (origins are separated by single commas)");
    }
    if (const auto broken = net::check_origin(origin)) {
      throw CLI::ValidationError("--allowed-origins", "'" + origin + "': " + *broken);
    }
    out.push_back(origin);
    if (comma == std::string_view::npos) return;
    rest.remove_prefix(comma + 1);
  }
}

std::filesystem::path default_web_root(const char* argv0) {
  // Next to the source tree when run from a build directory, else ./web.
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::canonical(fs::path(argv0), ec);
  if (!ec) {
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path();
         dir = dir.parent_path()) {
      if (fs::exists(dir / "web" / "index.html", ec)) return dir / "web";
    }
  }
  return "web";
}

// What the flags give that is not a field of Config as it is: text still to be parsed, or a
// value whose absence means "work it out".
struct Raw {
  std::vector<std::string> trusted_proxies;
  std::string node_id;
};

// Every flag, its --help text and its checks, bound to the fields of `config` (whose values
// now are the defaults --help shows).
void add_flags(CLI::App& app, Config& config, Raw& raw) {
  net::ServerOptions& server = config.server;
  chat::HubOptions& hub = config.hub;
  app.get_formatter()->column_width(40);
  app.add_option("--host", server.host,
                 "Address or host name to listen on (a name: every address it resolves to)")
      ->check(CLI::Validator(
          [](std::string& host) { return host.empty() ? "must not be empty" : std::string(); }, ""))
      ->capture_default_str();
  app.add_option("--port", server.port, "TCP port (0 picks a free one)")
      ->envname("PORT")
      ->capture_default_str();
  app.add_option("--threads", server.threads, "I/O worker threads (0: one per CPU)")
      ->check(CLI::Range(0u, net::ServerOptions::kMaxThreads))
      ->capture_default_str();
  app.add_option("--web-root", config.http.web_root, "Directory of the browser client")
      ->capture_default_str();
  app.add_option("--max-message-size", server.max_message_size,
                 "Largest WebSocket message in bytes (close 1009 beyond)")
      ->check(kNotNegative)
      ->check(kAtLeastOne)
      ->capture_default_str();
  add_choice<net::Compression, 3>(
      app, "--compression", server.compression, {"off", "shared", "dedicated"},
      {net::Compression::kOff, net::Compression::kShared, net::Compression::kDedicated},
      "permessage-deflate (RFC 7692): off declines it; shared compresses each message once, "
      "without context takeover, for every recipient that negotiated it; dedicated keeps a "
      "compression context per connection (better ratios, one deflate per recipient)");
  app.add_option("--compression-min-bytes", server.compression_min_bytes,
                 "Messages shorter than this are sent uncompressed (RSV1 clear)")
      ->check(kNotNegative)
      ->capture_default_str();
  app.add_option("--max-queued-bytes", server.max_queued_bytes,
                 "Send queue bound per connection; a slower reader is closed with 1008")
      ->check(kNotNegative)
      ->check(kAtLeastOne)
      ->capture_default_str();
  const std::string kPositive = "must be more than 0";
  add_duration(app, "--ping-interval", server.ping_interval, "Heartbeat ping interval", kPositive);
  add_duration(app, "--idle-timeout", server.idle_timeout,
               "Terminate a connection that sends nothing for this long (and nothing since a "
               "ping); more than --ping-interval",
               kPositive);
  add_duration(app, "--handshake-timeout", server.handshake_timeout,
               "Time a client has to send its HTTP request", kPositive);
  add_duration(app, "--shutdown-timeout", server.shutdown_timeout,
               "On SIGTERM/SIGINT, time clients get to finish the closing handshake");
  add_duration(app, "--typing-timeout", hub.typing_timeout,
               "Send typing_stop for a client silent this long after typing_start");
  app.add_option("--data-dir", config.data_dir, "Directory of the history database (roomcast.db)")
      ->envname("ROOMCAST_DATA_DIR")
      ->capture_default_str();
  add_choice<HistoryStore, 2>(app, "--history-store", config.history_store, {"sqlite", "memory"},
                              {HistoryStore::kSqlite, HistoryStore::kMemory},
                              "sqlite: durable history in --data-dir (messages are delivered and "
                              "acked once committed); memory: history only in memory while a "
                              "room has members, delivered and acked at once");
  app.add_option("--history-size", hub.history_size,
                 "Messages kept per room (0 keeps none; 'id' resends are recognised within "
                 "this window)")
      ->check(kNotNegative)
      ->capture_default_str();
  add_duration(app, "--history-ttl", hub.history_ttl,
               "Drop history older than this (0: no age limit)");
  app.add_option("--history-on-join", hub.history_on_join,
                 "Recent messages a join receives (join_room with 'since' gets what it missed)")
      ->check(kNotNegative)
      ->capture_default_str();
  add_choice<bool, 2>(app, "--history-sync", config.sqlite.sync_every_commit, {"full", "normal"},
                      {true, false},
                      "full: fsync every group commit (acked messages survive power loss); "
                      "normal: survive a crash of the server, not of the machine");
  add_duration(app, "--storage-refuse-after", config.sqlite.refuse_after,
               "While history commits keep failing (a full disk) for this long, messages "
               "are refused with 'unavailable' instead of waiting",
               kPositive);
  app.add_option("--redis", config.redis.url,
                 "Cluster mode: redis://[:password@]host[:port][/db]. Every node given the same "
                 "Redis is one chat: rooms, seq numbers, history, ids and user lists span them "
                 "(history lives in Redis; --data-dir and --history-store are not used)")
      ->envname("REDIS_URL");
  app.add_option("--node-id", raw.node_id,
                 "Cluster mode: this node's name in logs and Redis keys (default: the host "
                 "name); a random suffix keeps restarts apart");
  add_duration(app, "--cluster-node-ttl", config.redis.node_ttl,
               "Cluster mode: a node that stops refreshing its liveness key for this long "
               "(crashed, cut off) is dropped and its users announced as left");
  add_duration(app, "--redis-timeout", config.redis.command_timeout,
               "Cluster mode: a Redis command unanswered for this long (Redis hung, stopped, cut "
               "off) counts as Redis down: messages are refused with cluster_unavailable and "
               "/healthz says degraded until Redis answers again",
               kPositive);
  auto* tls_cert = app.add_option("--tls-cert", server.tls_cert_file,
                                  "PEM certificate (chain): serve https:// and wss:// only")
                       ->check(CLI::ExistingFile);
  auto* tls_key = app.add_option("--tls-key", server.tls_key_file, "PEM private key of --tls-cert")
                      ->check(CLI::ExistingFile);
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  app.add_option("--jwt-secret", config.jwt.secret,
                 "Verify tokens as HS256 JWTs with this shared secret (only HS* is accepted)")
      ->envname("JWT_SECRET");
  app.add_option("--jwt-public-key", config.jwt_public_key_file,
                 "Verify tokens as RS256 or ES256 JWTs with this PEM public key file (only the "
                 "key's family is accepted)")
      ->check(CLI::ExistingFile)
      ->excludes("--jwt-secret");
  add_duration(
      app, "--jwt-leeway", config.jwt.leeway,
      "Clock skew tolerated on a token's exp and nbf (whole seconds): a token is accepted, "
      "and its connection kept open, until exp plus this (close 4002 then, unless the "
      "client refreshed it)");
  app.add_flag("--require-auth", server.require_auth,
               "Refuse chat connections (close 4001) and history requests (401) without a "
               "valid token; default: anonymous users allowed");
  app.add_option("--rate-limit-messages", hub.message_rate.max_events,
                 "chat_message per person (a token's user on all their connections; an "
                 "anonymous connection alone) per --rate-limit-window; over it the person is "
                 "refused for twice the window. 0: no limit")
      ->capture_default_str();
  add_duration(app, "--rate-limit-window", hub.message_rate.window,
               "Window of --rate-limit-messages and --rate-limit-address-messages",
               "must be more than 0 (--rate-limit-messages 0 turns the limit off)");
  app.add_option("--rate-limit-signals", hub.signal_rate.max_events,
                 "Typing signals and joins per person per --rate-limit-signals-window. "
                 "0: no limit")
      ->capture_default_str();
  add_duration(app, "--rate-limit-signals-window", hub.signal_rate.window,
               "Window of --rate-limit-signals and --rate-limit-address-signals",
               "must be more than 0 (--rate-limit-signals 0 turns the limit off)");
  app.add_option("--rate-limit-address-messages", hub.address_message_rate.max_events,
                 "chat_message of all anonymous users of one client address together per "
                 "--rate-limit-window (against reconnecting for a fresh budget; sized for many "
                 "people behind one NAT or proxy); over it they are refused until the window "
                 "ends. 0: no limit")
      ->capture_default_str();
  app.add_option("--rate-limit-address-signals", hub.address_signal_rate.max_events,
                 "Typing signals and joins of all anonymous users of one client address "
                 "together per --rate-limit-signals-window. 0: no limit")
      ->capture_default_str();
  app.add_option("--trusted-proxies", raw.trusted_proxies,
                 "Comma-separated addresses or CIDR networks (127.0.0.1,10.0.0.0/8,::1) of "
                 "reverse proxies whose --client-address-header names the client; from any "
                 "other peer the header is ignored. Default: none (the TCP peer is the client)")
      ->delimiter(',');
  add_choice<http::ForwardedHeader, 2>(
      app, "--client-address-header", server.client_address_header,
      {"x-forwarded-for", "forwarded"},
      {http::ForwardedHeader::kXForwardedFor, http::ForwardedHeader::kForwarded},
      "The header trusted proxies name the client in: x-forwarded-for or forwarded "
      "(RFC 7239). Only this one is read",
      /*ignore_case=*/true);
  app.add_option("--max-rooms-per-connection", hub.max_rooms_per_connection,
                 "Rooms one connection may be in at once (error too_many_rooms). 0: no limit")
      ->check(kNotNegative)
      ->capture_default_str();
  app.add_option("--max-connections", server.max_connections,
                 "Open WebSockets in total; a handshake over it gets 503. 0: no limit")
      ->check(kNotNegative)
      ->capture_default_str();
  app.add_option("--max-connections-per-ip", server.max_connections_per_ip,
                 "Open WebSockets per client address; a handshake over it gets 503. 0: no limit")
      ->check(kNotNegative)
      ->capture_default_str();
  app.add_option_function<std::vector<std::string>>(
         "--allowed-origins",
         [&server](const std::vector<std::string>& lists) {
           for (const auto& list : lists) add_origins(list, server.allowed_origins);
         },
         "Comma-separated origins (https://chat.example.com) whose pages may connect; "
         "others get 403. Default: every origin")
      ->type_name("ORIGIN,...")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_flag("--echo-endpoint", server.echo_endpoint,
               "Serve ws://HOST:PORT/echo (RFC 6455 conformance testing)");
  app.add_option("--log-level", config.log_level,
                 "trace, debug, info, warn, error, critical or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
}

// A combination the server refuses after parsing, as it reports any start-up failure.
Exit critical(const Config& config, std::string text) {
  return Exit{.channel = Exit::Channel::kCriticalLog,
              .status = 1,
              .text = std::move(text),
              .log_level = config.log_level};
}

// Checks between flags, and the fields one flag sets in several parts. All of them come
// before anything is opened (the cluster's limits used to be judged after the token key was
// read: with both wrong, the first named is now the flag, not the key).
Parsed finish(Config config, const Raw& raw) {
  net::ServerOptions& server = config.server;
  // A client that answers every ping must get one before it counts as silent, and time to
  // answer it (net/heartbeat.h): otherwise the heartbeat ends healthy idle clients.
  if (server.idle_timeout <= server.ping_interval) {
    return Exit{.channel = Exit::Channel::kStderr,
                .status = 2,
                .text = "--idle-timeout: must be more than --ping-interval (" +
                        std::to_string(server.ping_interval.count()) +
                        " ms): a client that answers every ping needs to be pinged, and time "
                        "to answer\n"};
  }
  // Both windows of a kind of event are one flag: a person and their address count alike.
  config.hub.address_message_rate.window = config.hub.message_rate.window;
  config.hub.address_signal_rate.window = config.hub.signal_rate.window;
  try {
    server.trusted_proxies = http::TrustedProxies::parse(raw.trusted_proxies);
  } catch (const std::invalid_argument& e) {
    return critical(config, std::string("--trusted-proxies: ") + e.what());
  }
  if (server.require_auth && config.jwt.secret.empty() && config.jwt_public_key_file.empty()) {
    return critical(config,
                    "--require-auth needs --jwt-secret or --jwt-public-key to verify tokens");
  }
  config.jwt.limits = config.hub.limits;

  config.sqlite.file = config.data_dir / "roomcast.db";
  config.sqlite.retention = config.hub.retention();
  config.redis.retention = config.hub.retention();
  if (!config.redis.url.empty()) {
    if (config.redis.node_ttl < milliseconds(500)) {
      return critical(config, "--cluster-node-ttl must be at least 500ms");
    }
    // Below that, an fsync of Redis's AOF on a busy disk would pass for an outage.
    if (config.redis.command_timeout < milliseconds(100)) {
      return critical(config, "--redis-timeout must be at least 100ms");
    }
    if (!raw.node_id.empty()) {
      config.redis.node_name = raw.node_id;
    } else if (char host[256] = {}; gethostname(host, sizeof host - 1) == 0) {
      config.redis.node_name = host;
    }  // else the options' own default name
  }
  return config;
}

}  // namespace

Parsed parse_config(int argc, const char* const* argv) {
  Config config;
  config.http.web_root = default_web_root(argc > 0 ? argv[0] : "roomcast");
  Raw raw;
  CLI::App app{
      "roomcast: a real-time chat server. Serves the browser client, the chat WebSocket\n"
      "(ws://HOST:PORT/ and /ws), /healthz, /metrics, /api/stats and\n"
      "/api/rooms/ROOM/messages on one port."};
  try {
    add_flags(app, config, raw);
    app.parse(argc, argv);
  } catch (const CLI::Error& e) {
    // --help, a refused flag, or (a defect of add_flags) a flag table CLI11 rejects: printed
    // as CLI11 prints them, with its exit status.
    std::ostringstream out;
    std::ostringstream err;
    const int status = app.exit(e, out, err);
    if (!out.str().empty()) {
      return Exit{.channel = Exit::Channel::kStdout, .status = status, .text = out.str()};
    }
    return Exit{.channel = Exit::Channel::kStderr, .status = status, .text = err.str()};
  }
  return finish(std::move(config), raw);
}

}  // namespace roomcast::config
