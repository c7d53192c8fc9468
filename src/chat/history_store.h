// HistoryStore: where a room's messages are numbered and kept. The Hub hands the store each
// message to publish; the store gives it the room's next `seq` atomically with making it
// durable, then reports it back, and only then does the Hub deliver it. Because numbering
// lives behind this interface, a store shared by several nodes (the cluster's Redis store)
// numbers each room once for all of them and reports every node's messages to every node.
//
// Implementations: store::MemoryStore (in memory, synchronous), store::SqliteStore (a file, a
// storage thread, group commits) and cluster::RedisCluster (Redis, shared by every node of a
// cluster). On a node, chat::Exchange stands between the store and the workers' Hubs.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "chat/conversation.h"
#include "chat/epoch.h"  // epoch_seq_base: every store's rule after a loss
#include "chat/presence.h"
#include "chat/protocol.h"
#include "chat/sink.h"

namespace roomcast::chat {

// A chat message (or a durable app event) the Hub asks the store to publish: everything but
// its seq.
struct Publication {
  std::string room;
  std::int64_t timestamp_ms = 0;  // the server's clock when it was sent
  std::string user_id;
  std::string username;
  // A chat message's text; an app event's fields (AppEvent::fields, a JSON object's text).
  std::string message;
  // Idempotency: who sent it (see Hub) and the client's `id`; client_id empty: no id.
  std::string sender_key;
  std::string client_id;
  ConnectionId origin = kNoConnection;  // the sending connection on this node, for its ack
  // When the sender's Hub accepted it (this node's steady clock), for the delivery-latency
  // metric. Never stored, never sent to other nodes.
  base::SteadyTime accepted_at{};
  // Empty: a chat_message. Else the type of a durable app event (AppEvents), whose fields
  // `message` holds. Stores keep it beside the message and give it back unchanged.
  std::string event_type{};
};

// What recognises a resent message: its sender (Publication::sender_key) and the client's
// `id`, joined by a NUL (which neither contains). Every store keys resends by it.
inline std::string idempotency_key(std::string_view sender_key, std::string_view client_id) {
  std::string key;
  key.reserve(sender_key.size() + 1 + client_id.size());
  key += sender_key;
  key += '\0';
  key += client_id;
  return key;
}

// One chat message (or durable app event) as history keeps it.
struct StoredMessage {
  std::string room;
  std::uint64_t seq = 0;
  std::int64_t timestamp_ms = 0;
  std::string user_id;
  std::string username;
  std::string message;
  std::string sender_key;
  std::string client_id;
  // Publication::accepted_at when this node published it and the store still knew it (a
  // message just committed); default otherwise (another node's, or read back from history).
  base::SteadyTime accepted_at{};
  std::string event_type{};  // as Publication::event_type
};

// A stored message as members receive it: a chat_message, the durable app event it is, or a
// direct_message (in a conversation, chat/conversation.h).
inline std::string encode_stored(const StoredMessage& m) {
  if (is_conversation(m.room)) {
    return encode_direct_message(m.user_id, m.username, conversation_peer(m.room, m.user_id),
                                 m.message, m.timestamp_ms, m.seq);
  }
  if (m.event_type.empty()) {
    return encode_chat_message(m.room, m.user_id, m.username, m.message, m.timestamp_ms, m.seq);
  }
  return encode_app_event(m.event_type, m.room, m.user_id, m.username, m.message, m.timestamp_ms,
                          m.seq);
}

// A room's retained history as read back from a store.
struct RoomHistory {
  // The highest seq the room ever had, even if those messages have expired since, so
  // numbering continues after a restart instead of starting again at 1.
  std::uint64_t last_seq = 0;
  std::vector<StoredMessage> messages;  // oldest first
  // Cluster stores: the room's members on other nodes when it was loaded (later changes
  // arrive through Presence::Listener).
  std::vector<MemberRef> remote_members;
};

// One of a user's conversations (direct messages) as a store lists it.
struct ConversationSummary {
  std::string peer_id;  // the other user (the user themselves for notes to self)
  // The peer's name as their latest message in the conversation gave it; empty if the peer
  // has not written in it (the store never learns a name otherwise).
  std::string peer_username;
  std::uint64_t last_seq = 0;
  std::int64_t last_timestamp_ms = 0;
};

class HistoryStore {
 public:
  // How the store reports back. Called from the store's own thread(s), never while the
  // store holds a lock that its other methods take, so a listener may call them.
  class Listener {
   public:
    virtual ~Listener() = default;
    // A load() is done: `history` holds the room's newest retained messages (at most the
    // store's retention) and its last seq. Every later message of the room is reported
    // through on_committed, each once and in seq order.
    virtual void on_loaded(std::string_view room, RoomHistory history) = 0;
    // `message` is durable as `message.seq` of its room. `origin` is the publishing
    // connection when it was on this node (Publication::origin), else kNoConnection.
    virtual void on_committed(StoredMessage message, ConnectionId origin) = 0;
    // `publication`'s (sender_key, client_id) is already in its room's history as `seq`
    // (a resend): nothing new was stored or will be reported.
    virtual void on_duplicate(const Publication& publication, std::uint64_t seq) = 0;
    // A store that cannot write (Redis unreachable; a SQLite disk that keeps failing or a
    // database file that vanished) refuses rather than risk losing or leaving the sender
    // without an answer: `publication` was not stored and will not be reported (so it was
    // never acked; its sender may send it again). `code` is the protocol error code the
    // sender gets (error_code::kClusterUnavailable for Redis, kUnavailable for local
    // storage); `reason` is for the user.
    virtual void on_refused(const Publication& publication, std::string_view reason,
                            std::string_view code = error_code::kClusterUnavailable) = 0;
    // The load of `room` failed and the room is not followed (Redis unreachable). SQLite
    // never calls it: a failing read is retried, and loads never wait behind commits.
    virtual void on_load_failed(std::string_view room, std::string_view reason) = 0;
    // The store lost `room`'s numbering (its backend was emptied) and the room continues in a
    // new epoch from `first_seq` (chat/epoch.h): messages before it are no longer in the
    // store, so what the listener retained of them must not be served as the room's history.
    // Later messages are reported as usual. A store that never loses numbering never calls it.
    virtual void on_history_reset(std::string_view room, std::uint64_t first_seq) {
      static_cast<void>(room);
      static_cast<void>(first_seq);
    }
    // Around a run of reports made at once from one thread (a group commit's): what the
    // listener does once per run rather than per report (waking a reader) may wait for
    // end_reports(), which the store calls on the same thread before it waits for anything.
    virtual void begin_reports() {}
    virtual void end_reports() {}
  };

  virtual ~HistoryStore() = default;

  // Sets (or, with nullptr, clears) the listener; after it returns, the previous listener
  // is not called again.
  virtual void set_listener(Listener* listener) = 0;

  // Starts following `room` on this node: its history is reported through on_loaded, then
  // its new messages through on_committed. Returns at once. Thread-safe.
  virtual void load(std::string room) = 0;

  // Stops following `room` (nobody on this node is in it). Thread-safe.
  virtual void unload(std::string room) = 0;

  // Numbers and stores a message of a loaded room, then reports it (on_committed or
  // on_duplicate), or refuses it (on_refused): every publication gets exactly one answer.
  // Returns at once: never waits for the disk or the network. Thread-safe.
  virtual void publish(Publication publication) = 0;

  // Reads a room's newest retained messages with seq > after_seq, at most `limit`, oldest
  // first, and its last seq, for the HTTP history API on rooms not in memory. Calls `done`
  // exactly once, with nullopt if the store cannot be reached: SQLite before returning (an
  // indexed read of a local file), a network store later from its own thread, so that no
  // worker waits for the network. Thread-safe.
  using ReadDone = std::function<void(std::optional<RoomHistory>)>;
  virtual void read(std::string_view room, std::uint64_t after_seq, std::size_t limit,
                    ReadDone done) = 0;

  // Conversations (chat/conversation.h) are rooms that are never loaded: a publication to one
  // is numbered and reported like any room's (on_committed, each once and in seq order per
  // conversation), and read() reads one, without load(). Every store also keeps, per user,
  // the conversations they have, for conversations().

  // The conversations of user `user_id`, newest (last message) first, at most `limit`. Calls
  // `done` exactly once as read() does, with nullopt if the store cannot be reached.
  // Thread-safe.
  using ConversationsDone = std::function<void(std::optional<std::vector<ConversationSummary>>)>;
  virtual void conversations(std::string_view user_id, std::size_t limit,
                             ConversationsDone done) = 0;

  // Blocks until everything published so far is reported (graceful shutdown), or until
  // the implementation gives up on a store that keeps failing (it says so in the log).
  virtual void flush() = 0;
};

}  // namespace roomcast::chat
