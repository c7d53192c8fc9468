// Webhooks: the backend's events (chat::BackendEvents) delivered to --webhook-url as signed
// JSON POSTs, from a thread of their own.
//
// Threads: the workers' Hubs call the BackendEvents methods; each builds the event's body and
// pushes it on a bounded EventQueue (a short lock, no I/O), so an I/O worker never waits for
// the backend. The delivery thread (started by the constructor, joined by the destructor)
// owns an io_context, the lanes and the grace timers of user_offline. An event goes to the
// lane of its room (user_offline: of its user; a hash among options.concurrency lanes); each
// lane sends one event at a time, in the order queued, on its own kept-alive connection
// (hooks/http_client.h, HttpConnection), retrying a failed attempt after a growing delay
// (retry_delay) until max_attempts, then dropping it. So a room's events arrive in order and
// a retried event holds back its lane only.
// What is dropped (queue full, attempts spent, refused by the backend with a 4xx) is counted
// (stats(), /metrics: queue_full, attempts, refused) and logged.
//
// Once per cluster: an event is pushed only by the node where it happens (chat/backend_events.h);
// a retry carries the same `id`, so the backend de-duplicates what it may see twice (an
// answer lost after the backend acted on it).
//
// user_offline: per token user, the node's connections are counted; when the count falls to
// zero a timer of offline_grace starts, and the event is sent if no connection of the user
// opened on this node meanwhile. Anonymous users get none (their id does not survive a
// reload). In cluster mode (an OnlineUsers given) the count is the cluster's: every change
// of the node's count is written to it, the node whose update leaves the user with no
// connection anywhere starts the timer, and at its expiry the report is claimed from the
// cluster (sent only if nobody came back and no other node claimed it). When the cluster
// cannot be reached the node decides alone, as without one (docs/api.md, "Webhooks").
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "chat/backend_events.h"
#include "chat/online_users.h"
#include "hooks/delivery.h"
#include "hooks/http_client.h"
#include "hooks/webhook_options.h"
#include "metrics/metrics.h"

namespace roomcast::hooks {

class Webhooks final : public chat::BackendEvents {
 public:
  // Starts the delivery thread. Throws std::invalid_argument if options.url is not one
  // parse_http_url accepts, or is https:// and options.ca_file cannot be read (backend_of). `clock`
  // (event times) and `online` (the cluster's count of users' connections; nullptr: one node)
  // outlive the Webhooks.
  Webhooks(WebhookOptions options, const base::Clock& clock, chat::OnlineUsers* online = nullptr);
  // Stops the thread; events still queued are dropped and logged (not retried later).
  ~Webhooks() override;

  Webhooks(const Webhooks&) = delete;
  Webhooks& operator=(const Webhooks&) = delete;

  void user_joined(std::string_view room, const chat::MemberInfo& member) override;
  void user_left(std::string_view room, const chat::MemberInfo& member) override;
  void user_connected(const chat::MemberInfo& member) override;
  void user_disconnected(const chat::MemberInfo& member) override;
  void message_published(const chat::StoredMessage& message) override;

  // What was delivered, retried, dropped and is waiting. Thread-safe.
  metrics::WebhookState stats() const;

 private:
  struct User {
    std::size_t connections = 0;
    std::uint64_t generation = 0;  // bumped by every connect: a grace timer that sees it moved
  };

  // One of the deliveries side by side: its queue in queue_ has its index. Delivery thread,
  // but for `busy`.
  struct Lane {
    Lane(boost::asio::io_context& io, std::size_t i, const Backend& backend)
        : index(i), retry_timer(io), connection(io, backend) {}
    const std::size_t index;
    std::atomic<bool> busy{false};  // an event is being attempted (or waits for its retry)
    boost::asio::steady_timer retry_timer;
    HttpConnection connection;
    std::optional<Event> current;
    unsigned attempts = 0;
    HttpRequest request;  // current's, sent again by each attempt
  };

  // Any thread: builds the event (id, type, time, node, `fields`) and queues it on the lane
  // of `fields`' user_id.
  void enqueue(std::string_view type, boost::json::object fields);
  // Delivery thread.
  void next(Lane& lane);
  void attempt(Lane& lane);
  void on_answered(Lane& lane, const HttpAnswer& answer);
  void failed(Lane& lane, const std::string& why);
  void done(Lane& lane);
  // Delivery thread: waits offline_grace, then sends user_offline if the user is still gone:
  // by the cluster's claim for `cluster_generation` if there is one, else (or if the cluster
  // cannot be reached) by this node's count and `generation`.
  void offline_after_grace(std::string user_id, std::string username, std::uint64_t generation,
                           std::optional<std::uint64_t> cluster_generation);
  // Delivery thread: whether the user is still gone from this node since `generation` (and
  // forgets them if so).
  bool gone_here(const std::string& user_id, std::uint64_t generation);
  struct Inbox;
  // Any thread (the cluster's answers, which may come after the Webhooks is gone and so hold
  // the inbox, not `this`): runs `fn` on the delivery thread, unless the Webhooks is being
  // destroyed.
  static void post_from_cluster(const std::shared_ptr<Inbox>& inbox,
                                std::function<void(Webhooks&)> fn);
  void send_offline(const std::string& user_id, const std::string& username);

  const WebhookOptions options_;
  const Backend backend_;
  const base::Clock& clock_;
  chat::OnlineUsers* const online_;
  EventQueue queue_;

  // The cluster's answers reach the delivery thread through this: the destructor clears
  // `self` first, so an answer that comes later finds nobody and is dropped.
  struct Inbox {
    std::mutex mutex;
    Webhooks* self = nullptr;
  };
  const std::shared_ptr<Inbox> inbox_ = std::make_shared<Inbox>();

  std::mutex ids_mutex_;
  std::mt19937_64 ids_;

  std::mutex users_mutex_;
  std::unordered_map<std::string, User> users_;

  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> retries_{0};
  std::atomic<std::uint64_t> dropped_attempts_{0};
  std::atomic<std::uint64_t> dropped_refused_{0};

  boost::asio::io_context io_;
  // After io_: their timers and sockets go first. The vector itself never changes.
  std::vector<std::unique_ptr<Lane>> lanes_;

  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace roomcast::hooks
