// Server: wires the workers (each with its own Hub), the Exchange that joins their Hubs, and
// the HTTP service together, and runs them until a signal asks for a graceful drain.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "base/clock.h"
#include "chat/authenticator.h"
#include "chat/cluster_control.h"
#include "chat/exchange.h"
#include "chat/hub.h"
#include "http/service.h"
#include "metrics/metrics.h"
#include "net/options.h"

namespace roomcast::net {

class ConnectionGate;
class Worker;
class TlsContext;

// Also the server API's backend (http::ApiBackend): its calls are posted to the workers,
// whose Hubs act on their own connections, and answered once every worker has. In a cluster,
// it is the control listener (chat::ClusterControl::Listener): commands other nodes received
// are applied here the same way, and its figures feed the node list.
class Server final : public http::ApiBackend, public chat::ClusterControl::Listener {
 public:
  // Builds the workers, one Hub each, and what joins their Hubs into one chat: a
  // chat::Exchange over `store` (and the cluster's `presence`, if any) and the node's
  // chat::RateBudgets (summed with the other nodes' through the cluster's `budgets`, if any).
  // `http` answers the HTTP requests the workers read; `authenticator` verifies tokens
  // (nullptr: no key configured, every user is anonymous); `backend_events` hears the Hubs'
  // joins, leaves, connections and published messages (nullptr: no webhooks); `control` sends
  // the server API's commands to the other nodes and lists them (nullptr: a single node);
  // `publish_hook` is asked before members' messages are published (nullptr: none). All of
  // them outlive the Server.
  // Throws std::runtime_error if the TLS certificate or key cannot be loaded.
  Server(ServerOptions options, chat::HubOptions hub_options, const http::Service& http,
         chat::HistoryStore& store, const chat::Authenticator* authenticator = nullptr,
         chat::Presence* presence = nullptr, chat::SharedBudgets* budgets = nullptr,
         chat::BackendEvents* backend_events = nullptr, chat::ClusterControl* control = nullptr,
         chat::PublishHook* publish_hook = nullptr);
  ~Server() override;

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every worker's listening sockets, one per address the host resolves to (a name
  // such as localhost may give several; one that cannot be bound is skipped with a warning
  // while another can be); returns the port (useful with port 0). Throws std::runtime_error
  // if the host does not resolve, boost::system::system_error if no address can be bound.
  std::uint16_t listen();

  // Starts the workers and blocks until SIGINT or SIGTERM, then drains: history made
  // durable (and its acks sent), no new connections, every WebSocket closed with 1001
  // (bounded by shutdown_timeout), and whatever arrived meanwhile made durable too.
  // SIGHUP meanwhile calls reload().
  void run();

  // Reloads the TLS certificate and key from their files for new connections (a failure is
  // logged, and the previous ones stay in use); without TLS, does nothing. Never stops the
  // server.
  void reload();

  // The workers' counters, histograms, connections, rooms and error replies, and the live
  // rates of the last seconds (what /metrics and /api/stats show of the server itself).
  // Thread-safe.
  metrics::Snapshot snapshot() const;
  unsigned threads() const override { return options_.threads; }

  // http::ApiBackend; thread-safe. A publication goes to the worker its room's name hashes
  // to, so a room that only the API publishes to stays open on one worker.
  void publish(std::vector<chat::ServerPublication> publications, PublishDone done) const override;
  void disconnect(std::string user_id, std::string reason, RemoveDone done) const override;
  void unsubscribe(std::string user_id, std::string room, std::string reason,
                   RemoveDone done) const override;
  void nodes(NodesDone done) const override;

  // chat::ClusterControl::Listener (the cluster's thread).
  void on_command(const chat::ControlCommand& command) override;
  chat::NodeInfo node_info() const override;
  void rooms(RoomsDone done) const override;
  void poll(std::string room, std::uint64_t since, std::chrono::milliseconds timeout,
            chat::PollDone done) const override;

 private:
  // The one place a disconnect or an unsubscribe acts: on every worker's Hub, whether the
  // request came to this node or to another one; `done` (may be empty) gets how many
  // connections it closed or took out of the room.
  using CountDone = std::function<void(std::size_t)>;
  void apply(const chat::ControlCommand& command, CountDone done) const;
  // Applies `command` here and sends it to the other nodes (if any); answers `done` once both
  // are done.
  void remove(chat::ControlCommand command, RemoveDone done) const;
  // snapshot() without the live rates.
  metrics::Snapshot collect() const;
  // Queues the stats stream's event (http::Service::stats_event, made once) to the readers
  // on every worker that has some; nothing if none has.
  void send_stats_event() const;

  ServerOptions options_;
  chat::HubOptions hub_options_;
  chat::HistoryStore& store_;
  base::SystemClock clock_;
  std::chrono::steady_clock::time_point started_at_;
  metrics::Registry metrics_;
  // Readings of the counters once a second (run()'s control loop), for the live rates.
  metrics::RateWindow rates_;
  std::unique_ptr<TlsContext> tls_;
  const chat::Authenticator* const authenticator_;
  std::unique_ptr<ConnectionGate> gate_;
  // Declared before the workers: their Hubs hold its Ports, so it is destroyed after them.
  std::unique_ptr<chat::Exchange> exchange_;
  std::unique_ptr<chat::RateBudgets> budgets_;  // the node's, for every worker's Hub
  const http::Service& http_;
  std::vector<std::unique_ptr<Worker>> workers_;
  chat::ClusterControl* const control_;
};

}  // namespace roomcast::net
