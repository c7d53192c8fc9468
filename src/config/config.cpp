#include "config/config.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "base/build_info.h"
#include "hooks/delivery.h"
#include "net/upgrade.h"

namespace roomcast::config {

std::string environment_name(std::string_view option) {
  std::string out = "ROOMCAST_";
  for (const char c : option) {
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
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
  std::string app_events;  // --app-events, parsed by chat::AppEvents::parse in finish()
  // Not settings: where settings come from, and requests other than serving.
  std::string config_file;
  bool print_config = false;
  bool version = false;
  TokenTool token_tool;
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
  app.add_option("--port", server.port, "TCP port (0 picks a free one)")->capture_default_str();
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
  add_duration(app, "--rejoin-grace", hub.rejoin_grace,
               "Announce \"NAME left the chat\" only once a member has been gone this long, and "
               "a return within it (a reconnect, a page reload, a restart of this server) not "
               "at all; 0: every join and leave at once");
  app.add_option("--data-dir", config.data_dir, "Directory of the history database (roomcast.db)")
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
                 "(history lives in Redis; --data-dir and --history-store are not used)");
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
                 "Verify tokens as HS256 JWTs with this shared secret (only HS* is accepted)");
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
  app.add_option("--api-key", config.http.api_key,
                 "Enable the server API (/api/publish, /api/disconnect, ... docs/api.md) for "
                 "requests carrying this key in X-API-Key; without it the API answers 404");
  hooks::WebhookOptions& webhooks = config.webhooks;
  app.add_option("--webhook-url", webhooks.url,
                 "POST signed JSON events (user_joined, user_left, user_offline, "
                 "message_published; docs/api.md) to this http:// or https:// URL; needs "
                 "--webhook-secret");
  app.add_option("--webhook-secret", webhooks.secret,
                 "Key of the events' X-Roomcast-Signature (hex HMAC-SHA256 of the body); "
                 "signs the --publish-hook questions too");
  app.add_option("--backend-ca-file", webhooks.ca_file,
                 "https:// --webhook-url and --publish-hook: a PEM file of the CA certificates "
                 "the backend's certificate must chain to (a private CA); default: the system's")
      ->check(CLI::ExistingFile);
  add_duration(app, "--webhook-offline-grace", webhooks.offline_grace,
               "user_offline is sent when a token user has had no connection for this long "
               "(a page reload is not an offline; with --redis: no connection on any node)");
  app.add_option("--webhook-queue-size", webhooks.queue_size,
                 "Events waiting for delivery; beyond, new events are dropped (counted in "
                 "/metrics, logged)")
      ->check(kNotNegative)
      ->check(kAtLeastOne)
      ->capture_default_str();
  app.add_option("--webhook-concurrency", webhooks.concurrency,
                 "Events delivered at once, each lane on its own kept-alive connection; a "
                 "room's events take one lane, so they arrive in order (user_offline: its "
                 "user's)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}))
      ->capture_default_str();
  add_duration(app, "--webhook-timeout", webhooks.timeout,
               "One delivery attempt (connect, send, answer) longer than this fails and is "
               "retried",
               kPositive);
  app.add_option("--webhook-max-attempts", webhooks.max_attempts,
                 "Attempts per event (the delay between them doubles from 1s up to 30s) "
                 "before it is dropped")
      ->check(kNotNegative)
      ->check(kAtLeastOne)
      ->capture_default_str();
  hooks::PublishHookOptions& publish_hook = config.publish_hook;
  app.add_option(
      "--publish-hook", publish_hook.url,
      "Ask this http:// or https:// URL before publishing a member's chat message or durable app "
      "event (and a user's POST /api/rooms/{room}/messages): the backend allows, "
      "denies with a reason, or rewrites the text (docs/api.md); signed with "
      "--webhook-secret if set");
  add_duration(app, "--publish-hook-timeout", publish_hook.timeout,
               "A publish hook question unanswered for this long fails (--publish-hook-policy "
               "decides); the room's later messages wait behind it meanwhile",
               kPositive);
  add_choice<hooks::FailurePolicy, 2>(
      app, "--publish-hook-policy", publish_hook.policy, {"fail-open", "fail-closed"},
      {hooks::FailurePolicy::kFailOpen, hooks::FailurePolicy::kFailClosed},
      "When the publish hook gives no verdict (timeout, backend down, 5xx, a bad answer): "
      "fail-closed refuses the message with 'unavailable' (the default: what the backend "
      "would refuse never gets through unchecked), fail-open publishes it as sent");
  app.add_option("--publish-hook-max-pending", hub.max_awaiting_verdict,
                 "Messages per worker thread waiting for the publish hook's verdict (and 32 per "
                 "connection); beyond, a message is refused with 'unavailable'")
      ->check(kNotNegative)
      ->check(kAtLeastOne)
      ->capture_default_str();
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
  app.add_option(
         "--app-events", raw.app_events,
         "Application event types relayed to a room's members, with options: "
         "TYPE[:OPTION...][,...], OPTION durable (numbered, kept in history, recovered "
         "with since, acked by id, on the message budget) or ephemeral (default: never "
         "stored, on the signal budget), echo (default) or no-echo (not back to the "
         "sender), conflate (ephemeral: a reader that fell behind gets each sender's "
         "latest), rate=N/WINDOW (a budget of the type's own, N per person per WINDOW, spent "
         "instead of the message or signal budget). E.g. "
         "document_change:durable:rate=60/10s,price_update:conflate,player_moved:no-echo. "
         "Other types get unknown_type")
      ->type_name("TYPE[:OPTION...],...");
  app.add_option("--max-event-bytes", hub.limits.max_event_bytes,
                 "Largest app event, as JSON text (error too_large beyond); nesting is limited "
                 "to 8 levels")
      ->check(kNotNegative)
      ->check(kAtLeastOne)
      ->capture_default_str();
  app.add_option("--max-binary-bytes", hub.limits.max_binary_bytes,
                 "Largest binary message (error too_large beyond); binary messages go to the "
                 "rooms a connection joined with \"binary\": true, on the signal budget")
      ->check(kNotNegative)
      ->check(kAtLeastOne)
      ->capture_default_str();
  add_duration(app, "--batch-interval", hub.batch_interval,
               "message_batch (joins with \"batch\": true): the longest a room's messages wait "
               "to be sent together (plus up to one 20 ms tick)",
               kPositive);
  app.add_option("--batch-size", hub.batch_size,
                 "message_batch: a batch goes out as soon as it holds this many messages")
      ->check(kNotNegative)
      ->check(kAtLeastOne)
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
  add_choice<logging::Format, 2>(
      app, "--log-format", config.log_format, {"text", "json"},
      {logging::Format::kText, logging::Format::kJson},
      "text: one line a record; json: one JSON object a line (time, level, thread, message), "
      "for log shippers. Timestamps are UTC either way");
}

// A combination the server refuses after parsing, as it reports any start-up failure.
Exit critical(const Config& config, std::string text) {
  return Exit{.channel = Exit::Channel::kCriticalLog,
              .status = 1,
              .text = std::move(text),
              .log_level = config.log_level,
              .log_format = config.log_format};
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
  auto events = chat::AppEvents::parse(raw.app_events);
  if (auto* error = std::get_if<std::string>(&events)) {
    return Exit{
        .channel = Exit::Channel::kStderr, .status = 2, .text = "--app-events: " + *error + "\n"};
  }
  config.hub.app_events = std::get<chat::AppEvents>(std::move(events));

  if (!config.webhooks.url.empty()) {
    auto target = hooks::parse_http_url(config.webhooks.url);
    if (const auto* why = std::get_if<std::string>(&target)) {
      return critical(config, "--webhook-url: " + *why);
    }
    // Unsigned events would let anyone who can reach the backend forge them.
    if (config.webhooks.secret.empty()) {
      return critical(config,
                      "--webhook-url needs --webhook-secret (ROOMCAST_WEBHOOK_SECRET): the "
                      "backend checks each event's X-Roomcast-Signature with it");
    }
  }
  if (!config.publish_hook.url.empty()) {
    auto target = hooks::parse_http_url(config.publish_hook.url);
    if (const auto* why = std::get_if<std::string>(&target)) {
      return critical(config, "--publish-hook: " + *why);
    }
  }
  config.publish_hook.secret = config.webhooks.secret;
  config.publish_hook.ca_file = config.webhooks.ca_file;
  config.publish_hook.limits = config.hub.limits;
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

// One setting read from the environment or the config file: the option's long name ("port"),
// its values (several for a list) and where it was read, for a refusal to name.
struct Setting {
  std::string name;
  std::vector<std::string> values;
  std::string origin;
};

constexpr std::string_view kDescription =
    "roomcast: a real-time chat server. Serves the browser client, the chat WebSocket\n"
    "(ws://HOST:PORT/ and /ws), /healthz, /metrics, /api/stats and\n"
    "/api/rooms/ROOM/messages on one port.";

constexpr std::string_view kFooter =
    "Every option can also be set in the environment, as ROOMCAST_ and its name in capitals\n"
    "with '_' for '-' (ROOMCAST_MAX_MESSAGE_SIZE=4096, ROOMCAST_REQUIRE_AUTH=true), and in\n"
    "the --config file (max-message-size = 4096). Flags win over the environment, the\n"
    "environment over the file. PORT, REDIS_URL and JWT_SECRET are read too, after\n"
    "ROOMCAST_PORT, ROOMCAST_REDIS and ROOMCAST_JWT_SECRET.";

// The names the server read before every option had a ROOMCAST_ one; still honoured.
constexpr std::array<std::pair<std::string_view, std::string_view>, 3> kOlderEnvironmentNames{{
    {"port", "PORT"},
    {"redis", "REDIS_URL"},
    {"jwt-secret", "JWT_SECRET"},
}};

// Every option: the settings (add_flags) and the rest, which no file or variable sets.
void add_all(CLI::App& app, Config& config, Raw& raw) {
  app.description(std::string(kDescription));
  app.footer(std::string(kFooter));
  add_flags(app, config, raw);
  app.get_help_ptr()->configurable(false);
  app.add_option("--config", raw.config_file,
                 "Read settings from this TOML file (key = value, keys are the options' names: "
                 "port = 3000); the environment and flags override it. Also ROOMCAST_CONFIG")
      ->type_name("FILE")
      ->configurable(false);
  app.add_flag("--print-config", raw.print_config,
               "Print the effective settings (file, environment and flags merged) as a file "
               "for --config, and exit")
      ->configurable(false);
  app.add_flag("--version", raw.version, "Print the version and git commit, and exit")
      ->configurable(false);

  // The token tools take the token settings of the main command (from flags, the
  // environment or the file): fallthrough lets `roomcast gentoken --jwt-secret S ...` say so.
  app.require_subcommand(0, 1);
  TokenTool& tool = raw.token_tool;
  CLI::App* gentoken = app.add_subcommand(
      "gentoken",
      "Print a token signed with the configured key (--jwt-secret; --private-key for RS256 or "
      "ES256), checked as the server would check it");
  gentoken->fallthrough();
  gentoken->add_option("--sub", tool.subject, "The user's id (the token's sub)")->required();
  gentoken->add_option("--name", tool.name, "The username (the token's name)")->required();
  gentoken
      ->add_option_function<std::vector<std::string>>(
          "--rooms", [&tool](const std::vector<std::string>& rooms) { tool.rooms = rooms; },
          "Comma-separated rooms or prefixes (support:*) the token allows; default: every room")
      ->delimiter(',')
      ->type_name("ROOM,...");
  add_duration(*gentoken, "--ttl", tool.ttl, "How long the token is valid", "must be more than 0");
  gentoken
      ->add_option("--private-key", tool.private_key_file,
                   "PEM private key to sign with (RSA: RS256, EC: ES256/384/512), for a server "
                   "verifying with --jwt-public-key")
      ->check(CLI::ExistingFile);
  CLI::App* checktoken = app.add_subcommand(
      "checktoken",
      "Say whether the server, as configured, would accept TOKEN now, and why not; exit "
      "status 0 if it would, 1 if not");
  checktoken->fallthrough();
  checktoken->add_option("token", tool.token, "The token (a JWT)")->required();
}

// The options a file or the environment may set, in --help's order.
std::vector<const CLI::Option*> settings(const CLI::App& app) {
  return app.get_options([](const CLI::Option* option) {
    return option->get_configurable() && !option->get_lnames().empty();
  });
}

bool is_flag(const CLI::Option& option) {
  return option.get_expected_min() == 0;
}

// --help, or a refusal as CLI11 words it. The exit status is 0 for --help and 2 for every
// refusal: CLI11 numbers each kind (105 a value its check refuses, 106 one missing, ...), and
// a script starting the server needs one answer, the one refused() gives.
Exit report_cli_error(const CLI::App& app, const CLI::Error& e) {
  std::ostringstream out;
  std::ostringstream err;
  const int status = app.exit(e, out, err) == 0 ? 0 : 2;
  if (!out.str().empty()) {
    return Exit{.channel = Exit::Channel::kStdout, .status = status, .text = out.str()};
  }
  return Exit{.channel = Exit::Channel::kStderr, .status = status, .text = err.str()};
}

// Parses `arguments` (without the program's name) into the options of `app`; nullopt, or
// what to do instead: --help, or a refusal as CLI11 words it, with its exit status. Without
// `judge_combinations`, options that need or exclude others are not judged (the others may
// come from elsewhere).
std::optional<Exit> parse_arguments(CLI::App& app, std::vector<std::string> arguments,
                                    bool judge_combinations = true) {
  std::reverse(arguments.begin(), arguments.end());  // CLI11 takes them last first
  try {
    app.parse(arguments);
  } catch (const CLI::RequiresError& e) {
    if (judge_combinations) return report_cli_error(app, e);
  } catch (const CLI::ExcludesError& e) {
    if (judge_combinations) return report_cli_error(app, e);
  } catch (const CLI::Error& e) {
    return report_cli_error(app, e);
  }
  return std::nullopt;
}

Exit refused(const std::string& where, const std::string& why) {
  return Exit{.channel = Exit::Channel::kStderr,
              .status = 2,
              .text = where + ": " + why + "\nRun with --help for more information.\n"};
}

// The settings the environment gives, but for those in `taken`: ROOMCAST_<NAME> first, then
// an older name. An empty variable sets nothing (as an unset one).
std::vector<Setting> from_environment(const CLI::App& app, const std::set<std::string>& taken) {
  std::vector<Setting> out;
  for (const CLI::Option* option : settings(app)) {
    const std::string& name = option->get_lnames().front();
    if (taken.contains(name)) continue;
    std::vector<std::string> variables{environment_name(name)};
    for (const auto& [option_name, older] : kOlderEnvironmentNames) {
      if (option_name == name) variables.emplace_back(older);
    }
    for (const std::string& variable : variables) {
      const char* value = std::getenv(variable.c_str());
      if (value != nullptr && *value != '\0') {
        out.push_back(Setting{.name = name, .values = {value}, .origin = variable});
        break;
      }
    }
  }
  return out;
}

// The settings of a TOML config file, read with CLI11's reader: `key = value` lines at the
// top level, keys as the options' long names ('_' taken for '-'), a list as an array of
// strings. Anything else is refused, naming the file and the key.
std::variant<std::vector<Setting>, Exit> read_config_file(const CLI::App& app,
                                                          const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    return refused("--config " + file, "no such file");
  }
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(file);
  } catch (const CLI::Error& e) {
    return refused("--config " + file, e.what());
  }
  std::vector<Setting> out;
  std::set<std::string> seen;
  for (const CLI::ConfigItem& item : items) {
    if (!item.parents.empty()) {
      return refused(file, "section [" + item.parents.front() +
                               "]: there are no sections, every key is at the top level");
    }
    std::string name = item.name;
    std::replace(name.begin(), name.end(), '_', '-');
    const CLI::Option* option = nullptr;
    for (const CLI::Option* candidate : settings(app)) {
      if (candidate->get_lnames().front() == name) option = candidate;
    }
    const std::string where = file + ": " + (item.name.empty() ? "a line" : "'" + item.name + "'");
    if (option == nullptr) {
      return refused(where, "not an option (roomcast --help lists them)");
    }
    if (!seen.insert(name).second) return refused(where, "set twice");
    if (item.inputs.empty() ||
        (item.inputs.size() == 1 && item.inputs.front().empty() && !is_flag(*option))) {
      return refused(where, "no value");
    }
    if (is_flag(*option) && item.inputs.size() != 1) {
      return refused(where, "expected true or false");
    }
    for (const std::string& value : item.inputs) {
      // The reader takes '#' for a comment even inside quotes and then leaves the opening
      // quote in place: refuse rather than use the cut value (a secret, a password).
      if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
        return refused(where,
                       "a string not closed on its line (a '#' inside a quoted value is "
                       "taken for a comment: set this one in the environment instead)");
      }
    }
    out.push_back(Setting{.name = name, .values = item.inputs, .origin = where});
  }
  return out;
}

// Whether `setting` alone is a valid value of its option, so that a refusal says where it came
// from; what the options need of each other is judged with all of them.
std::optional<Exit> check_alone(const Setting& setting) {
  Config scratch;
  Raw raw;
  CLI::App app;
  add_all(app, scratch, raw);
  std::vector<std::string> arguments;
  for (const std::string& value : setting.values) {
    arguments.push_back("--" + setting.name + "=" + value);
  }
  if (auto exit = parse_arguments(app, arguments, /*judge_combinations=*/false)) {
    exit->text = setting.origin + ": " + exit->text;
    return exit;
  }
  return std::nullopt;
}

// A value as the file reader (CLI11's) reads it back: a number or a boolean bare, anything
// else quoted. The reader takes no escapes, so a value is written as it is between double
// quotes, or single ones if it holds a double quote or a backslash; nullopt when it cannot
// be written at all (both kinds of quote, a '#' the reader would take for a comment, a line
// break).
std::optional<std::string> toml_value(const std::string& value, bool flag) {
  if (flag) return value;
  const bool number =
      !value.empty() && value.size() < 19 &&
      std::all_of(value.begin(), value.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) &&
      (value == "0" || value.front() != '0');
  if (number) return value;
  if (value.find_first_of("#\n\r") != std::string::npos) return std::nullopt;
  if (value.find_first_of("\"\\") == std::string::npos) return "\"" + value + "\"";
  if (value.find('\'') == std::string::npos) return "'" + value + "'";
  return std::nullopt;
}

// The effective settings of a parsed `app` as a file for --config: every setting with its
// --help text; one that is not set (no default, none given) as a comment.
std::string effective_toml(const CLI::App& app) {
  std::string out =
      "# roomcast settings (roomcast --print-config), to load with --config FILE.\n"
      "# ROOMCAST_* environment variables and flags override what this file sets.\n";
  for (const CLI::Option* option : settings(app)) {
    const std::string& name = option->get_lnames().front();
    out += "\n# " + option->get_description() + "\n";
    std::vector<std::string> values;
    if (is_flag(*option)) {
      values.push_back(option->count() > 0 && option->as<bool>() ? "true" : "false");
    } else if (option->count() > 0) {
      values = option->results();
    } else if (!option->get_default_str().empty()) {
      values.push_back(option->get_default_str());
    }
    if (values.empty()) {
      out += "# " + name + " = (not set)\n";
      continue;
    }
    std::string written = values.size() > 1 ? "[" : "";
    for (std::size_t i = 0; i < values.size(); ++i) {
      const auto value = toml_value(values[i], is_flag(*option));
      if (!value) {
        written.clear();
        break;
      }
      written += (i == 0 ? "" : ", ") + *value;
    }
    if (written.empty()) {
      out += "# " + name + " = (set, but not writable here: it holds a '#', a line break or " +
             "both kinds of quote; give it in the environment, " + environment_name(name) + ")\n";
    } else {
      out += name + " = " + written + (values.size() > 1 ? "]\n" : "\n");
    }
  }
  return out;
}

}  // namespace

Parsed parse_config(int argc, const char* const* argv) {
  std::vector<std::string> command_line;
  for (int i = 1; i < argc; ++i) command_line.emplace_back(argv[i]);
  const std::filesystem::path web_root = default_web_root(argc > 0 ? argv[0] : "roomcast");

  // 1. The command line alone: its own mistakes, --help and --version come first (a broken
  // file must not hide them), and it says which settings the other sources may still give.
  std::set<std::string> on_command_line;
  Raw asked;
  {
    Config scratch;
    CLI::App app;
    add_all(app, scratch, asked);
    if (auto exit = parse_arguments(app, command_line, /*judge_combinations=*/false)) {
      return std::move(*exit);
    }
    if (asked.version) return Exit{.channel = Exit::Channel::kStdout, .text = version_text()};
    for (const CLI::Option* option : settings(app)) {
      if (option->count() > 0) on_command_line.insert(option->get_lnames().front());
    }
  }

  // 2. The environment, then the file, for what the command line leaves open.
  std::vector<Setting> layered;
  std::string config_file = asked.config_file;
  if (config_file.empty()) {
    if (const char* named = std::getenv("ROOMCAST_CONFIG"); named != nullptr) config_file = named;
  }
  {
    Config scratch;
    Raw scratch_raw;
    CLI::App app;
    add_all(app, scratch, scratch_raw);
    std::set<std::string> taken = on_command_line;
    for (Setting& setting : from_environment(app, taken)) {
      taken.insert(setting.name);
      layered.push_back(std::move(setting));
    }
    if (!config_file.empty()) {
      auto from_file = read_config_file(app, config_file);
      if (auto* exit = std::get_if<Exit>(&from_file)) return std::move(*exit);
      for (Setting& setting : std::get<std::vector<Setting>>(from_file)) {
        if (!taken.contains(setting.name)) layered.push_back(std::move(setting));
      }
    }
  }
  // Each one alone first, so that a refusal names where the value came from.
  for (const Setting& setting : layered) {
    if (auto exit = check_alone(setting)) return std::move(*exit);
  }

  // 3. All of it at once: the file's and the environment's settings as flags, then the
  // command line (which sets none of the same options).
  std::vector<std::string> merged;
  for (const Setting& setting : layered) {
    for (const std::string& value : setting.values) {
      merged.push_back("--" + setting.name + "=" + value);
    }
  }
  merged.insert(merged.end(), command_line.begin(), command_line.end());
  Config config;
  config.http.web_root = web_root;
  Raw raw;
  CLI::App app;
  add_all(app, config, raw);
  if (auto exit = parse_arguments(app, merged)) return std::move(*exit);
  config.config_file = config_file;
  if (app.got_subcommand("gentoken") || app.got_subcommand("checktoken")) {
    config.token_tool = raw.token_tool;
    config.token_tool->kind =
        app.got_subcommand("gentoken") ? TokenTool::Kind::kGenerate : TokenTool::Kind::kCheck;
  }
  Parsed parsed = finish(std::move(config), raw);
  if (raw.print_config && std::holds_alternative<Config>(parsed)) {
    return Exit{.channel = Exit::Channel::kStdout, .text = effective_toml(app)};
  }
  return parsed;
}

std::string version_text() {
  const auto build = base::build_info();
  return "roomcast " + std::string(build.version) + " (commit " + std::string(build.commit) + ")\n";
}

}  // namespace roomcast::config
