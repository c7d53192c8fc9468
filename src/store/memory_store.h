// MemoryStore: room history in memory only (`--history-store memory`). Numbering, resent
// ids and retention behave exactly as in the durable stores, so the Hub has one publication
// path whatever the store; what is lost is durability: a restart forgets everything, and a
// room is forgotten once no one on the node follows it (unload); a conversation (never loaded)
// is kept until a restart.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "base/clock.h"
#include "chat/history_store.h"
#include "chat/retention.h"

namespace roomcast::store {

// Synchronous: publish() numbers the message and reports it before it returns, and load()
// reports the history likewise, except that a report is never made while the store holds
// its lock: a report that arrives while another is being made (from the listener itself, or
// from another thread) is queued and made by whoever is reporting, right after, in order. So
// a room's reports reach the listener one at a time and in seq order, and a listener may call
// the store back from a report.
// Rooms are split over shards by name, each with its own lock: threads publishing to
// different rooms rarely meet.
// Thread-safe. The clock must outlive the store.
class MemoryStore final : public chat::HistoryStore {
 public:
  MemoryStore(const base::Clock& clock, chat::Retention retention);
  ~MemoryStore() override;

  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  void set_listener(Listener* listener) override;
  void load(std::string room) override;
  void unload(std::string room) override;
  void publish(chat::Publication publication) override;
  void read(std::string_view room, std::uint64_t after_seq, std::size_t limit,
            ReadDone done) override;
  void conversations(std::string_view user_id, std::size_t limit, ConversationsDone done) override;
  // Nothing is ever waiting: every publication was reported before publish() returned.
  void flush() override {}

 private:
  struct Room {
    std::uint64_t last_seq = 0;
    std::deque<chat::StoredMessage> messages;  // the retained window, oldest first
    std::unordered_map<std::string, std::uint64_t> seq_by_key;  // idempotency key -> seq
  };
  struct Loaded {
    std::string room;
    chat::RoomHistory history;
  };
  struct Committed {
    chat::StoredMessage message;
    chat::ConnectionId origin;
  };
  struct Duplicate {
    chat::Publication publication;
    std::uint64_t seq;
  };
  using Report = std::variant<Loaded, Committed, Duplicate>;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, Room> rooms;
    std::deque<Report> reports;  // made in this order, by whoever is reporting
    bool reporting = false;
  };
  static constexpr std::size_t kShards = 16;

  Shard& shard_of(std::string_view room);
  // Drops what retention no longer keeps at `now_ms`.
  void retain(Room& room, std::int64_t now_ms) const;
  // Makes `next`, then the shard's queued reports, unless another call is making them (then
  // queues `next` for it). Takes the shard's lock, held, and returns with it released.
  void report(Shard& shard, std::unique_lock<std::mutex> lock, Report next);

  // Notes `message`, just numbered in a conversation, in its users' lists.
  void index_conversation(const chat::StoredMessage& message);

  const base::Clock& clock_;
  const chat::Retention retention_;
  // Each user's conversations, by peer (kept until a restart, like conversations themselves).
  std::mutex index_mutex_;
  std::unordered_map<std::string, std::unordered_map<std::string, chat::ConversationSummary>>
      conversations_;
  std::atomic<Listener*> listener_{nullptr};
  std::array<Shard, kShards> shards_;
};

}  // namespace roomcast::store
