// Hub: the whole behaviour of the chat — rooms, membership, presence, typing, sequence
// numbers — with no socket in sight. The transport feeds it what clients say (receive),
// and it answers through a Sink.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "chat/authenticator.h"
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

// Thread-safe: every public method takes the Hub's lock, so workers may call it
// concurrently. Ordering: messages to one room are numbered (seq) and handed to the
// Sink under the lock, so every member sees one and the same order.
// Requires: the Sink outlives the Hub and keeps per-recipient call order.
class Hub {
 public:
  Hub(Sink& sink, const base::Clock& clock, HubOptions options = {});

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

  // Periodic work: sends coalesced user lists that are due and expires typing signals.
  // Call every few tens of milliseconds (the server: every 20 ms).
  void tick();

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
  struct Room {
    std::string name;
    std::vector<Member> members;  // join order
    MemberSnapshot snapshot;  // the connections of `members`, for broadcast
    std::uint64_t last_seq = 0;
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
  void publish_chat(Room& room, ConnectionId who, const Session& session, std::string_view text);
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

  mutable std::mutex mutex_;
  std::unordered_map<ConnectionId, Session> sessions_;
  std::unordered_map<std::string, Room> rooms_;
  std::map<std::string, std::uint64_t, std::less<>> error_counts_;
  RateLimiter message_limiter_;
  RateLimiter signal_limiter_;
  std::mt19937_64 random_;
};

}  // namespace roomcast::chat
