// The Hub's entry points for the server API (docs/api.md): a backend publishing, removing
// users and asking who is where. Kept apart from hub.cpp, the chat's own rules; these only
// reuse them.
#include <algorithm>

#include "chat/hub.h"

namespace roomcast::chat {

namespace {

// What a client's `id` is to its sender (Hub::sender_key), an idempotency key is to the
// backend: client keys start with "user:" or "name:", so no client's resend can match it.
constexpr std::string_view kServerSenderKey = "api:";

}  // namespace

void Hub::publish_from_server(ConnectionId ticket, ServerPublication publication,
                              ServerPublishDone done) {
  if (server_publishes_.contains(ticket)) {  // a transport bug: a ticket must be unique
    if (done) {
      done({0, std::string(error_code::kUnavailable), "Publication ticket in use; try again"});
    }
    return;
  }
  std::string event_type;
  if (publication.event) {
    // Judged by the rules a member's event is: this Hub's app event types.
    auto decoded = decode_client_message(publication.message, options_.limits, app_events_);
    if (const auto* error = std::get_if<ProtocolError>(&decoded)) {
      if (done) done({0, std::string(error->code), error->message});
      return;
    }
    auto* event = std::get_if<AppEvent>(&std::get<ClientMessage>(decoded));
    const AppEventType* treatment =
        event != nullptr ? options_.app_events.find(event->type) : nullptr;
    if (treatment == nullptr) {
      if (done) done({0, std::string(error_code::kUnknownType), "Not an app event type"});
      return;
    }
    if (!treatment->durable) {
      if (!publication.idempotency_key.empty()) {
        if (done) {
          done({0, std::string(error_code::kInvalidField),
                "Type '" + event->type +
                    "' is ephemeral: it is not stored, so it takes no idempotency_key"});
        }
        return;
      }
      relay_server_event(ticket, publication, *event);
      if (done) done({});
      return;
    }
    publication.message = std::move(event->fields);
    event_type = std::move(event->type);
  }
  const std::string room = publication.room;
  server_publishes_.emplace(
      ticket, ServerPublish{std::move(publication), std::move(done), std::move(event_type)});
  if (const auto it = rooms_.find(room); it != rooms_.end()) {
    publish_server(it->second, ticket);
    return;
  }
  // As a join does: the room is loaded first (its numbering, and for a cluster, its channel),
  // then the publication goes out from on_loaded.
  auto [waiting, first] = loading_.try_emplace(room);
  waiting->second.push_back(ticket);
  // Last: a synchronous store reports the room loaded from inside load().
  if (first) store_.load(room);
}

void Hub::relay_server_event(ConnectionId ticket, const ServerPublication& publication,
                             const AppEvent& event) {
  auto payload = std::make_shared<const std::string>(
      encode_app_event(event.type, publication.room, kServerUserId, publication.username,
                       event.fields, clock_.unix_ms(), std::nullopt));
  if (const auto it = rooms_.find(publication.room); it != rooms_.end()) {
    send_event_to_room(it->second, *payload, kNoConnection);
  }
  if (presence_ != nullptr) presence_->relay(publication.room, ticket, payload, /*binary=*/false);
}

void Hub::publish_server(Room& room, ConnectionId ticket) {
  const auto it = server_publishes_.find(ticket);
  if (it == server_publishes_.end()) return;
  const ServerPublication& publication = it->second.publication;
  if (room.in_flight >= kMaxInFlight) {
    answer_server_publish(ticket, {0, std::string(error_code::kUnavailable),
                                   "History storage is not keeping up; nothing was published"});
    return;
  }
  base::SteadyTime accepted_at{};  // the delivery-latency metric times people's messages
  std::string sender_id(kServerUserId);
  std::string sender_key;
  if (!publication.user_id.empty()) {
    // A user's message over HTTP: what their WebSocket's join and chat_message would check.
    const MemberRef sender =
        MemberInfo::make(publication.user_id, publication.username, /*authenticated=*/true);
    if (looks_like_a_member(room, *sender)) {
      answer_server_publish(ticket, {0, std::string(error_code::kInvalidField),
                                     "Your username looks like the name of someone else in "
                                     "room '" +
                                         room.name + "'"});
      return;
    }
    // An app event type with a budget of its own spends it, as over the user's WebSocket.
    RateBudget* own = budgets_.event(it->second.event_type);
    RateBudget& rates = own != nullptr ? *own : budgets_.messages();
    RateBudget::Holder budget;
    rates.attach(budget, user_key(publication.user_id), {});
    accepted_at = clock_.now();
    const bool allowed = rates.admit(budget, accepted_at) == RateLimiter::Verdict::kAllowed;
    const auto wait =
        allowed ? std::chrono::milliseconds(0) : rates.retry_after(budget, accepted_at);
    rates.detach(budget);
    if (!allowed) {
      answer_server_publish(
          ticket, {0, std::string(error_code::kRateLimited), std::string(kRateLimitedText), wait});
      return;
    }
    sender_id = publication.user_id;
    sender_key = user_key(publication.user_id);
  } else if (!publication.idempotency_key.empty()) {
    sender_key = kServerSenderKey;
  }
  // A user's message is asked about as their WebSocket's would be; the backend's own is not
  // (the backend is who would answer).
  const bool ask = hook_ != nullptr && !publication.user_id.empty();
  if (ask && !may_wait_for_verdict(ticket, room.name, publication.idempotency_key)) return;
  // A room opened for this publication has had no member yet, so no snapshot to deliver to.
  if (!room.snapshot) rebuild_snapshot(room);
  ++room.in_flight;
  room.in_flight_recipients += room.members.size();
  awaiting_store_.fetch_add(room.members.size(), std::memory_order_relaxed);
  if (publication.idempotency_key.empty()) sender_key.clear();
  submit(room,
         {room.name, clock_.unix_ms(), std::move(sender_id), publication.username,
          publication.message, std::move(sender_key), publication.idempotency_key, ticket,
          accepted_at, it->second.event_type},
         ask);
}

bool Hub::answer_server_publish(ConnectionId ticket, ServerPublishResult result) {
  auto node = server_publishes_.extract(ticket);
  if (node.empty()) return false;
  if (node.mapped().done) node.mapped().done(std::move(result));
  return true;
}

std::size_t Hub::disconnect_user(std::string_view user_id, std::uint16_t code,
                                 const std::string& reason) {
  std::size_t closed = 0;
  for (auto& [who, session] : sessions_) {
    if (session.expired || session.member->user_id() != user_id) continue;
    // As for an expired token: nothing it says counts any more, and the others see the
    // user leave now, not once the closing handshake is over.
    session.expired = true;
    unpark(session);
    set_expiry(who, session, 0);
    const std::vector<std::string> rooms = session.rooms;
    for (const auto& room : rooms) leave(who, session, room);
    sink_.close(who, code, reason);
    if (noting()) events_->note(who, "disconnected by the server API");
    ++closed;
  }
  for (auto& [who, watcher] : watchers_) {
    if (watcher.closing || watcher.user_id.empty() || watcher.user_id != user_id) continue;
    watcher.closing = true;
    if (watcher.expires_at_ms != 0) expiries_.erase({watcher.expires_at_ms, who});
    watcher.expires_at_ms = 0;
    sink_.close(who, code, reason);
    ++closed;
  }
  return closed;
}

std::size_t Hub::unsubscribe_user(std::string_view user_id, std::string_view room,
                                  std::string_view reason) {
  std::size_t removed = 0;
  for (auto& [who, session] : sessions_) {
    if (session.expired || session.member->user_id() != user_id || !in_room(session, room)) {
      continue;
    }
    leave(who, session, std::string(room));
    count_error(error_code::kRemovedFromRoom);
    sink_.send(who, encode_message_error(error_code::kRemovedFromRoom, reason, room, ""));
    if (noting()) events_->note(who, "removed from room '" + std::string(room) + "' by the API");
    ++removed;
  }
  return removed;
}

std::vector<RoomView> Hub::room_views() const {
  std::vector<RoomView> views;
  views.reserve(rooms_.size());
  for (const auto& [name, room] : rooms_) {
    RoomView& view = views.emplace_back();
    view.name = name;
    view.last_seq = room.last_seq;
    view.local.reserve(room.members.size());
    for (const Member& member : room.members) view.local.push_back(member.session->member);
    view.remote.reserve(room.remote_members.size());
    for (const Remote& member : room.remote_members) view.remote.push_back(member.member);
  }
  return views;
}

void Hub::watch(ConnectionId who, std::string room, std::optional<std::uint64_t> since,
                StreamReader reader) {
  if (watchers_.contains(who) || sessions_.contains(who)) return;  // one room per stream
  Watcher& watcher =
      watchers_.emplace(who, Watcher{room, since, std::move(reader.user_id)}).first->second;
  if (reader.expires_at_unix_s != 0) {
    // A stream reads as long as its token is good, like a WebSocket (no refresh: the reader
    // reconnects with a fresh token and its Last-Event-ID).
    watcher.expires_at_ms = token_deadline_ms(reader.expires_at_unix_s);
    expiries_.emplace(watcher.expires_at_ms, who);
  }
  if (const auto it = rooms_.find(room); it != rooms_.end()) {
    attach_watcher(it->second, who);
    return;
  }
  auto [waiting, first] = loading_.try_emplace(room);
  waiting->second.push_back(who);
  // Last: a synchronous store reports the room loaded from inside load().
  if (first) store_.load(room);
}

void Hub::attach_watcher(Room& room, ConnectionId who) {
  const auto it = watchers_.find(who);
  if (it == watchers_.end()) return;
  room.watchers.push_back(who);
  rebuild_snapshot(room);
  if (!it->second.since) return;
  // Exactly what followed `since` (seqs increase along the window); what comes next is live,
  // on this thread, so nothing can come between.
  for (const HistoryEntry& entry : room.history) {
    if (entry.seq > *it->second.since) sink_.send(who, entry.payload);
  }
}

bool Hub::unwatch(ConnectionId who) {
  auto node = watchers_.extract(who);
  if (node.empty()) return false;
  if (node.mapped().expires_at_ms != 0) expiries_.erase({node.mapped().expires_at_ms, who});
  const auto it = rooms_.find(node.mapped().room);
  if (it == rooms_.end()) return true;  // still loading: on_loaded finds no watcher
  Room& room = it->second;
  if (std::erase(room.watchers, who) > 0) rebuild_snapshot(room);
  if (evictable(room)) forget(it);
  return true;
}

void Hub::poll(ConnectionId ticket, std::string room, std::uint64_t since,
               base::SteadyTime deadline, PollDone done) {
  if (pollers_.contains(ticket)) {  // a transport bug: a ticket must be unique
    done({0, {}, std::string(error_code::kUnavailable), "Poll ticket in use; try again"});
    return;
  }
  pollers_.emplace(ticket, Poller{room, since, deadline, std::move(done)});
  if (const auto it = rooms_.find(room); it != rooms_.end()) {
    attach_poller(it->second, ticket);
    return;
  }
  auto [waiting, first] = loading_.try_emplace(room);
  waiting->second.push_back(ticket);
  // Last: a synchronous store reports the room loaded from inside load().
  if (first) store_.load(room);
}

void Hub::attach_poller(Room& room, ConnectionId ticket) {
  const auto it = pollers_.find(ticket);
  if (it == pollers_.end()) return;
  // Something after `since` already (or a `since` this room never reached, after a lost
  // history: the client is told the last seq at once, as a join's `recovered: false` would).
  if (room.last_seq != it->second.since) {
    answer_poller(ticket, &room);
    return;
  }
  room.pollers.push_back(ticket);
}

void Hub::answer_poller(ConnectionId ticket, const Room* room) {
  auto node = pollers_.extract(ticket);
  if (node.empty()) return;
  Poller& poller = node.mapped();
  PollResult result;
  if (room != nullptr) {
    result.last_seq = room->last_seq;
    for (const HistoryEntry& entry : room->history) {
      if (entry.seq > poller.since) result.messages.push_back(entry.payload);
    }
  }
  poller.done(std::move(result));
}

void Hub::expire_polls(base::SteadyTime now) {
  std::vector<ConnectionId> due;
  for (const auto& [ticket, poller] : pollers_) {
    if (poller.deadline <= now) due.push_back(ticket);
  }
  for (const ConnectionId ticket : due) {
    const std::string room_name = pollers_.at(ticket).room;
    const auto room = rooms_.find(room_name);
    if (room == rooms_.end()) {
      // Still loading: answered empty; the load finds no poll waiting.
      answer_poller(ticket, nullptr);
      continue;
    }
    std::erase(room->second.pollers, ticket);
    answer_poller(ticket, &room->second);
  }
}

}  // namespace roomcast::chat
