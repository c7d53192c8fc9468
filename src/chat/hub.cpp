#include "chat/hub.h"

#include <algorithm>
#include <cstdio>
#include <random>

namespace roomcast::chat {

Hub::Hub(Sink& sink, const base::Clock& clock, HubOptions options)
    : sink_(sink), clock_(clock), options_(options), random_(std::random_device{}()) {}

void Hub::connect(ConnectionId who) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = sessions_.try_emplace(who);
  if (!inserted) return;
  it->second.user_id = new_user_id();
  sink_.send(who, encode_connection_established(view(it->second.user_id)));
}

void Hub::receive(ConnectionId who, std::string_view text) {
  // Parse outside the lock: it is the costly part and touches no shared state.
  auto decoded = decode_client_message(text, options_.limits);
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(who);
  if (it == sessions_.end()) return;
  if (auto* error = std::get_if<ProtocolError>(&decoded)) {
    send_error(who, error->code, error->message);
    return;
  }
  std::visit([&](auto& msg) { handle(who, it->second, msg); }, std::get<ClientMessage>(decoded));
}

void Hub::receive_binary(ConnectionId who) {
  std::lock_guard lock(mutex_);
  if (!sessions_.contains(who)) return;
  send_error(who, error_code::kUnsupportedBinary,
             "Binary messages are not part of the chat protocol; send JSON text");
}

void Hub::disconnect(ConnectionId who) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(who);
  if (it == sessions_.end()) return;
  // Copy: leave() edits session.rooms while we walk it.
  const std::vector<std::string> rooms = it->second.rooms;
  for (const auto& room : rooms) leave(who, it->second, room);
  sessions_.erase(it);
}

void Hub::handle(ConnectionId who, Session& session, JoinRoom& msg) {
  if (session.username.empty()) {
    if (!msg.username) {
      send_error(who, error_code::kInvalidField, "Field 'username' is required on the first join");
      return;
    }
    session.username = *msg.username;
  } else if (msg.username && *msg.username != session.username) {
    send_error(who, error_code::kUsernameMismatch,
               "This connection's username is '" + session.username +
                   "'; a connection keeps one username in every room");
    return;
  }
  if (in_room(session, msg.room)) {
    send_error(who, error_code::kAlreadyInRoom, "Already in room '" + msg.room + "'");
    return;
  }

  auto [it, created] = rooms_.try_emplace(msg.room);
  Room& room = it->second;
  if (created) room.name = msg.room;
  room.members.push_back({who, &session});
  rebuild_snapshot(room);
  session.rooms.push_back(msg.room);

  const std::int64_t now_ms = clock_.unix_ms();
  sink_.send(who, encode_system_message(room.name, "Welcome to " + room.name + "!", now_ms));
  sink_.broadcast(room.snapshot,
                  encode_system_message(room.name, session.username + " joined the chat", now_ms),
                  who);
  room.user_list_owed = true;
}

void Hub::handle(ConnectionId who, Session& session, LeaveRoom& msg) {
  if (!in_room(session, msg.room)) {
    send_error(who, error_code::kNotInRoom, "Not in room '" + msg.room + "'");
    return;
  }
  leave(who, session, msg.room);
}

void Hub::handle(ConnectionId who, Session& session, ChatMessage& msg) {
  if (session.rooms.empty()) {
    send_error(who, error_code::kNotInRoom, "Join a room before sending messages");
    return;
  }
  if (msg.room) {
    if (!in_room(session, *msg.room)) {
      send_error(who, error_code::kNotInRoom, "Not in room '" + *msg.room + "'");
      return;
    }
    publish_chat(rooms_.at(*msg.room), who, session, msg.message);
    return;
  }
  // The chapter's semantics: a message goes to every room the sender is in.
  for (const auto& name : session.rooms) publish_chat(rooms_.at(name), who, session, msg.message);
}

void Hub::handle(ConnectionId who, Session& session, Typing& msg) {
  if (!in_room(session, msg.room)) {
    send_error(who, error_code::kNotInRoom, "Not in room '" + msg.room + "'");
    return;
  }
  Room& room = rooms_.at(msg.room);
  if (!msg.started) {
    stop_typing(room, who, session);
    return;
  }
  // Only a change of state is news to the room; a repeated typing_start just keeps the
  // signal alive.
  const bool was_typing = room.typing.contains(who);
  room.typing[who] = clock_.now();
  if (!was_typing) {
    sink_.broadcast(room.snapshot,
                    encode_typing(true, room.name, view(session.user_id), session.username), who);
  }
}

void Hub::leave(ConnectionId who, Session& session, const std::string& room_name) {
  std::erase(session.rooms, room_name);
  auto it = rooms_.find(room_name);
  if (it == rooms_.end()) return;
  Room& room = it->second;
  stop_typing(room, who, session);
  std::erase_if(room.members, [who](const Member& m) { return m.connection == who; });
  if (room.members.empty()) {
    rooms_.erase(it);
    return;
  }
  rebuild_snapshot(room);
  sink_.broadcast(
      room.snapshot,
      encode_system_message(room.name, session.username + " left the chat", clock_.unix_ms()),
      kNoConnection);
  room.user_list_owed = true;
}

void Hub::publish_chat(Room& room, ConnectionId who, const Session& session,
                       std::string_view text) {
  // A message ends the sender's typing in that room.
  stop_typing(room, who, session);
  sink_.broadcast(room.snapshot,
                  encode_chat_message(room.name, view(session.user_id), session.username, text,
                                      clock_.unix_ms(), ++room.last_seq),
                  kNoConnection);
}

void Hub::stop_typing(Room& room, ConnectionId who, const Session& session) {
  if (room.typing.erase(who) == 0) return;
  sink_.broadcast(room.snapshot,
                  encode_typing(false, room.name, view(session.user_id), session.username), who);
}

void Hub::tick() {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  for (auto& [name, room] : rooms_) {
    for (auto it = room.typing.begin(); it != room.typing.end();) {
      if (now - it->second >= options_.typing_timeout) {
        const auto who = it->first;
        ++it;  // stop_typing erases the entry
        stop_typing(room, who, sessions_.at(who));
      } else {
        ++it;
      }
    }
    if (room.user_list_owed) {
      const auto due = room.user_list_sent_at + user_list_interval(room);
      if (now >= due) {
        send_user_list(room);
        room.user_list_sent_at = now;
      }
    }
  }
}

HubStats Hub::stats() const {
  std::lock_guard lock(mutex_);
  return {sessions_.size(), rooms_.size(), {error_counts_.begin(), error_counts_.end()}};
}

void Hub::send_user_list(Room& room) {
  std::vector<UserEntry> users;
  users.reserve(room.members.size());
  for (const auto& m : room.members)
    users.push_back({view(m.session->user_id), m.session->username});
  sink_.broadcast(room.snapshot, encode_user_list(room.name, users), kNoConnection);
  room.user_list_owed = false;
}

void Hub::rebuild_snapshot(Room& room) {
  auto members = std::make_shared<std::vector<ConnectionId>>();
  members->reserve(room.members.size());
  for (const auto& m : room.members) members->push_back(m.connection);
  room.snapshot = std::move(members);
}

std::chrono::milliseconds Hub::user_list_interval(const Room& room) const {
  // One list costs about n entries of ~64 bytes to each of n members.
  const std::uint64_t n = room.members.size();
  const std::uint64_t bytes = n * n * 64;
  const auto budget_ms = bytes * 1000 / options_.user_list_bytes_per_second;
  return std::max(options_.user_list_min_interval,
                  std::chrono::milliseconds(static_cast<std::int64_t>(budget_ms)));
}

void Hub::send_error(ConnectionId who, std::string_view code, std::string_view message) {
  auto counted = error_counts_.find(code);
  if (counted == error_counts_.end()) counted = error_counts_.emplace(code, 0).first;
  ++counted->second;
  sink_.send(who, encode_error(code, message));
}

Hub::UserId Hub::new_user_id() {
  // UUID version 4 (RFC 4122 section 4.4): 122 random bits.
  std::uint64_t hi = random_();
  std::uint64_t lo = random_();
  hi = (hi & ~0xF000ull) | 0x4000ull;  // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  char text[37];
  std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  UserId id;
  std::copy_n(text, id.size(), id.begin());
  return id;
}

bool Hub::in_room(const Session& session, std::string_view room) const {
  return std::find(session.rooms.begin(), session.rooms.end(), room) != session.rooms.end();
}

}  // namespace roomcast::chat
