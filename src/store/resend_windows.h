// ResendWindows: which message ids each room may already hold, so that SqliteStore recognises
// a resend (a client's `id` seen before) without an index in the database file.
//
// A message with an id (every one of the browser library's) is looked up before it is
// numbered. An index on (room, sender, id) made that one seek, but every insert then wrote
// the index's page too, a third of the storage thread's instructions per message
// (bench/OPTIMIZATIONS.md, "The resend window"). Instead the storage thread keeps, per room,
// the 64-bit hashes of the idempotency keys (chat::idempotency_key) of the rows retention
// keeps, filled from the rows when the room is first touched. The window is a filter: a hash
// it does not hold is a new message; one it holds names the candidate rows, and the store
// confirms the sender and id on the row itself (a primary-key seek), so a collision of
// hashes can never turn a new message into a duplicate. Resends are rare; the seek is the
// exception, not the rule.
//
// Memory: 48 to 64 bytes per id. A window goes when its room is unloaded (no members left on
// this server, as the store's numbering) and, past max_ids in all, the windows of the rooms
// touched longest ago go first (conversations are never unloaded); a room whose window went
// is filled again from its rows when next touched.
//
// Not thread-safe: the storage thread's alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace roomcast::store {

class ResendWindows {
 public:
  // One kept message with an id, as a room's rows give it.
  struct Kept {
    std::uint64_t seq = 0;
    std::int64_t timestamp_ms = 0;
    std::string_view sender_key;
    std::string_view client_id;
  };

  explicit ResendWindows(std::size_t max_ids) : max_ids_(max_ids) {}

  // Whether `room`'s window is held (touched and not dropped since).
  bool holds(std::string_view room) const { return rooms_.contains(room); }

  // Starts `room`'s window empty (replacing one it held), the most recently touched; its
  // kept rows with an id are then add()ed, oldest first.
  void start(std::string_view room);

  // The seqs, newest first, of the room's messages whose sender and id may be these and
  // which are not older than oldest_kept_ms; the caller confirms each on its row. The room's
  // window must be held. Marks the room as touched.
  std::vector<std::uint64_t> candidates(std::string_view room, std::string_view sender_key,
                                        std::string_view client_id, std::int64_t oldest_kept_ms);

  // A message with an id was stored (or, after start, read back): `message.seq` above every
  // seq the window holds. Ids older than oldest_kept_ms go (retention by age). The room's
  // window must be held. May drop other rooms' windows (max_ids).
  void add(std::string_view room, const Kept& message, std::int64_t oldest_kept_ms);

  // Retention by count deleted the room's rows up to `seq`, included.
  void drop_through(std::string_view room, std::uint64_t seq);

  // The room's window goes (unloaded); everything goes (a rolled-back transaction: the
  // windows held its rows).
  void drop(std::string_view room);
  void clear();

  std::size_t ids() const { return ids_; }

 private:
  struct Entry {
    std::uint64_t seq;
    std::int64_t timestamp_ms;
    std::uint64_t hash;
  };
  struct Window {
    std::deque<Entry> by_seq;  // oldest first
    std::unordered_multimap<std::uint64_t, std::uint64_t> seq_by_hash;
    std::list<std::string>::iterator recency;
  };

  static std::uint64_t hash_of(std::string_view sender_key, std::string_view client_id);
  Window& touch(std::string_view room);
  void pop_oldest(Window& window);
  void drop_least_recent_beyond_limit();

  std::size_t max_ids_;
  std::size_t ids_ = 0;
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const {
      return std::hash<std::string_view>{}(name);
    }
  };
  std::unordered_map<std::string, Window, NameHash, std::equal_to<>> rooms_;
  std::list<std::string> recency_;  // rooms, the most recently touched first
};

}  // namespace roomcast::store
