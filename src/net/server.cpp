#include "net/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "net/tls.h"
#include "net/worker.h"
#include "ws/close_code.h"
#include "ws/handshake.h"

namespace roomcast::net {

namespace asio = boost::asio;

namespace {

// "0 threads" means one per hardware thread.
ServerOptions with_resolved_threads(ServerOptions options) {
  if (options.threads == 0) {
    options.threads =
        std::clamp(std::thread::hardware_concurrency(), 1u, ServerOptions::kMaxThreads);
  }
  return options;
}

}  // namespace

Server::Server(ServerOptions options, chat::HubOptions hub_options, const http::Service& http,
               chat::HistoryStore& store, const chat::Authenticator* authenticator,
               chat::Presence* presence, chat::SharedBudgets* budgets,
               chat::BackendEvents* backend_events, chat::ClusterControl* control,
               chat::PublishHook* publish_hook)
    : options_(with_resolved_threads(std::move(options))),
      hub_options_(std::move(hub_options)),
      store_(store),
      started_at_(std::chrono::steady_clock::now()),
      metrics_(options_.threads),
      rates_(started_at_),
      tls_(options_.tls_cert_file.empty()
               ? nullptr
               : std::make_unique<TlsContext>(options_.tls_cert_file, options_.tls_key_file)),
      authenticator_(authenticator),
      gate_(std::make_unique<ConnectionGate>(options_.max_connections,
                                             options_.max_connections_per_ip)),
      exchange_(std::make_unique<chat::Exchange>(
          chat::Exchange::Options{options_.threads, &Worker::worker_of, hub_options_.history_size},
          store_, presence)),
      budgets_(
          std::make_unique<chat::RateBudgets>(chat::rate_policies(hub_options_), clock_, budgets)),
      http_(http),
      control_(control) {
  // The first SHA-1 (of the first handshake's accept key) makes OpenSSL load its provider,
  // about 2 MB that stay for the process's life: pay it at start, not in the first client's
  // handshake (and not in what the first connections appear to cost).
  ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==");
  auto pending_deliveries = [this] {
    std::size_t pending = exchange_->pending_deliveries();
    for (const auto& worker : workers_) {
      pending += worker->hub_for_stats().deliveries_awaiting_store();
    }
    return pending;
  };
  for (unsigned i = 0; i < options_.threads; ++i) {
    workers_.push_back(std::make_unique<Worker>(
        i,
        WorkerContext{options_, hub_options_, *budgets_, http_, clock_, *gate_, authenticator_,
                      tls_.get(), pending_deliveries, backend_events, publish_hook},
        metrics_.shard(i), exchange_->port(i)));
  }
  // Last: commands may come from now on, and they are posted to the workers.
  if (control_ != nullptr) control_->set_control_listener(this);
}

Server::~Server() {
  // First: the cluster calls no listener after this returns.
  if (control_ != nullptr) control_->set_control_listener(nullptr);
}

std::uint16_t Server::listen() {
  // A name may stand for several addresses (localhost: 127.0.0.1 and ::1): a client may use
  // any of them, so the server listens on each. A literal address resolves to itself.
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  boost::system::error_code ec;
  const auto results = resolver.resolve(options_.host, "", asio::ip::resolver_base::passive, ec);
  if (ec || results.empty()) {
    throw std::runtime_error("cannot resolve --host '" + options_.host +
                             "': " + (ec ? ec.message() : "no address"));
  }
  std::vector<asio::ip::address> addresses;
  for (const auto& entry : results) {
    const auto address = entry.endpoint().address();
    if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
      addresses.push_back(address);
    }
  }
  std::uint16_t port = options_.port;
  std::size_t bound = 0;
  for (const auto& address : addresses) {
    // With port 0 the first worker picks the port; the other workers and addresses join it.
    asio::ip::tcp::endpoint endpoint(address, port);
    try {
      for (auto& worker : workers_) endpoint.port(worker->listen(endpoint));
    } catch (const boost::system::system_error& e) {
      // One address of several may be unusable (::1 where IPv6 is off); all of them must not.
      if (addresses.size() == 1 || (bound == 0 && &address == &addresses.back())) throw;
      spdlog::warn("cannot listen on {} (one of the addresses of '{}'): {}", address.to_string(),
                   options_.host, e.code().message());
      continue;
    }
    port = endpoint.port();
    ++bound;
    if (addresses.size() > 1) spdlog::info("listening on {} port {}", address.to_string(), port);
  }
  return port;
}

void Server::run() {
  // The control loop: signals only. Each worker runs its own Hub, ticks included. Signals
  // are caught before any worker runs.
  asio::io_context control;
  asio::signal_set signals(control, SIGINT, SIGTERM);
  asio::signal_set hangup(control, SIGHUP);
  for (auto& worker : workers_) worker->start();
  // SIGHUP never stops the server (its default would kill it, undrained): it reloads what
  // can be reloaded without a restart, the TLS certificate after a renewal.
  std::function<void()> await_hangup = [&] {
    hangup.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      reload();
      await_hangup();
    });
  };
  await_hangup();
  // At info, connections and rooms as counts, at most once a second and only when they
  // changed: what an operator watches, without a line per connection (those are debug).
  asio::steady_timer lifecycle(control);
  metrics::Snapshot last;
  std::function<void()> report_lifecycle = [&] {
    lifecycle.expires_after(std::chrono::seconds(1));
    lifecycle.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      if (spdlog::should_log(spdlog::level::info)) {
        const metrics::Snapshot now = snapshot();
        const auto opened = now.get(metrics::Counter::kWebSocketsOpened) -
                            last.get(metrics::Counter::kWebSocketsOpened);
        const auto closed = now.get(metrics::Counter::kWebSocketsClosed) -
                            last.get(metrics::Counter::kWebSocketsClosed);
        if (opened != 0 || closed != 0 || now.rooms != last.rooms) {
          spdlog::info("connections: {} open ({} opened, {} closed in the last second); rooms: {}",
                       now.connections_active, opened, closed, now.rooms);
        }
        last = now;
      }
      report_lifecycle();
    });
  };
  report_lifecycle();
  // The live rates' readings: O(1) a second, whatever the traffic. The stats stream's event
  // is made here too, once, and the same bytes go to every reader (the workers queue them).
  asio::steady_timer rate_timer(control);
  std::function<void()> take_readings = [&] {
    rate_timer.expires_after(std::chrono::seconds(1));
    rate_timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      const auto now = std::chrono::steady_clock::now();
      rates_.add(metrics::RateWindow::reading_of(collect(), now));
      send_stats_event();
      take_readings();
    });
  };
  take_readings();
  signals.async_wait([&](boost::system::error_code ec, int signal_number) {
    if (ec) return;
    spdlog::info("received signal {}: closing connections (1001) and shutting down", signal_number);
    hangup.cancel();
    lifecycle.cancel();
    rate_timer.cancel();
    control.stop();
  });
  control.run();

  // While the workers still run, so the acks reach their clients (the store's reports reach
  // the workers' inboxes before the drain is asked of them).
  store_.flush();
  for (auto& worker : workers_) worker->stop_after_drain();
  for (auto& worker : workers_) worker->join();
  store_.flush();  // messages that arrived during the drain
  spdlog::info("shutdown complete");
}

void Server::send_stats_event() const {
  base::SharedFrame event;
  for (const auto& worker : workers_) {
    if (worker->stats_readers() == 0) continue;
    if (!event) event = base::make_shared_frame(http_.stats_event());
    asio::post(worker->io(), [w = worker.get(), event] { w->send_stats(event); });
  }
}

void Server::reload() {
  if (!tls_) {
    spdlog::info("SIGHUP: nothing to reload (no TLS certificate); ignored");
    return;
  }
  try {
    tls_->reload();
    spdlog::info("SIGHUP: reloaded the TLS certificate {} and its key; new connections use them",
                 tls_->cert_file().string());
  } catch (const std::runtime_error& e) {
    spdlog::error("SIGHUP: {}; new connections keep the previous certificate", e.what());
  }
}

namespace {

// Answers collected from several workers: the last to answer calls `done`.
template <typename Result, typename Done>
struct Gather {
  Gather(std::size_t parts, Done d) : remaining(parts), done(std::move(d)) {}
  // Adds one worker's part (under the lock); the last part calls done(result) outside it.
  template <typename Add>
  void add(Add&& add_part) {
    bool last = false;
    {
      std::lock_guard lock(mutex);
      add_part(result);
      last = --remaining == 0;
    }
    if (last) done(std::move(result));
  }
  std::mutex mutex;
  Result result;
  std::size_t remaining;
  Done done;
};

}  // namespace

void Server::publish(std::vector<chat::ServerPublication> publications, PublishDone done) const {
  using Results = std::vector<chat::ServerPublishResult>;
  auto gather =
      std::make_shared<Gather<Results, PublishDone>>(publications.size(), std::move(done));
  gather->result.resize(publications.size());
  for (std::size_t i = 0; i < publications.size(); ++i) {
    Worker& worker = *workers_[std::hash<std::string>{}(publications[i].room) % workers_.size()];
    asio::post(worker.io(),
               [&worker, gather, i, publication = std::move(publications[i])]() mutable {
                 worker.hub().publish_from_server(
                     worker.next_ticket(), std::move(publication),
                     [gather, i](chat::ServerPublishResult answer) {
                       gather->add([&](Results& results) { results[i] = std::move(answer); });
                     });
               });
  }
}

void Server::poll(std::string room, std::uint64_t since, std::chrono::milliseconds timeout,
                  chat::PollDone done) const {
  Worker& worker = *workers_[std::hash<std::string>{}(room) % workers_.size()];
  const auto deadline = clock_.now() + timeout;
  asio::post(worker.io(), [&worker, room = std::move(room), since, deadline,
                           done = std::move(done)]() mutable {
    worker.hub().poll(worker.next_ticket(), std::move(room), since, deadline, std::move(done));
  });
}

void Server::disconnect(std::string user_id, std::string reason, RemoveDone done) const {
  remove({chat::ControlCommand::Kind::kDisconnect, std::move(user_id), {}, std::move(reason)},
         std::move(done));
}

void Server::unsubscribe(std::string user_id, std::string room, std::string reason,
                         RemoveDone done) const {
  remove({chat::ControlCommand::Kind::kUnsubscribe, std::move(user_id), std::move(room),
          std::move(reason)},
         std::move(done));
}

void Server::remove(chat::ControlCommand command, RemoveDone done) const {
  // Two parts in a cluster: this node's workers, and the cluster's answer to the publish.
  auto gather =
      std::make_shared<Gather<RemoveResult, RemoveDone>>(control_ ? 2 : 1, std::move(done));
  gather->result.clustered = control_ != nullptr;
  if (control_ != nullptr) {
    control_->send_command(command, [gather](std::optional<std::size_t> nodes) {
      gather->add([&](RemoveResult& result) { result.nodes = nodes; });
    });
  }
  apply(command, [gather](std::size_t connections) {
    gather->add([&](RemoveResult& result) { result.connections = connections; });
  });
}

void Server::apply(const chat::ControlCommand& command, CountDone done) const {
  if (!done) done = [](std::size_t) {};
  auto gather = std::make_shared<Gather<std::size_t, CountDone>>(workers_.size(), std::move(done));
  gather->result = 0;
  for (const auto& worker : workers_) {
    asio::post(worker->io(), [w = worker.get(), gather, command] {
      const std::size_t count =
          command.kind == chat::ControlCommand::Kind::kDisconnect
              ? w->hub().disconnect_user(command.user_id,
                                         static_cast<std::uint16_t>(ws::CloseCode::kDisconnected),
                                         command.reason)
              : w->hub().unsubscribe_user(command.user_id, command.room, command.reason);
      gather->add([&](std::size_t& total) { total += count; });
    });
  }
}

void Server::on_command(const chat::ControlCommand& command) {
  apply(command, {});
}

chat::NodeInfo Server::node_info() const {
  const metrics::Snapshot s = collect();
  chat::NodeInfo info;
  info.connections = s.connections_active;
  info.rooms = s.rooms;
  info.threads = options_.threads;
  return info;
}

void Server::nodes(NodesDone done) const {
  if (control_ == nullptr) return done({});
  control_->list_nodes([done = std::move(done)](std::optional<std::vector<chat::NodeInfo>> nodes) {
    done({true, std::move(nodes)});
  });
}

void Server::rooms(RoomsDone done) const {
  using Views = std::vector<chat::RoomView>;
  auto gather = std::make_shared<Gather<Views, RoomsDone>>(workers_.size(), std::move(done));
  for (const auto& worker : workers_) {
    asio::post(worker->io(), [w = worker.get(), gather] {
      Views views = w->hub().room_views();
      gather->add([&](Views& all) {
        all.insert(all.end(), std::make_move_iterator(views.begin()),
                   std::make_move_iterator(views.end()));
      });
    });
  }
}

metrics::Snapshot Server::snapshot() const {
  metrics::Snapshot s = collect();
  s.live = rates_.rates(metrics::RateWindow::reading_of(s, std::chrono::steady_clock::now()));
  return s;
}

metrics::Snapshot Server::collect() const {
  metrics::Snapshot s;
  metrics_.collect(s);
  std::uint64_t published = 0;
  for (const auto& worker : workers_) {
    published += worker->messages_published();
    const chat::HubStats hub = worker->hub_for_stats().stats();
    s.users += hub.connections;
    for (const auto& [code, count] : hub.errors) s.chat_errors[code] += count;
  }
  s.counters[static_cast<std::size_t>(metrics::Counter::kMessagesPublished)] = published;
  s.rooms = exchange_->rooms();
  s.uptime_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count();
  return s;
}

}  // namespace roomcast::net
