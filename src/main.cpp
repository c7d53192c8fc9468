// roomcast: the configuration -> the parts -> run -> graceful drain. Nothing else lives here:
// flags, defaults and their checks are src/config's.
#include <spdlog/spdlog.h>

#include <boost/system/system_error.hpp>
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <variant>

#include "auth/jwt_authenticator.h"
#include "base/build_info.h"
#include "chat/history_page.h"
#include "cluster/redis_cluster.h"
#include "config/config.h"
#include "hooks/publish_hook.h"
#include "hooks/webhooks.h"
#include "logging/logging.h"
#include "net/server.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"
#include "tools/token_tools.h"

namespace {

using roomcast::config::Config;
using roomcast::config::Exit;

// Says what parse_config returned instead of a Config; returns the process's exit status.
int report(const Exit& exit) {
  switch (exit.channel) {
    case Exit::Channel::kStdout:
      std::fputs(exit.text.c_str(), stdout);
      break;
    case Exit::Channel::kStderr:
      std::fputs(exit.text.c_str(), stderr);
      break;
    case Exit::Channel::kCriticalLog:
      roomcast::logging::start(exit.log_level, exit.log_format);
      spdlog::critical("{}", exit.text);
      break;
  }
  return exit.status;
}

// Joins the cluster on the configured Redis. Throws std::invalid_argument for a bad URL.
std::unique_ptr<roomcast::cluster::RedisCluster> join_cluster(
    const roomcast::cluster::RedisClusterOptions& options, const roomcast::base::Clock& clock) {
  auto cluster = std::make_unique<roomcast::cluster::RedisCluster>(options, clock);
  // Serve anyway if Redis is not there yet: clients connect, and chat resumes (with
  // "cluster unavailable" errors meanwhile) once it is.
  if (!cluster->wait_until_up(std::chrono::seconds(3))) {
    spdlog::error("Redis at {} is not reachable yet; serving, and retrying", cluster->where());
  }
  return cluster;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = roomcast::config::parse_config(argc, argv);
  if (const auto* exit = std::get_if<Exit>(&parsed)) return report(*exit);
  const Config& config = std::get<Config>(parsed);
  if (config.token_tool) {
    const roomcast::base::SystemClock clock;
    return roomcast::tools::run_token_tool(config, clock, stdout, stderr);
  }

  // A peer that vanished must cost its connection an EPIPE, never the process a SIGPIPE:
  // plain sends use MSG_NOSIGNAL, but OpenSSL writes TLS records with write(2).
  std::signal(SIGPIPE, SIG_IGN);
  // SIGHUP reloads the TLS certificate once the server runs (Server::run); until then, and
  // whatever happens, it must not end the process the way its default would.
  std::signal(SIGHUP, SIG_IGN);
  roomcast::logging::start(config.log_level, config.log_format);

  // Token expiry and history's age are judged by the wall clock; it outlives the server and
  // the store, which use it.
  const roomcast::base::SystemClock clock;
  // History: Redis in cluster mode, else SQLite, else (--history-store memory) memory. The
  // store outlives the server, which uses it.
  std::unique_ptr<roomcast::chat::Authenticator> authenticator;
  std::unique_ptr<roomcast::cluster::RedisCluster> cluster;
  std::unique_ptr<roomcast::store::SqliteStore> sqlite;
  std::unique_ptr<roomcast::store::MemoryStore> memory;
  roomcast::chat::HistoryStore* store = nullptr;
  std::string history_location = "in memory";
  // The backend's events (--webhook-url); outlives the server, whose Hubs report to it.
  std::unique_ptr<roomcast::hooks::Webhooks> webhooks;
  // Asked before members' messages are published (--publish-hook); stopped before the server
  // is destroyed, since its verdicts go back to the workers.
  std::unique_ptr<roomcast::hooks::HttpPublishHook> publish_hook;
  try {
    authenticator = roomcast::tools::make_authenticator(config, clock);
    if (!config.redis.url.empty()) {
      cluster = join_cluster(config.redis, clock);
      store = cluster.get();
      history_location = "Redis (cluster node " + cluster->instance() + ")";
    } else if (config.history_store == roomcast::config::HistoryStore::kSqlite) {
      sqlite = std::make_unique<roomcast::store::SqliteStore>(config.sqlite, clock);
      store = sqlite.get();
      history_location = config.sqlite.file.string();
    } else {
      memory = std::make_unique<roomcast::store::MemoryStore>(clock, config.hub.retention());
      store = memory.get();
    }
    if (!config.webhooks.url.empty()) {
      roomcast::hooks::WebhookOptions options = config.webhooks;
      if (cluster) options.node = cluster->instance();
      webhooks =
          std::make_unique<roomcast::hooks::Webhooks>(std::move(options), clock, cluster.get());
    }
    if (!config.publish_hook.url.empty()) {
      publish_hook = std::make_unique<roomcast::hooks::HttpPublishHook>(config.publish_hook);
    }
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }

  try {
    // The HTTP answers: what the server counts, plus the health of Redis or the disk; history
    // pages read from the store, authorised as a join would be.
    std::unique_ptr<roomcast::net::Server> server;
    roomcast::http::Service http(
        config.http,
        [&] {
          roomcast::metrics::Snapshot snapshot = server->snapshot();
          if (cluster) {
            snapshot.broker = {cluster->up(),
                               cluster->reconnects(),
                               cluster->data_losses(),
                               std::string(cluster->down_reason()),
                               cluster->command_latency(),
                               cluster->publish_latency()};
          }
          if (sqlite) {
            auto health = sqlite->health();
            const auto stats = sqlite->stats();
            snapshot.storage = roomcast::metrics::StorageState{
                health.ok,
                std::move(health.reason),
                stats.commit_failures,
                stats.waiting,
                static_cast<double>(stats.last_commit_unix_ms) / 1000,
                stats.commit_latency};
          }
          if (webhooks) snapshot.webhooks = webhooks->stats();
          if (publish_hook) snapshot.publish_hook = publish_hook->stats();
          snapshot.process = roomcast::metrics::read_process_stats();
          return snapshot;
        },
        [&](std::string_view room, std::optional<std::uint64_t> since, std::size_t limit,
            roomcast::chat::HistoryDone done) {
          roomcast::chat::read_history_page(*store, clock, config.hub.retention(),
                                            config.hub.limits, room, since, limit, std::move(done));
        },
        roomcast::http::HistoryAccess{authenticator.get(), config.server.require_auth,
                                      config.hub.limits});
    // The workers, each with its own Hub, joined over the store (and the cluster).
    server = std::make_unique<roomcast::net::Server>(
        config.server, config.hub, http, *store, authenticator.get(), cluster.get(), cluster.get(),
        webhooks.get(), cluster.get(), publish_hook.get());
    // The server API (--api-key) acts on the workers' Hubs through the server.
    http.set_api_backend(server.get(), cluster ? cluster->instance() : std::string("standalone"));
    const auto port = server->listen();
    const auto build = roomcast::base::build_info();
    spdlog::info(
        "roomcast {} (commit {}) listening on {}://{}:{} ({} worker threads, web root {}, "
        "history {}, config file {})",
        build.version, build.commit, config.server.tls_cert_file.empty() ? "http" : "https",
        config.server.host, port, server->threads(), config.http.web_root.string(),
        history_location,
        config.config_file.empty() ? std::string("none") : config.config_file.string());
    server->run();
    // No verdict may be posted to a worker being destroyed.
    if (publish_hook) publish_hook->stop();
    server.reset();  // before the HTTP service its workers answer with
  } catch (const boost::system::system_error& e) {
    spdlog::critical("cannot listen on {}:{}: {}", config.server.host, config.server.port,
                     e.what());
    return 1;
  } catch (const std::runtime_error& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}
