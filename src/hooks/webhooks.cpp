#include "hooks/webhooks.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <functional>
#include <stdexcept>

namespace roomcast::hooks {

namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {

// A backend's answer is read only to see its status: a short body is all it needs to send.
constexpr std::uint64_t kMaxResponseBytes = 64 << 10;

boost::json::object user_fields(std::string_view room, const chat::MemberInfo& member) {
  boost::json::object fields;
  if (!room.empty()) fields["room"] = room;
  fields["user_id"] = member.user_id();
  fields["username"] = member.username();
  return fields;
}

}  // namespace

Webhooks::Webhooks(WebhookOptions options, const base::Clock& clock, chat::OnlineUsers* online)
    : options_(std::move(options)),
      backend_(backend_of("--webhook-url", options_.url, options_.ca_file)),
      clock_(clock),
      online_(online),
      queue_(options_.queue_size, std::max<std::size_t>(options_.concurrency, 1)),
      ids_(std::random_device{}()) {
  inbox_->self = this;
  for (std::size_t i = 0; i < std::max<std::size_t>(options_.concurrency, 1); ++i) {
    lanes_.push_back(std::make_unique<Lane>(io_, i, backend_));
  }
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
}

Webhooks::~Webhooks() {
  {
    const std::lock_guard lock(inbox_->mutex);
    inbox_->self = nullptr;
  }
  io_.stop();
  if (thread_.joinable()) thread_.join();
  std::size_t left = queue_.size();
  for (const auto& lane : lanes_) left += lane->current ? 1 : 0;
  if (left > 0) spdlog::warn("webhooks: {} events not delivered at shutdown (dropped)", left);
}

void Webhooks::user_joined(std::string_view room, const chat::MemberInfo& member) {
  enqueue("user_joined", user_fields(room, member));
}

void Webhooks::user_left(std::string_view room, const chat::MemberInfo& member) {
  enqueue("user_left", user_fields(room, member));
}

void Webhooks::user_connected(const chat::MemberInfo& member) {
  if (!member.authenticated()) return;
  const std::lock_guard lock(users_mutex_);
  User& user = users_[std::string(member.user_id())];
  ++user.connections;
  ++user.generation;
  // Under the lock: the cluster gets a user's counts in the order they were counted.
  if (online_ != nullptr) online_->set_connections(member.user_id(), user.connections, true, {});
}

void Webhooks::user_disconnected(const chat::MemberInfo& member) {
  if (!member.authenticated()) return;
  std::string user_id(member.user_id());
  std::uint64_t generation = 0;
  {
    const std::lock_guard lock(users_mutex_);
    const auto it = users_.find(user_id);
    if (it == users_.end() || it->second.connections == 0) return;
    const std::size_t left = --it->second.connections;
    generation = it->second.generation;
    if (online_ != nullptr) {
      // The cluster decides: the update that leaves the user with no connection on any node
      // starts the grace timer (whichever node makes it).
      online_->set_connections(
          user_id, left, false,
          [inbox = inbox_, user_id, username = member.username(), generation,
           left](std::optional<chat::OnlineUsers::Count> count) {
            if (count && count->connections > 0) {
              // Online elsewhere: a node-local record with no connection is not kept.
              if (left == 0) {
                post_from_cluster(inbox, [user_id, generation](Webhooks& self) {
                  self.gone_here(user_id, generation);
                });
              }
              return;
            }
            // Unreachable: this node decides alone, as without a cluster.
            if (!count && left > 0) return;
            std::optional<std::uint64_t> cluster_generation;
            if (count) cluster_generation = count->generation;
            post_from_cluster(
                inbox, [user_id, username, generation, cluster_generation](Webhooks& self) {
                  self.offline_after_grace(user_id, username, generation, cluster_generation);
                });
          });
      return;
    }
    if (left > 0) return;
  }
  asio::post(io_, [this, user_id = std::move(user_id), username = member.username(),
                   generation]() mutable {
    offline_after_grace(std::move(user_id), std::move(username), generation, std::nullopt);
  });
}

void Webhooks::message_published(const chat::StoredMessage& message) {
  boost::json::object fields;
  fields["room"] = message.room;
  fields["seq"] = message.seq;
  fields["user_id"] = message.user_id;
  fields["username"] = message.username;
  fields["timestamp"] = message.timestamp_ms;
  if (message.event_type.empty()) {
    fields["message"] = message.message;
  } else {
    // A durable app event: its fields as the members got them (stored as JSON text).
    fields["event_type"] = message.event_type;
    fields["event"] = message.message;
  }
  enqueue("message_published", std::move(fields));
}

metrics::WebhookState Webhooks::stats() const {
  std::size_t in_flight = 0;
  for (const auto& lane : lanes_) in_flight += lane->busy.load(std::memory_order_relaxed) ? 1 : 0;
  return {queue_.size() + in_flight,
          delivered_.load(std::memory_order_relaxed),
          retries_.load(std::memory_order_relaxed),
          queue_.dropped(),
          dropped_attempts_.load(std::memory_order_relaxed),
          dropped_refused_.load(std::memory_order_relaxed)};
}

void Webhooks::enqueue(std::string_view type, boost::json::object fields) {
  char id[33];
  {
    const std::lock_guard lock(ids_mutex_);
    std::snprintf(id, sizeof id, "%016llx%016llx", static_cast<unsigned long long>(ids_()),
                  static_cast<unsigned long long>(ids_()));
  }
  boost::json::object body;
  body["id"] = id;
  body["type"] = type;
  body["time"] = clock_.unix_ms();
  body["node"] = options_.node;
  for (auto& [key, value] : fields) body[key] = std::move(value);
  // A room's events share a lane, so they arrive in order (joins, messages by seq, leaves);
  // user_offline, of no room, takes its user's.
  const auto* room = body.if_contains("room");
  const auto* user = body.if_contains("user_id");
  const auto* key = room != nullptr ? room : user;
  const std::string_view lane_key =
      key != nullptr && key->is_string() ? std::string_view(key->get_string()) : std::string_view();
  Lane& lane = *lanes_[std::hash<std::string_view>{}(lane_key) % lanes_.size()];
  Event event{id, std::string(type), boost::json::serialize(body)};
  if (!queue_.push(std::move(event), lane.index)) {
    // One line per power of two dropped: a backend down under load must not flood the log.
    const std::uint64_t dropped = queue_.dropped();
    if ((dropped & (dropped - 1)) == 0) {
      spdlog::warn("webhooks: queue full ({} events), {} event {} dropped ({} dropped so far)",
                   options_.queue_size, type, id, dropped);
    }
    return;
  }
  if (!lane.busy.exchange(true)) asio::post(io_, [this, &lane] { next(lane); });
}

void Webhooks::next(Lane& lane) {
  for (;;) {
    lane.current = queue_.pop(lane.index);
    if (lane.current) break;
    lane.busy.store(false);
    // An event pushed between the pop and the store saw busy set and posted nothing.
    if (queue_.waiting(lane.index) == 0 || lane.busy.exchange(true)) return;
  }
  lane.attempts = 0;
  lane.request = make_json_post(backend_.target, lane.current->body, options_.secret);
  // The lane's connection stays open for its next event (the backend may still close it).
  lane.request.keep_alive(true);
  lane.request.set("X-Roomcast-Event", lane.current->type);
  lane.request.set("X-Roomcast-Event-Id", lane.current->id);
  attempt(lane);
}

void Webhooks::attempt(Lane& lane) {
  ++lane.attempts;
  lane.request.set("X-Roomcast-Attempt", std::to_string(lane.attempts));
  lane.connection.send(lane.request, options_.timeout, kMaxResponseBytes,
                       [this, &lane](HttpAnswer answer) { on_answered(lane, answer); });
}

void Webhooks::on_answered(Lane& lane, const HttpAnswer& answer) {
  if (!answer.error.empty()) return failed(lane, answer.error);
  const unsigned status = answer.status;
  if (status >= 200 && status < 300) {
    delivered_.fetch_add(1, std::memory_order_relaxed);
    return done(lane);
  }
  // A 4xx says this request is wrong (a stale secret, a URL that moved): the same bytes
  // again would be refused again. 408 and 429 ask to come back later.
  if (status >= 400 && status < 500 && status != 408 && status != 429) {
    dropped_refused_.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("webhooks: {} event {} refused by the backend with HTTP {}: dropped",
                 lane.current->type, lane.current->id, status);
    return done(lane);
  }
  failed(lane, "answered HTTP " + std::to_string(status));
}

void Webhooks::failed(Lane& lane, const std::string& why) {
  if (lane.attempts >= options_.max_attempts) {
    dropped_attempts_.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("webhooks: {} event {} dropped after {} attempts (last: {})", lane.current->type,
                 lane.current->id, lane.attempts, why);
    return done(lane);
  }
  const auto delay = retry_delay(lane.attempts, options_.retry_min, options_.retry_max);
  spdlog::info("webhooks: {} event {} attempt {} failed ({}); retrying in {} ms",
               lane.current->type, lane.current->id, lane.attempts, why, delay.count());
  retries_.fetch_add(1, std::memory_order_relaxed);
  lane.retry_timer.expires_after(delay);
  lane.retry_timer.async_wait([this, &lane](const beast::error_code& ec) {
    if (!ec) attempt(lane);
  });
}

void Webhooks::done(Lane& lane) {
  lane.current.reset();
  next(lane);
}

void Webhooks::offline_after_grace(std::string user_id, std::string username,
                                   std::uint64_t generation,
                                   std::optional<std::uint64_t> cluster_generation) {
  auto timer = std::make_shared<asio::steady_timer>(io_, options_.offline_grace);
  timer->async_wait([this, timer, user_id = std::move(user_id), username = std::move(username),
                     generation, cluster_generation](const beast::error_code& ec) {
    if (ec) return;
    if (!cluster_generation) {
      if (gone_here(user_id, generation)) send_offline(user_id, username);
      return;
    }
    online_->claim_offline(
        user_id, *cluster_generation,
        [inbox = inbox_, user_id, username, generation](std::optional<bool> claimed) {
          post_from_cluster(inbox, [user_id, username, generation, claimed](Webhooks& self) {
            const bool gone = self.gone_here(user_id, generation);
            // Unreachable: as without a cluster (a repeat is likelier than with the claim,
            // the documented edge).
            if (claimed ? *claimed : gone) self.send_offline(user_id, username);
          });
        });
  });
}

bool Webhooks::gone_here(const std::string& user_id, std::uint64_t generation) {
  const std::lock_guard lock(users_mutex_);
  const auto it = users_.find(user_id);
  // Back meanwhile (a reload), or back and gone again (a later timer decides).
  if (it == users_.end() || it->second.connections > 0 || it->second.generation != generation) {
    return false;
  }
  users_.erase(it);
  return true;
}

void Webhooks::post_from_cluster(const std::shared_ptr<Inbox>& inbox,
                                 std::function<void(Webhooks&)> fn) {
  const std::lock_guard lock(inbox->mutex);
  Webhooks* self = inbox->self;
  if (self == nullptr) return;
  asio::post(self->io_, [self, fn = std::move(fn)] { fn(*self); });
}

void Webhooks::send_offline(const std::string& user_id, const std::string& username) {
  boost::json::object fields;
  fields["user_id"] = user_id;
  fields["username"] = username;
  enqueue("user_offline", std::move(fields));
}

}  // namespace roomcast::hooks
