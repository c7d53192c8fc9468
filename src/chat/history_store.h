// HistoryStore: where the Hub keeps room history durably. The Hub holds each active room's
// retained history in memory and is the one place that assigns `seq`; the store makes that
// history survive restarts and tells the Hub when messages are durable, so acks can follow.
//
// Implementations: store::SqliteStore (a file, a storage thread, group commits). A cluster
// store plugs in here without touching the Hub.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace roomcast::chat {

// One chat message as history keeps it.
struct StoredMessage {
  std::string room;
  std::uint64_t seq = 0;
  std::int64_t timestamp_ms = 0;  // the server's clock when it was published
  std::string user_id;
  std::string username;
  std::string message;
  // Idempotency: who sent it (see Hub) and the client's `id`; both empty without an id.
  std::string sender_key;
  std::string client_id;
};

// A room's retained history as read back from a store.
struct RoomHistory {
  // The highest seq the room ever had, even if those messages have expired since, so
  // numbering continues after a restart instead of starting again at 1.
  std::uint64_t last_seq = 0;
  std::vector<StoredMessage> messages;  // oldest first
};

class HistoryStore {
 public:
  // Told when messages have become durable. Called from the store's own thread, never
  // while the store holds a lock that append() takes, so it may call append().
  class Listener {
   public:
    virtual ~Listener() = default;
    // Every message of `room` with seq <= `seq` is durable.
    virtual void on_durable(std::string_view room, std::uint64_t seq) = 0;
  };

  virtual ~HistoryStore() = default;

  // Sets (or, with nullptr, clears) the listener; after it returns, the previous listener
  // is not called again.
  virtual void set_listener(Listener* listener) = 0;

  // Queues a message for durable storage and returns at once: never waits for the disk.
  // Messages of one room must be appended in seq order. Thread-safe.
  virtual void append(StoredMessage message) = 0;

  // Reads `room`'s retained history: last_seq and its newest messages with seq > after_seq,
  // at most `limit` of them, oldest first. Sees every message whose durability was reported.
  // Blocks on the disk: the Hub calls it only when a room is not in memory, and never while
  // holding its lock. Thread-safe.
  virtual RoomHistory read(std::string_view room, std::uint64_t after_seq, std::size_t limit) = 0;

  // Blocks until every message appended so far is durable (graceful shutdown), or until
  // the implementation gives up on a store that keeps failing (it says so in the log).
  virtual void flush() = 0;
};

}  // namespace roomcast::chat
