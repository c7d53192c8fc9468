// roomcast: flags -> wiring -> run -> graceful drain. Nothing else lives here.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/system/system_error.hpp>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "auth/jwt_authenticator.h"
#include "cluster/redis_cluster.h"
#include "net/server.h"
#include "net/upgrade.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"

namespace {

using std::chrono::milliseconds;

// Parses "250ms", "15s", "2m", "12h", "7d" or a bare number of seconds.
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

// Registers a duration flag that shows its default in --help. `zero_refusal`: the error for
// 0 where 0 makes no sense (a timeout of 0 would drop every connection at once); empty: 0 is
// accepted.
void add_duration(CLI::App& app, const std::string& name, milliseconds& target,
                  const std::string& help, const std::string& zero_refusal = {}) {
  app.add_option_function<std::string>(
         name,
         [&target, name, zero_refusal](const std::string& text) {
           if (auto error = parse_duration(text, target); !error.empty()) {
             throw CLI::ValidationError(name, error);
           }
           if (!zero_refusal.empty() && target.count() == 0) {
             throw CLI::ValidationError(name, zero_refusal);
           }
         },
         help)
      ->default_str(target.count() % 86'400'000 == 0 && target.count() > 0
                        ? std::to_string(target.count() / 86'400'000) + "d"
                    : target.count() % 1000 == 0 ? std::to_string(target.count() / 1000) + "s"
                                                 : std::to_string(target.count()) + "ms")
      ->type_name("DURATION");
}

// The token verifier the flags ask for: nullptr when no key is given (everyone is anonymous).
// Throws std::runtime_error for an unreadable key file or an unusable key.
std::unique_ptr<roomcast::chat::Authenticator> make_authenticator(
    const std::string& secret, const std::string& public_key_file, std::chrono::seconds leeway,
    const roomcast::chat::ProtocolLimits& limits, const roomcast::base::Clock& clock) {
  if (secret.empty() && public_key_file.empty()) return nullptr;
  roomcast::auth::JwtOptions jwt;
  jwt.secret = secret;
  jwt.leeway = leeway;
  jwt.limits = limits;
  if (!public_key_file.empty()) {
    std::ifstream in(public_key_file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read --jwt-public-key " + public_key_file);
    std::ostringstream pem;
    pem << in.rdbuf();
    jwt.public_key_pem = pem.str();
  }
  try {
    return std::make_unique<roomcast::auth::JwtAuthenticator>(std::move(jwt), clock);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what());
  }
}

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
    if (const auto broken = roomcast::net::check_origin(origin)) {
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

}  // namespace

int main(int argc, char** argv) {
  roomcast::net::ServerOptions options;
  roomcast::chat::HubOptions hub_options;
  roomcast::http::ServiceOptions http_options;
  http_options.web_root = default_web_root(argv[0]);
  std::string log_level = "info";
  std::filesystem::path data_dir = "data";
  milliseconds storage_refuse_after = roomcast::store::SqliteStoreOptions{}.refuse_after;
  std::string history_store = "sqlite";
  std::string history_sync = "full";
  hub_options.history_ttl = std::chrono::days(30);
  std::string jwt_secret;
  std::string jwt_public_key_file;
  std::chrono::milliseconds jwt_leeway = roomcast::auth::JwtOptions{}.leeway;
  std::string redis_url;
  std::string node_id;
  std::chrono::milliseconds cluster_node_ttl{10000};
  std::chrono::milliseconds redis_timeout{3000};
  // Token expiry and history's age are judged by the wall clock; it outlives the server and
  // the store, which use it.
  const roomcast::base::SystemClock token_clock;

  CLI::App app{
      "roomcast: a real-time chat server. Serves the browser client, the chat WebSocket\n"
      "(ws://HOST:PORT/ and /ws), /healthz, /metrics, /api/stats and\n"
      "/api/rooms/ROOM/messages on one port."};
  app.get_formatter()->column_width(40);
  app.add_option("--host", options.host,
                 "Address or host name to listen on (a name: every address it resolves to)")
      ->check(CLI::Validator(
          [](std::string& host) { return host.empty() ? "must not be empty" : std::string(); }, ""))
      ->capture_default_str();
  app.add_option("--port", options.port, "TCP port (0 picks a free one)")
      ->envname("PORT")
      ->capture_default_str();
  app.add_option("--threads", options.threads, "I/O worker threads (0: one per CPU)")
      ->check(CLI::Range(0u, roomcast::net::ServerOptions::kMaxThreads))
      ->capture_default_str();
  app.add_option("--web-root", http_options.web_root, "Directory of the browser client")
      ->capture_default_str();
  app.add_option("--max-message-size", options.max_message_size,
                 "Largest WebSocket message in bytes (close 1009 beyond)")
      ->check(kAtLeastOne)
      ->capture_default_str();
  app.add_option("--max-queued-bytes", options.max_queued_bytes,
                 "Send queue bound per connection; a slower reader is closed with 1008")
      ->check(kAtLeastOne)
      ->capture_default_str();
  const std::string kPositive = "must be more than 0";
  add_duration(app, "--ping-interval", options.ping_interval, "Heartbeat ping interval", kPositive);
  add_duration(app, "--idle-timeout", options.idle_timeout,
               "Terminate a connection that sends nothing for this long (and nothing since a "
               "ping); more than --ping-interval",
               kPositive);
  add_duration(app, "--handshake-timeout", options.handshake_timeout,
               "Time a client has to send its HTTP request", kPositive);
  add_duration(app, "--shutdown-timeout", options.shutdown_timeout,
               "On SIGTERM/SIGINT, time clients get to finish the closing handshake");
  add_duration(app, "--typing-timeout", hub_options.typing_timeout,
               "Send typing_stop for a client silent this long after typing_start");
  app.add_option("--data-dir", data_dir, "Directory of the history database (roomcast.db)")
      ->envname("ROOMCAST_DATA_DIR")
      ->capture_default_str();
  app.add_option("--history-store", history_store,
                 "sqlite: durable history in --data-dir (messages are delivered and acked once "
                 "committed); memory: history only in memory while a room has members, "
                 "delivered and acked at once")
      ->check(CLI::IsMember({"sqlite", "memory"}))
      ->capture_default_str();
  app.add_option("--history-size", hub_options.history_size,
                 "Messages kept per room (0 keeps none; 'id' resends are recognised within "
                 "this window)")
      ->capture_default_str();
  add_duration(app, "--history-ttl", hub_options.history_ttl,
               "Drop history older than this (0: no age limit)");
  app.add_option("--history-on-join", hub_options.history_on_join,
                 "Recent messages a join receives (join_room with 'since' gets what it missed)")
      ->capture_default_str();
  app.add_option("--history-sync", history_sync,
                 "full: fsync every group commit (acked messages survive power loss); normal: "
                 "survive a crash of the server, not of the machine")
      ->check(CLI::IsMember({"full", "normal"}))
      ->capture_default_str();
  add_duration(app, "--storage-refuse-after", storage_refuse_after,
               "While history commits keep failing (a full disk) for this long, messages "
               "are refused with 'unavailable' instead of waiting",
               kPositive);
  app.add_option("--redis", redis_url,
                 "Cluster mode: redis://[:password@]host[:port][/db]. Every node given the same "
                 "Redis is one chat: rooms, seq numbers, history, ids and user lists span them "
                 "(history lives in Redis; --data-dir and --history-store are not used)")
      ->envname("REDIS_URL");
  app.add_option("--node-id", node_id,
                 "Cluster mode: this node's name in logs and Redis keys (default: the host "
                 "name); a random suffix keeps restarts apart");
  add_duration(app, "--cluster-node-ttl", cluster_node_ttl,
               "Cluster mode: a node that stops refreshing its liveness key for this long "
               "(crashed, cut off) is dropped and its users announced as left");
  add_duration(app, "--redis-timeout", redis_timeout,
               "Cluster mode: a Redis command unanswered for this long (Redis hung, stopped, cut "
               "off) counts as Redis down: messages are refused with cluster_unavailable and "
               "/healthz says degraded until Redis answers again",
               kPositive);
  auto* tls_cert = app.add_option("--tls-cert", options.tls_cert_file,
                                  "PEM certificate (chain): serve https:// and wss:// only")
                       ->check(CLI::ExistingFile);
  auto* tls_key = app.add_option("--tls-key", options.tls_key_file, "PEM private key of --tls-cert")
                      ->check(CLI::ExistingFile);
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  app.add_option("--jwt-secret", jwt_secret,
                 "Verify tokens as HS256 JWTs with this shared secret (only HS* is accepted)")
      ->envname("JWT_SECRET");
  app.add_option("--jwt-public-key", jwt_public_key_file,
                 "Verify tokens as RS256 or ES256 JWTs with this PEM public key file (only the "
                 "key's family is accepted)")
      ->check(CLI::ExistingFile)
      ->excludes("--jwt-secret");
  add_duration(
      app, "--jwt-leeway", jwt_leeway,
      "Clock skew tolerated on a token's exp and nbf (whole seconds): a token is accepted, "
      "and its connection kept open, until exp plus this (close 4002 then, unless the "
      "client refreshed it)");
  app.add_flag("--require-auth", options.require_auth,
               "Refuse chat connections (close 4001) and history requests (401) without a "
               "valid token; default: anonymous users allowed");
  app.add_option("--rate-limit-messages", hub_options.message_rate.max_events,
                 "chat_message per person (a token's user on all their connections; an "
                 "anonymous connection alone) per --rate-limit-window; over it the person is "
                 "refused for twice the window. 0: no limit")
      ->capture_default_str();
  add_duration(app, "--rate-limit-window", hub_options.message_rate.window,
               "Window of --rate-limit-messages and --rate-limit-address-messages",
               "must be more than 0 (--rate-limit-messages 0 turns the limit off)");
  app.add_option("--rate-limit-signals", hub_options.signal_rate.max_events,
                 "Typing signals and joins per person per --rate-limit-signals-window. "
                 "0: no limit")
      ->capture_default_str();
  add_duration(app, "--rate-limit-signals-window", hub_options.signal_rate.window,
               "Window of --rate-limit-signals and --rate-limit-address-signals",
               "must be more than 0 (--rate-limit-signals 0 turns the limit off)");
  app.add_option("--rate-limit-address-messages", hub_options.address_message_rate.max_events,
                 "chat_message of all anonymous users of one client address together per "
                 "--rate-limit-window (against reconnecting for a fresh budget; sized for many "
                 "people behind one NAT or proxy); over it they are refused until the window "
                 "ends. 0: no limit")
      ->capture_default_str();
  app.add_option("--rate-limit-address-signals", hub_options.address_signal_rate.max_events,
                 "Typing signals and joins of all anonymous users of one client address "
                 "together per --rate-limit-signals-window. 0: no limit")
      ->capture_default_str();
  std::vector<std::string> trusted_proxies;
  app.add_option("--trusted-proxies", trusted_proxies,
                 "Comma-separated addresses or CIDR networks (127.0.0.1,10.0.0.0/8,::1) of "
                 "reverse proxies whose --client-address-header names the client; from any "
                 "other peer the header is ignored. Default: none (the TCP peer is the client)")
      ->delimiter(',');
  std::string client_address_header = "x-forwarded-for";
  app.add_option("--client-address-header", client_address_header,
                 "The header trusted proxies name the client in: x-forwarded-for or forwarded "
                 "(RFC 7239). Only this one is read")
      ->check(CLI::IsMember({"x-forwarded-for", "forwarded"}, CLI::ignore_case))
      ->capture_default_str();
  app.add_option("--max-rooms-per-connection", hub_options.max_rooms_per_connection,
                 "Rooms one connection may be in at once (error too_many_rooms). 0: no limit")
      ->capture_default_str();
  app.add_option("--max-connections", options.max_connections,
                 "Open WebSockets in total; a handshake over it gets 503. 0: no limit")
      ->capture_default_str();
  app.add_option("--max-connections-per-ip", options.max_connections_per_ip,
                 "Open WebSockets per client address; a handshake over it gets 503. 0: no limit")
      ->capture_default_str();
  app.add_option_function<std::vector<std::string>>(
         "--allowed-origins",
         [&options](const std::vector<std::string>& lists) {
           for (const auto& list : lists) add_origins(list, options.allowed_origins);
         },
         "Comma-separated origins (https://chat.example.com) whose pages may connect; "
         "others get 403. Default: every origin")
      ->type_name("ORIGIN,...")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_flag("--echo-endpoint", options.echo_endpoint,
               "Serve ws://HOST:PORT/echo (RFC 6455 conformance testing)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  CLI11_PARSE(app, argc, argv);
  // A client that answers every ping must get one before it counts as silent, and time to
  // answer it (net/heartbeat.h): otherwise the heartbeat ends healthy idle clients.
  if (options.idle_timeout <= options.ping_interval) {
    std::fprintf(stderr,
                 "--idle-timeout: must be more than --ping-interval (%lld ms): a client that "
                 "answers every ping needs to be pinged, and time to answer\n",
                 static_cast<long long>(options.ping_interval.count()));
    return 2;
  }

  // A peer that vanished must cost its connection an EPIPE, never the process a SIGPIPE:
  // plain sends use MSG_NOSIGNAL, but OpenSSL writes TLS records with write(2).
  std::signal(SIGPIPE, SIG_IGN);
  // SIGHUP reloads the TLS certificate once the server runs (Server::run); until then, and
  // whatever happens, it must not end the process the way its default would.
  std::signal(SIGHUP, SIG_IGN);
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Both windows of a kind of event are one flag: a person and their address count alike.
  hub_options.address_message_rate.window = hub_options.message_rate.window;
  hub_options.address_signal_rate.window = hub_options.signal_rate.window;
  try {
    options.trusted_proxies = roomcast::http::TrustedProxies::parse(trusted_proxies);
  } catch (const std::invalid_argument& e) {
    spdlog::critical("--trusted-proxies: {}", e.what());
    return 1;
  }
  options.client_address_header = client_address_header == "forwarded"
                                      ? roomcast::http::ForwardedHeader::kForwarded
                                      : roomcast::http::ForwardedHeader::kXForwardedFor;

  if (options.require_auth && jwt_secret.empty() && jwt_public_key_file.empty()) {
    spdlog::critical("--require-auth needs --jwt-secret or --jwt-public-key to verify tokens");
    return 1;
  }
  std::unique_ptr<roomcast::chat::Authenticator> authenticator;
  try {
    authenticator = make_authenticator(jwt_secret, jwt_public_key_file,
                                       std::chrono::duration_cast<std::chrono::seconds>(jwt_leeway),
                                       hub_options.limits, token_clock);
  } catch (const std::runtime_error& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }

  std::unique_ptr<roomcast::cluster::RedisCluster> cluster;
  std::unique_ptr<roomcast::store::SqliteStore> sqlite;
  std::unique_ptr<roomcast::store::MemoryStore> memory;
  roomcast::chat::HistoryStore* store = nullptr;
  std::string history_location = "in memory";
  if (!redis_url.empty()) {
    if (cluster_node_ttl < std::chrono::milliseconds(500)) {
      spdlog::critical("--cluster-node-ttl must be at least 500ms");
      return 1;
    }
    // Below that, an fsync of Redis's AOF on a busy disk would pass for an outage.
    if (redis_timeout < std::chrono::milliseconds(100)) {
      spdlog::critical("--redis-timeout must be at least 100ms");
      return 1;
    }
    if (node_id.empty()) {
      char host[256] = {};
      node_id = gethostname(host, sizeof host - 1) == 0 ? host : "node";
    }
    try {
      cluster = std::make_unique<roomcast::cluster::RedisCluster>(
          roomcast::cluster::RedisClusterOptions{
              redis_url,
              node_id,
              {hub_options.history_size, hub_options.history_ttl},
              cluster_node_ttl,
              redis_timeout},
          token_clock);
    } catch (const std::invalid_argument& e) {
      spdlog::critical("{}", e.what());
      return 1;
    }
    // Serve anyway if Redis is not there yet: clients connect, and chat resumes (with
    // "cluster unavailable" errors meanwhile) once it is.
    if (!cluster->wait_until_up(std::chrono::seconds(3))) {
      spdlog::error("Redis at {} is not reachable yet; serving, and retrying", cluster->where());
    }
    store = cluster.get();
    history_location = "Redis (cluster node " + cluster->instance() + ")";
  } else if (history_store == "sqlite") {
    try {
      sqlite = std::make_unique<roomcast::store::SqliteStore>(
          roomcast::store::SqliteStoreOptions{data_dir / "roomcast.db",
                                              {hub_options.history_size, hub_options.history_ttl},
                                              history_sync == "full",
                                              storage_refuse_after},
          token_clock);
      store = sqlite.get();
      history_location = (data_dir / "roomcast.db").string();
    } catch (const std::exception& e) {
      spdlog::critical("{}", e.what());
      return 1;
    }
  } else {
    memory = std::make_unique<roomcast::store::MemoryStore>(token_clock, hub_options.retention());
    store = memory.get();
  }

  try {
    std::function<roomcast::metrics::BrokerState()> broker_state;
    if (cluster) {
      broker_state = [&cluster] {
        return roomcast::metrics::BrokerState{cluster->up(), cluster->reconnects(),
                                              cluster->data_losses(),
                                              std::string(cluster->down_reason())};
      };
    }
    std::function<roomcast::metrics::StorageState()> storage_state;
    if (sqlite) {
      storage_state = [&sqlite] {
        auto health = sqlite->health();
        return roomcast::metrics::StorageState{health.ok, std::move(health.reason)};
      };
    }
    roomcast::net::Server server(options, hub_options, http_options, *store,
                                 std::move(authenticator), cluster.get(), cluster.get(),
                                 std::move(broker_state), std::move(storage_state));
    const auto port = server.listen();
    spdlog::info("roomcast listening on {}://{}:{} ({} worker threads, web root {}, history {})",
                 options.tls_cert_file.empty() ? "http" : "https", options.host, port,
                 server.threads(), http_options.web_root.string(), history_location);
    server.run();
  } catch (const boost::system::system_error& e) {
    spdlog::critical("cannot listen on {}:{}: {}", options.host, options.port, e.what());
    return 1;
  } catch (const std::runtime_error& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}
