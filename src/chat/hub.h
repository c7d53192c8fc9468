// Hub: the whole behaviour of the chat — rooms, membership, presence, typing, sequence
// numbers — with no socket in sight. The transport feeds it what clients say (receive),
// and it answers through a Sink.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "base/clock.h"
#include "chat/authenticator.h"
#include "chat/history_store.h"
#include "chat/protocol.h"
#include "chat/rate_limiter.h"
#include "chat/sink.h"

namespace roomcast::chat {

struct HubOptions {
  ProtocolLimits limits;
  // A client that starts typing and then goes quiet gets a typing_stop sent on its
  // behalf after this long, so no room shows "typing..." forever.
  std::chrono::milliseconds typing_timeout{5000};
  // The chapter sends the full user list to the whole room on every join and leave,
  // which is quadratic in room size. The Hub sends at most one user_list per room per
  // interval instead; the interval grows with the square of the room's size (the bytes
  // one list costs the whole room) so that presence in a big room stays a small share
  // of traffic. See user_list_interval().
  std::chrono::milliseconds user_list_min_interval{50};
  // Budget, in bytes per second per room, for user_list traffic in big rooms.
  std::uint64_t user_list_bytes_per_second = 64ull << 20;

  // History: each room keeps its last `history_size` messages, none older than
  // `history_ttl` (zero: no age limit). An active room holds them in memory, so a join,
  // a `since` recovery and a duplicate `id` never wait for the disk; the store keeps the
  // same window durably.
  std::size_t history_size = 1000;
  std::chrono::milliseconds history_ttl{0};
  // Messages a join receives in its `history` reply when it does not ask with `since`.
  std::size_t history_on_join = 50;
  // Per user (per address for anonymous users). chat_message: the chapter's 10 per 60 s,
  // then refused for 120 s. Typing signals and joins reach the whole room too, so they are
  // limited as well, on a budget of their own that a person typing stays well below.
  RatePolicy message_rate{10, std::chrono::seconds(60)};
  RatePolicy signal_rate{30, std::chrono::seconds(10)};
  // Rooms one connection may be in at once: every message it sends fans out to all of
  // them. 0: no limit.
  std::size_t max_rooms_per_connection = 50;
};

// What the transport knows about a new connection.
struct ConnectInfo {
  // The verified identity of its token (it must pass check_identity); nullopt: anonymous.
  std::optional<Identity> identity;
  // The peer's address: anonymous users are rate-limited per address. Empty: per connection.
  std::string peer_address;
};

struct HubStats {
  std::size_t connections = 0;
  std::size_t rooms = 0;
  std::map<std::string, std::uint64_t> errors;  // error replies sent, by code
};

// The answer to an HTTP history request (GET /api/rooms/{room}/messages).
struct HistoryPage {
  std::string room;  // the name, as the rules trimmed it
  std::uint64_t last_seq = 0;  // the room's newest seq (0: nothing was ever said)
  std::vector<std::string> messages;  // chat_message JSON documents, oldest first
};

// Thread-safe: every public method takes the Hub's lock, so workers may call it
// concurrently. Ordering: messages to one room are numbered (seq) and handed to the
// Sink under the lock, so every member sees one and the same order.
// Durability: with a HistoryStore, every message is appended to it under the same lock,
// and only once the store reports it durable is it delivered to the room and acked, so a
// crash can lose only messages nobody has seen or been promised. Without a store
// (nullptr), history lives in memory while a room has members; delivery and acks follow
// at once.
// Requires: the Sink and the store outlive the Hub; the Sink keeps per-recipient order.
class Hub final : private HistoryStore::Listener {
 public:
  Hub(Sink& sink, const base::Clock& clock, HubOptions options = {}, HistoryStore* store = nullptr);
  ~Hub() override;

  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // A WebSocket connection was accepted on the chat endpoint; sends it
  // connection_established with its identity's userId (and username), or a fresh one.
  void connect(ConnectionId who, ConnectInfo info = {});

  // One complete text message from a client. Anything wrong gets an `error` reply;
  // the connection stays open.
  void receive(ConnectionId who, std::string_view text);

  // A binary message: not part of the chat protocol, answered with an error.
  void receive_binary(ConnectionId who);

  // The connection is gone (closed or dropped): leaves every room, telling the others.
  void disconnect(ConnectionId who);

  // Periodic work: sends coalesced user lists that are due, expires typing signals and
  // history past its age, and forgets rooms nobody is in once their history is durable.
  // Call every few tens of milliseconds (the server: every 20 ms).
  void tick();

  // A room's history for the HTTP API: with `since`, the oldest `limit` messages after it
  // (page forward by passing the last seq seen); without, the newest `limit`. `room` must
  // An invalid room name gets the same error a join would. May read the store (blocking)
  // when the room is not in memory.
  std::variant<HistoryPage, ProtocolError> history(std::string_view room,
                                                   std::optional<std::uint64_t> since,
                                                   std::size_t limit);

  // Blocks until the store has made every message durable and sends the acks still owed
  // (graceful shutdown). No-op without a store.
  void flush_history();

  HubStats stats() const;

 private:
  // Stored inline (no heap block per user): a UUID in its 36-character text form for
  // anonymous users, the token's subject otherwise.
  struct UserId {
    std::array<char, kMaxUserIdChars> chars{};
    std::uint8_t size = 0;
  };
  static std::string_view view(const UserId& id) { return {id.chars.data(), id.size}; }

  struct Session {
    UserId user_id{};
    bool authenticated = false;  // user_id and username come from a verified token
    std::string username;  // empty until the first join (or fixed by the token)
    std::vector<std::string> rooms;  // join order
    // The token's room patterns (Identity::rooms); null: any room.
    std::unique_ptr<const std::vector<std::string>> allowed_rooms;
    // Rate counters of the user (or address); null when the limit is off.
    RateLimiter::Counter* message_rate = nullptr;
    RateLimiter::Counter* signal_rate = nullptr;
  };
  struct Member {
    ConnectionId connection;
    const Session* session;  // owned by sessions_; node-based, so the address is stable
  };
  // A retained message: its JSON as members received it, ready to replay.
  struct HistoryEntry {
    std::uint64_t seq;
    std::int64_t timestamp_ms;
    std::string payload;
    std::string idempotency_key;  // empty for messages sent without an `id`
  };
  // An ack owed to a sender once the store has made `seq` durable.
  struct PendingAck {
    std::uint64_t seq;
    ConnectionId who;
    std::string id;
  };
  struct Room {
    std::string name;
    std::vector<Member> members;  // join order
    MemberSnapshot snapshot;  // the connections of `members`, for broadcast
    std::uint64_t last_seq = 0;
    std::uint64_t durable_seq = 0;  // every message up to here is in the store
    std::deque<HistoryEntry> history;  // the retained window, oldest first
    // With a store: numbered and handed to it, not yet durable, so not yet delivered.
    std::deque<HistoryEntry> undelivered;
    std::unordered_map<std::string, std::uint64_t> seq_by_key;  // idempotency key -> seq
    std::vector<PendingAck> pending_acks;  // in seq order
    // Coalesced presence: a user_list is owed since a membership change.
    bool user_list_owed = false;
    base::SteadyTime user_list_sent_at{};
    // Connections that are typing, and when they last said so.
    std::unordered_map<ConnectionId, base::SteadyTime> typing;
  };

  void handle(ConnectionId who, Session& session, JoinRoom& msg);
  void handle(ConnectionId who, Session& session, LeaveRoom& msg);
  void handle(ConnectionId who, Session& session, ChatMessage& msg);
  void handle(ConnectionId who, Session& session, Typing& msg);

  void leave(ConnectionId who, Session& session, const std::string& room_name);
  void publish_chat(Room& room, ConnectionId who, const Session& session, std::string_view text,
                    const std::optional<std::string>& id);
  void send_history(ConnectionId who, const Room& room, std::optional<std::uint64_t> since);
  // Who a message's `id` belongs to (see idempotency_key in hub.cpp).
  static std::string sender_key(const Session& session);
  void ack_when_durable(Room& room, ConnectionId who, std::string id, std::uint64_t seq);
  void remember(Room& room, HistoryEntry entry);
  void forget_oldest(Room& room);
  void expire_history(Room& room, std::int64_t now_ms);
  bool evictable(const Room& room) const;
  // The last seq members have been sent (messages after it wait to be durable).
  static std::uint64_t delivered_seq(const Room& room);
  // Messages a room may have waiting for the store before new ones are refused
  // (error `unavailable`): a failing disk must not grow memory without bound.
  static constexpr std::size_t kMaxUndelivered = 10'000;
  // Loads a room that is not in memory from the store, taking care not to hold the lock
  // while reading. Returns with `lock` held.
  void load_room(std::unique_lock<std::mutex>& lock, const std::string& name);
  Room& install_room(const std::string& name, RoomHistory history);
  void on_durable(std::string_view room, std::uint64_t seq) override;
  void stop_typing(Room& room, ConnectionId who, const Session& session);
  void send_user_list(Room& room);
  void rebuild_snapshot(Room& room);
  std::chrono::milliseconds user_list_interval(const Room& room) const;
  void send_error(ConnectionId who, std::string_view code, std::string_view message);
  bool admit_signal(ConnectionId who, const Session& session);
  UserId new_user_id();
  bool in_room(const Session& session, std::string_view room) const;

  Sink& sink_;
  const base::Clock& clock_;
  const HubOptions options_;
  HistoryStore* const store_;

  mutable std::mutex mutex_;
  std::unordered_map<ConnectionId, Session> sessions_;
  std::unordered_map<std::string, Room> rooms_;
  // Counts rooms forgotten; a load that raced with one reads again.
  std::uint64_t rooms_forgotten_ = 0;
  std::map<std::string, std::uint64_t, std::less<>> error_counts_;
  RateLimiter message_limiter_;
  RateLimiter signal_limiter_;
  std::mt19937_64 random_;
};

}  // namespace roomcast::chat
