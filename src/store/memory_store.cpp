#include "store/memory_store.h"

#include <algorithm>
#include <functional>

namespace roomcast::store {

MemoryStore::MemoryStore(const base::Clock& clock, chat::Retention retention)
    : clock_(clock), retention_(retention) {}

MemoryStore::~MemoryStore() = default;

void MemoryStore::set_listener(Listener* listener) {
  listener_.store(listener, std::memory_order_release);
}

MemoryStore::Shard& MemoryStore::shard_of(std::string_view room) {
  return shards_[std::hash<std::string_view>{}(room) % kShards];
}

void MemoryStore::retain(Room& room, std::int64_t now_ms) const {
  auto forget_oldest = [&room] {
    const chat::StoredMessage& oldest = room.messages.front();
    if (!oldest.client_id.empty()) {
      room.seq_by_key.erase(chat::idempotency_key(oldest.sender_key, oldest.client_id));
    }
    room.messages.pop_front();
  };
  while (room.messages.size() > retention_.max_messages) forget_oldest();
  while (!room.messages.empty() && !retention_.keeps(room.messages.front().timestamp_ms, now_ms)) {
    forget_oldest();
  }
}

void MemoryStore::load(std::string name) {
  Shard& shard = shard_of(name);
  std::unique_lock lock(shard.mutex);
  Room& room = shard.rooms[name];
  retain(room, clock_.unix_ms());
  chat::RoomHistory history;
  history.last_seq = room.last_seq;
  history.messages.assign(room.messages.begin(), room.messages.end());
  report(shard, std::move(lock), Loaded{std::move(name), std::move(history)});
}

void MemoryStore::unload(std::string name) {
  Shard& shard = shard_of(name);
  std::lock_guard lock(shard.mutex);
  shard.rooms.erase(name);
}

void MemoryStore::publish(chat::Publication publication) {
  Shard& shard = shard_of(publication.room);
  std::unique_lock lock(shard.mutex);
  // A room is published to only while loaded (HistoryStore's contract); a caller that breaks
  // it still gets an answer.
  auto it = shard.rooms.find(publication.room);
  if (it == shard.rooms.end() && chat::is_conversation(publication.room)) {
    it = shard.rooms.try_emplace(publication.room).first;  // conversations need no load
  }
  if (it == shard.rooms.end()) {
    lock.unlock();
    if (Listener* listener = listener_.load(std::memory_order_acquire)) {
      listener->on_refused(publication, "The room is not open on this server; join it again",
                           chat::error_code::kUnavailable);
    }
    return;
  }
  Room& room = it->second;
  std::string key;
  if (!publication.client_id.empty()) {
    key = chat::idempotency_key(publication.sender_key, publication.client_id);
    if (const auto seen = room.seq_by_key.find(key); seen != room.seq_by_key.end()) {
      const std::uint64_t seq = seen->second;
      report(shard, std::move(lock), Duplicate{std::move(publication), seq});
      return;
    }
  }
  chat::StoredMessage message{std::move(publication.room),       ++room.last_seq,
                              publication.timestamp_ms,          std::move(publication.user_id),
                              std::move(publication.username),   std::move(publication.message),
                              std::move(publication.sender_key), std::move(publication.client_id),
                              publication.accepted_at,           std::move(publication.event_type)};
  if (retention_.max_messages > 0) {
    if (!key.empty()) room.seq_by_key.emplace(std::move(key), message.seq);
    room.messages.push_back(message);
    retain(room, clock_.unix_ms());
  }
  if (chat::is_conversation(message.room)) index_conversation(message);
  report(shard, std::move(lock), Committed{std::move(message), publication.origin});
}

void MemoryStore::index_conversation(const chat::StoredMessage& message) {
  const auto users = chat::conversation_users(message.room);
  if (!users) return;
  std::lock_guard lock(index_mutex_);
  for (const std::string_view user : {users->first, users->second}) {
    const std::string_view peer = user == users->first ? users->second : users->first;
    chat::ConversationSummary& entry = conversations_[std::string(user)][std::string(peer)];
    entry.peer_id = peer;
    entry.last_seq = message.seq;
    entry.last_timestamp_ms = message.timestamp_ms;
    if (message.user_id == peer) entry.peer_username = message.username;
  }
}

void MemoryStore::conversations(std::string_view user_id, std::size_t limit,
                                ConversationsDone done) {
  std::vector<chat::ConversationSummary> list;
  {
    std::lock_guard lock(index_mutex_);
    if (const auto it = conversations_.find(std::string(user_id)); it != conversations_.end()) {
      for (const auto& [peer, entry] : it->second) list.push_back(entry);
    }
  }
  std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
    return a.last_timestamp_ms != b.last_timestamp_ms ? a.last_timestamp_ms > b.last_timestamp_ms
                                                      : a.peer_id < b.peer_id;
  });
  if (list.size() > limit) list.resize(limit);
  done(std::move(list));
}

void MemoryStore::read(std::string_view name, std::uint64_t after_seq, std::size_t limit,
                       ReadDone done) {
  chat::RoomHistory history;
  {
    Shard& shard = shard_of(name);
    std::lock_guard lock(shard.mutex);
    if (const auto it = shard.rooms.find(std::string(name)); it != shard.rooms.end()) {
      Room& room = it->second;
      retain(room, clock_.unix_ms());
      history.last_seq = room.last_seq;
      // The newest `limit` after after_seq, oldest first.
      auto first = std::upper_bound(
          room.messages.begin(), room.messages.end(), after_seq,
          [](std::uint64_t seq, const chat::StoredMessage& m) { return seq < m.seq; });
      const auto available = static_cast<std::size_t>(room.messages.end() - first);
      first += static_cast<std::ptrdiff_t>(available - std::min(available, limit));
      history.messages.assign(first, room.messages.end());
    }
  }
  done(std::move(history));
}

void MemoryStore::report(Shard& shard, std::unique_lock<std::mutex> lock, Report next) {
  if (shard.reporting) {  // the call making reports makes this one after the others
    shard.reports.push_back(std::move(next));
    return;
  }
  shard.reporting = true;
  for (;;) {
    lock.unlock();
    if (Listener* listener = listener_.load(std::memory_order_acquire)) {
      if (auto* loaded = std::get_if<Loaded>(&next)) {
        listener->on_loaded(loaded->room, std::move(loaded->history));
      } else if (auto* committed = std::get_if<Committed>(&next)) {
        listener->on_committed(std::move(committed->message), committed->origin);
      } else {
        auto& duplicate = std::get<Duplicate>(next);
        listener->on_duplicate(duplicate.publication, duplicate.seq);
      }
    }
    lock.lock();
    if (shard.reports.empty()) break;
    next = std::move(shard.reports.front());
    shard.reports.pop_front();
  }
  shard.reporting = false;
}
}  // namespace roomcast::store
