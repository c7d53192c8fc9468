// Hub: the whole behaviour of the chat — rooms, membership, presence, typing, sequence
// numbers — with no socket in sight. The transport feeds it what clients say (receive),
// and it answers through a Sink.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "base/clock.h"
#include "chat/app_events.h"
#include "chat/authenticator.h"
#include "chat/backend_events.h"
#include "chat/event_log.h"
#include "chat/history_store.h"
#include "chat/presence.h"
#include "chat/protocol.h"
#include "chat/publish_hook.h"
#include "chat/rate_limiter.h"
#include "chat/retention.h"
#include "chat/sink.h"

namespace roomcast::chat {

struct HubOptions {
  ProtocolLimits limits;
  // A client that starts typing and then goes quiet gets a typing_stop sent on its
  // behalf after this long, so no room shows "typing..." forever.
  std::chrono::milliseconds typing_timeout{5000};
  // A member who leaves a room (or whose connection drops) is announced ("NAME left the chat")
  // only once they have been gone this long, and their return within it is no new "joined
  // the chat": a reconnect or a page reload says nothing to the room. For this long after the
  // Hub starts, joins are not announced either: they are the members of before a restart,
  // rejoining. The user_list is current all along. 0: every join and leave announced at once.
  std::chrono::milliseconds rejoin_grace{0};
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
  Retention retention() const { return {history_size, history_ttl}; }
  // Messages a join receives in its `history` reply when it does not ask with `since`.
  std::size_t history_on_join = 50;
  // Per person: a token's user, or an anonymous connection (see RateBudget).
  // chat_message: the chapter's 10 per 60 s, then refused for 120 s. Typing signals and
  // joins reach the whole room too, so they are limited as well, on a budget of their own
  // that a person typing stays well below.
  RatePolicy message_rate{10, std::chrono::seconds(60)};
  RatePolicy signal_rate{30, std::chrono::seconds(10)};
  // Per client address, for everyone anonymous on it together: against reconnecting for a
  // fresh budget, large enough that 60 people behind one NAT or proxy chatting at a few
  // messages a minute are all served. Over it, refused until the window ends (no block:
  // the budget is shared by strangers).
  RatePolicy address_message_rate{600, std::chrono::seconds(60), 0};
  RatePolicy address_signal_rate{600, std::chrono::seconds(10), 0};
  // Rooms one connection may be in at once: every message it sends fans out to all of
  // them. 0: no limit.
  std::size_t max_rooms_per_connection = 50;
  // While a join waits for its room to load (a slow disk, a hung Redis), what the
  // connection sends next waits behind it, in memory. Bounded per connection (a client's
  // offline queue resent after a rejoin fits) and over all connections: at a bound the Hub
  // holds the connection's reading (Sink::hold_reading) until the join is answered, so the
  // rest waits unread (TCP pushes back on the sender) and nothing is refused. The message
  // that reaches a bound is kept, so a connection may pass it by one message.
  std::size_t max_parked_messages = 256;
  std::size_t max_parked_bytes = 1u << 20;
  std::size_t max_parked_bytes_total = 64u << 20;
  // Application event types relayed to rooms (--app-events); none by default: an unknown
  // type is refused as the chapter's server would. Durable ones spend the message budget
  // (they are stored), ephemeral ones the signal budget.
  AppEvents app_events{};
  // message_batch (members that join with "batch": true): a room's messages wait at most
  // batch_interval (the chapter's 50 ms; the Hub's tick, 20 ms on the server, may add up to
  // one tick) or until batch_size have gathered, then go out as one document shared by every
  // batching member of the room on this worker.
  std::chrono::milliseconds batch_interval{50};
  std::size_t batch_size = 10;
  // With a publish hook: messages waiting for the backend's verdict, per Hub (worker) and per
  // connection. Beyond, a message is refused with `unavailable` (naming its room and id) and
  // not asked about: a slow backend must cost bounded memory, and the sender resends later.
  std::size_t max_awaiting_verdict = 1000;
  std::size_t max_awaiting_verdict_per_connection = 32;
};

// The node's rate budgets as these options set them (chat::RateBudgets).
RateBudgets::Policies rate_policies(const HubOptions& options);

// What the transport knows about a new connection.
struct ConnectInfo {
  // The verified identity of its token (it must pass check_identity); nullopt: anonymous.
  std::optional<Identity> identity;
  // The client's address (behind a trusted proxy, the one the proxy names): anonymous
  // users share its rate budget (HubOptions::address_message_rate). Empty: none.
  std::string peer_address;
};

// ---- The server API's view of a Hub (http/api.h; docs/api.md) ---------------------------

// A chat message the backend publishes (POST /api/publish): the same message a member's
// chat_message makes, from the server user (kServerUserId) under `username`; or one a user
// sends over HTTP (POST /api/rooms/{room}/messages, `user_id` set); or an app event the backend
// publishes (`event`).
struct ServerPublication {
  std::string room;  // already checked (check_room_name)
  // A chat message's text, already checked as a chat_message's; with `event`, the event's
  // whole JSON text naming `room`, judged by the Hub as a member's event is
  // (decode_client_message with HubOptions::app_events).
  std::string message;
  std::string username;
  // Empty: none. Else a retry with the same key is answered with the first one's seq and
  // stored once (the store's idempotency, as for a client's `id`).
  std::string idempotency_key;
  // Empty: from the server user, not rate-limited. Else the verified token's user it is sent
  // as (`username` their token's name), as their chat_message with `id` idempotency_key would
  // be: on that user's message budget, refused if the name looks like another member's in the
  // room, and the same `id` over HTTP and over a WebSocket is the same message.
  std::string user_id;
  bool event = false;
};
struct ServerPublishResult {
  // The message's seq; 0 for an ephemeral app event (not numbered: delivered to whoever is in
  // the room now).
  std::uint64_t seq = 0;
  std::string error_code;  // empty: published (or a retry of a published message)
  std::string error;  // the reason, for the backend
  // A rate_limited refusal: how long until the sender's budget admits again (HTTP: the
  // Retry-After header and `retryAfterMs`). Initialized, so that answers may leave it out.
  std::optional<std::chrono::milliseconds> retry_after = std::nullopt;
};
using ServerPublishDone = std::function<void(ServerPublishResult)>;

// Who reads an event stream (Hub::watch): the token's user (empty: anonymous) and when the
// token expires (Unix seconds; 0: never).
struct StreamReader {
  std::string user_id;
  std::int64_t expires_at_unix_s = 0;
};

// A room open on a Hub, with its members: this Hub's connections (`local`, one record per
// connection) and those elsewhere that the Hub knows of (`remote`: other workers and nodes).
struct RoomView {
  std::string name;
  std::uint64_t last_seq = 0;
  std::vector<MemberRef> local;
  std::vector<MemberRef> remote;
};

// A long-poll's answer (Hub::poll): the room's chat messages after the poll's `since` (the JSON
// members got), or none when the wait ended first; or the error that refused it.
struct PollResult {
  std::uint64_t last_seq = 0;
  std::vector<std::string> messages;
  std::string error_code;  // empty: answered
  std::string error;
};
using PollDone = std::function<void(PollResult)>;

struct HubStats {
  std::size_t connections = 0;
  std::size_t rooms = 0;
  std::map<std::string, std::uint64_t> errors;  // error replies sent, by code
};

// Worker-affine: a Hub belongs to one thread (a worker), which makes every call, and has no
// lock on its path; a node runs one Hub per worker, each with its own connections, tied
// together by chat::Exchange. Only stats() and deliveries_awaiting_store() may be called from
// other threads.
// Ordering and durability: the store numbers each message as it makes it durable and reports
// it back (HistoryStore::Listener); only then does the Hub deliver it, in seq order, and ack
// it, so every member sees one and the same order and a crash can lose only messages nobody
// has seen or been promised. A join to a room that is not open here waits, with whatever its
// connection says next, until the store has loaded the room; the Hub never waits for the
// store. (With store::MemoryStore the reports come at once; nothing else changes.)
// Members elsewhere: with a Presence, each room also lists its members on other workers and
// nodes; local joins, leaves and typing signals go out through it and the others' come in.
// Tokens: a connection opened with a token is closed (close_code::kTokenExpired) when the
// token expires (Identity::expires_at_unix_s, judged by the clock's unix_ms), unless the
// client sent a `refresh` with a fresh token of the same user; the Authenticator verifies
// refreshes (nullptr: every refresh is refused).
// Rate budgets: `budgets` are the node's, shared by every worker's Hub (and, with a cluster,
// summed with the other nodes'); nullptr: the Hub keeps budgets of its own (HubOptions'
// policies), for a Hub that is alone.
// Listener calls (store, presence) must come on the Hub's thread too: a Port of
// chat::Exchange hands them over. A synchronous store may report from inside a call to it.
// Requires: the Sink, the store, the presence, the authenticator and the budgets outlive the
// Hub; the Sink keeps per-recipient order and may be called back from nothing it is given.
class Hub final : private HistoryStore::Listener, private Presence::Listener {
 public:
  Hub(Sink& sink, const base::Clock& clock, HubOptions options, HistoryStore& store,
      Presence* presence = nullptr, const Authenticator* authenticator = nullptr,
      RateBudgets* budgets = nullptr);
  ~Hub() override;

  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Where connections' events go (joins, leaves, refusals with their code); nullptr (the
  // default): nowhere. `log` must outlive the Hub.
  void set_event_log(EventLog* log) { events_ = log; }
  // Where the backend's events go (webhooks: joins, leaves, connections, published messages);
  // nullptr (the default): nowhere. `events` must outlive the Hub.
  void set_backend_events(BackendEvents* events) { backend_ = events; }
  // Where chat messages and durable app events from members (and users sending over HTTP) are
  // asked about before they are published (--publish-hook); nullptr (the default): nowhere.
  // `post` runs a function on this Hub's thread (the worker's loop): verdicts come back through
  // it. While a message waits for its verdict, the room's later messages from this Hub wait
  // behind it (the store numbers them in the order they came); see docs/architecture.md.
  // `hook` must outlive the Hub, or be stopped before it.
  void set_publish_hook(PublishHook* hook, std::function<void(std::function<void()>)> post) {
    hook_ = hook;
    post_ = std::move(post);
  }

  // A WebSocket connection was accepted on the chat endpoint; sends it
  // connection_established with its identity's userId (and username), or a fresh one.
  void connect(ConnectionId who, ConnectInfo info = {});

  // One complete text message from a client. Anything wrong gets an `error` reply;
  // the connection stays open.
  void receive(ConnectionId who, std::string_view text);

  // A binary message: relayed unchanged to the other binary members (JoinRoom::binary) of every
  // room the connection joined with binary; from a connection in no such room, answered with
  // `unsupported_binary`.
  void receive_binary(ConnectionId who, std::string_view data);

  // The connection is gone (closed or dropped): leaves every room, telling the others.
  void disconnect(ConnectionId who);

  // Periodic work: closes connections whose token has expired, sends coalesced user lists
  // that are due, expires typing signals and history past its age, and forgets rooms nobody
  // is in once nothing of theirs is in flight.
  // Call every few tens of milliseconds (the server: every 20 ms).
  void tick();

  // Thread-safe.
  HubStats stats() const;

  // ---- The server API (docs/api.md); on the Hub's thread, like everything above ----
  // Publishes `publication` as a member's message is published (the store numbers it and
  // makes it durable, the Exchange fans it out to every worker and node), loading the room
  // first if it is not open here, and calls `done` once, on this thread: after this Hub has
  // delivered it (so after the durable commit), with its seq; with the first seq for a retry
  // of its idempotency key; or with the error that refused it (a user's message: also
  // rate_limited, or invalid_field for a name that looks like a member's). An ephemeral app
  // event is delivered at once, answered with seq 0. `ticket` stands where a
  // sending connection would (the store reports the publication back to this Hub by it): an
  // id of this Hub's transport that no connection has, unique while the publication is out.
  void publish_from_server(ConnectionId ticket, ServerPublication publication,
                           ServerPublishDone done);
  // Closes every connection of user `user_id` on this Hub with `code` (the others see them
  // leave at once), event streams included; returns how many.
  std::size_t disconnect_user(std::string_view user_id, std::uint16_t code,
                              const std::string& reason);
  // Takes user `user_id`'s connections on this Hub out of `room`, telling each with an error
  // removed_from_room (`reason`); returns how many.
  std::size_t unsubscribe_user(std::string_view user_id, std::string_view room,
                               std::string_view reason);
  // The rooms open on this Hub and their members.
  std::vector<RoomView> room_views() const;

  // ---- Event streams (server-sent events, docs/api.md); on the Hub's thread ----
  // Connection `who` reads `room` without being a member of it (it is in no user_list and
  // sends nothing): from now on it gets every message the room's members get, in the same
  // order. With `since`, first each retained chat_message after that seq, so a stream resumed
  // from its last event id misses nothing and repeats nothing (as a join's `since`). Loads
  // the room first if it is not open here; if that fails, the connection is closed. A
  // connection reads one room; disconnect() ends it. `reader`: who opened it, so that the
  // stream is closed (close_code::kTokenExpired) when the token expires, and by
  // disconnect_user.
  void watch(ConnectionId who, std::string room, std::optional<std::uint64_t> since,
             StreamReader reader = {});

  // Long-polling (GET /api/rooms/{room}/poll): calls `done` once, on this thread, with the
  // room's retained chat messages after `since` as soon as it has any (at once if it has), or
  // with none at `deadline` (judged by tick()). `ticket` as for publish_from_server. Loads the
  // room first if it is not open here.
  void poll(ConnectionId ticket, std::string room, std::uint64_t since, base::SteadyTime deadline,
            PollDone done);

  // Deliveries this node's messages will cost once the store reports them back (in local
  // recipients, as published): the queue in front of the store. The transport adds it to its
  // own fan-out backlog to decide when to stop reading from senders, so a saturated store
  // pushes back on them instead of queuing seconds of messages in front of everyone's.
  // Thread-safe; approximate (a threshold is all it serves).
  std::size_t deliveries_awaiting_store() const {
    return awaiting_store_.load(std::memory_order_relaxed);
  }

 private:
  struct ParkedMessages {
    std::vector<std::string> texts;
    std::size_t bytes = 0;  // of texts
  };
  // Why a connection's reading is held (Sink::hold_reading), as bits of Session::holds: it
  // is released once no reason is left.
  enum Hold : std::uint8_t {
    kHeldBehindJoin = 1,  // its parked messages reached a bound (HubOptions::max_parked_*)
    kHeldByStore = 2,  // it published into a room with kMaxInFlight messages in flight
  };
  // A message with an `id` and a `ref`, sent to the store: its ack or error echoes the ref.
  struct AwaitedRef {
    std::string room;
    std::string client_id;
    std::string ref;
  };
  struct Session {
    // Who the connection is, shared with the Exchange and the other workers' Hubs (see
    // MemberInfo). Never null. Unnamed (empty username) until the first join, which makes
    // a new record; a token names it from the start.
    MemberRef member;
    std::vector<std::string> rooms;  // join order
    // The token's room patterns (Identity::rooms); null: any room.
    std::unique_ptr<const std::vector<std::string>> allowed_rooms;
    // The rooms it joined with binary (JoinRoom::binary), where its binary messages go.
    std::vector<std::string> binary_rooms;
    // The budgets the connection spends (they point into the session: sessions_ is
    // node-based, so a session never moves).
    RateBudget::Holder message_rate;
    RateBudget::Holder signal_rate;
    // One per app event type with a budget of its own (RateBudgets::events()); node-based too.
    std::map<std::string, RateBudget::Holder, std::less<>> event_rates;
    // While a join waits for its room to load: that join and everything the connection
    // sent after it, in order (null otherwise).
    std::unique_ptr<ParkedMessages> parked;
    // When the token stops being accepted, in Unix milliseconds; 0: never (anonymous, or a
    // token without expiry). Nonzero exactly while {expires_at_ms, id} is in expiries_.
    std::int64_t expires_at_ms = 0;
    // The token expired and the transport was asked to close: whatever the connection still
    // says is ignored, and it is in no room.
    bool expired = false;
    // The `ref`s of its messages with an `id` that the store has not answered yet: their ack
    // (or error) comes later and echoes it. Bounded by the in-flight bound of its rooms.
    std::vector<AwaitedRef> awaited_refs;
    // Its messages waiting for the publish hook's verdict (HubOptions::max_awaiting_verdict*).
    std::size_t awaiting_verdict = 0;
    // Hold bits: while nonzero, the transport reads nothing more from it.
    std::uint8_t holds = 0;
  };
  // A publication waiting for the publish hook's verdict, in its room's gate.
  struct Gated {
    std::uint64_t ticket = 0;  // what the verdict names
    Publication publication;
    std::optional<PublishVerdict> verdict;  // nullopt: not answered yet
  };
  // Members here and elsewhere are listed (user_list) in the order this Hub learned of them,
  // which is their join order but for joins on other workers or nodes a moment apart: `joined`
  // counts over the Hub (next_joined_).
  struct Member {
    ConnectionId connection;
    const Session* session;  // owned by sessions_; node-based, so the address is stable
    std::uint64_t joined;
    bool binary = false;  // joined with binary: receives the room's binary messages
    bool batch = false;  // joined with batch: receives the room's messages in message_batch
  };
  // A member on another worker or node: its record, shared with whoever reported it.
  struct Remote {
    MemberRef member;
    std::uint64_t joined = 0;
  };
  // A member gone from a room, to be announced at `due` unless they return (rejoin_grace).
  struct Departure {
    std::string key;  // presence_key() of the member
    std::string username;
    base::SteadyTime due;
  };
  // A retained message: its JSON as members received it, ready to replay.
  struct HistoryEntry {
    std::uint64_t seq;
    std::int64_t timestamp_ms;
    std::string payload;
  };
  struct Room {
    std::string name;
    std::vector<Member> members;  // join order
    std::vector<Remote> remote_members;  // on other nodes (cluster), join order
    // Users on other nodes shown as typing here: their "left" ends it (a node that dies
    // sends no typing_stop of its own).
    std::vector<std::string> remote_typing;
    // Members gone from the room whose leave is not announced yet (HubOptions::rejoin_grace),
    // oldest first.
    std::vector<Departure> departures;
    MemberSnapshot snapshot;  // the connections of `members`, for broadcast
    MemberSnapshot binary_snapshot;  // those of them that joined with binary
    // Those that joined with batch, and the others (the same pointer as `snapshot` while
    // nobody batches): room messages go to `live` at once and to `batching` in batches.
    MemberSnapshot batching_snapshot;
    MemberSnapshot live_snapshot;
    // Room messages waiting for the batching members, oldest first, and when the first came.
    std::vector<std::string> batch;
    base::SteadyTime batch_started{};
    std::uint64_t last_seq = 0;  // the newest message delivered to the room
    std::deque<HistoryEntry> history;  // the retained window, oldest first
    // Messages from this Hub published and not yet reported back, and the local members
    // they had when published (what their delivery will cost).
    std::size_t in_flight = 0;
    std::size_t in_flight_recipients = 0;
    // Senders held (kHeldByStore) since in_flight reached kMaxInFlight; released once it is
    // down to half (landed()).
    std::vector<ConnectionId> held_senders;
    // Coalesced presence: a user_list is owed since a membership change.
    bool user_list_owed = false;
    base::SteadyTime user_list_sent_at{};
    // Connections that are typing, and when they last said so.
    std::unordered_map<ConnectionId, base::SteadyTime> typing;
    // Event streams reading the room (watch()): in the snapshot, not members.
    std::vector<ConnectionId> watchers;
    // Long-polls waiting for the room's next message (poll()), by ticket.
    std::vector<ConnectionId> pollers;
    // This Hub's publications waiting for the publish hook, in the order they came: each goes
    // to the store (or is refused) once it and all before it have their verdict. Counted in
    // in_flight, so the room stays open while they wait.
    std::deque<Gated> gate;
  };

  void handle(ConnectionId who, Session& session, JoinRoom& msg);
  void handle(ConnectionId who, Session& session, LeaveRoom& msg);
  void handle(ConnectionId who, Session& session, ChatMessage& msg);
  void handle(ConnectionId who, Session& session, Typing& msg);
  void handle(ConnectionId who, Session& session, AppEvent& msg);
  void handle(ConnectionId who, Session& session, DirectMessage& msg);
  void handle(ConnectionId who, Session& session, DirectHistory& msg);
  void handle(ConnectionId who, Session& session, ListConversations& msg);
  // Whether user `user_id` has a connection here or elsewhere that this Hub knows of.
  bool may_reach_user(std::string_view user_id) const;
  // A stored direct message, to both of its users' connections here but `origin` (which gets
  // the ack, if the message had an id).
  void deliver_direct(const StoredMessage& message, ConnectionId origin);
  // Conversations one `conversations` reply lists at most (the newest).
  static constexpr std::size_t kMaxConversationsListed = 1000;
  void handle(ConnectionId who, Session& session, const Refresh& msg,
              std::optional<AuthResult> verdict);
  // The refresh's verdict, when `decoded` is a refresh this Hub can verify; else nullopt.
  std::optional<AuthResult> verify_refresh(
      const std::variant<ClientMessage, ProtocolError>& decoded) const;
  // A token's deadline in Unix milliseconds, clamped so that absurd dates cannot overflow.
  static std::int64_t token_deadline_ms(std::int64_t unix_s);
  // Files the session under its token's new deadline (expires_at_unix_s, 0: never).
  void set_expiry(ConnectionId who, Session& session, std::int64_t expires_at_unix_s);
  // Closes the connections whose deadline has passed (earliest first).
  void expire_tokens(std::int64_t now_ms);

  void leave(ConnectionId who, Session& session, const std::string& room_name);
  // Handles one client message for `session`, or parks it behind a join that waits for
  // its room (see Session::parked). `verdict`: a refresh's token, verified before the lock
  // (nullopt: verified here, if it is a refresh).
  // `ref`: the request's (decode_client_message), echoed on the replies it causes.
  void dispatch(ConnectionId who, Session& session, std::string_view text,
                std::variant<ClientMessage, ProtocolError> decoded, std::string_view ref,
                std::optional<AuthResult> verdict = std::nullopt);
  // Handles what a connection said while its join waited for its room, now loaded; with
  // `drop_join`, the join itself failed and only what came after it is handled.
  void resume(ConnectionId who, bool drop_join = false);
  // Keeps `text` in `session`'s parked messages; at a bound, holds the connection's reading.
  void park(ConnectionId who, Session& session, std::string_view text);
  // Takes the session's parked messages out of the count (null if there are none).
  std::unique_ptr<ParkedMessages> unpark(Session& session);
  // Whether `parked` is at one of the bounds past which the connection's reading is held.
  bool parked_at_bound(const ParkedMessages& parked) const;
  // Adds / removes `reason` from the session's holds; the transport is told when the first
  // comes and when the last goes.
  void hold(ConnectionId who, Session& session, Hold reason);
  void release(ConnectionId who, Session& session, Hold reason);
  // Hands a chat message (`event_type` empty) or a durable app event (its type; `text` its
  // fields) to the store. `now`: when the Hub accepted it (Publication::accepted_at).
  void publish_chat(Room& room, ConnectionId who, Session& session, std::string_view text,
                    const std::optional<std::string>& id, base::SteadyTime now,
                    std::string_view event_type = {});
  // Sends a room message (a chat message, an app event) to the room's members but `except`:
  // at once, or into the batch of the members that batch. `delivery`: what the transport
  // measures of a stored message sent at once (see Sink::broadcast_message).
  void send_to_room(Room& room, std::string payload, ConnectionId except,
                    const Delivery& delivery = {});
  // Sends an ephemeral app event (as encode_app_event wrote it) to the room but `except`,
  // conflated per sender if its type says so.
  void send_event_to_room(Room& room, std::string payload, ConnectionId except);
  // Sends the room's waiting batch, if any, to its batching members.
  void flush_batch(Room& room);
  // Sends a message, numbered, to the room (but `except`) and keeps it in history.
  void deliver(Room& room, HistoryEntry entry, ConnectionId except, const Delivery& delivery);
  // Hands `publication` (counted in room.in_flight already) to the store, or with a publish
  // hook and `ask`, to the hook first, at the end of the room's gate.
  void submit(Room& room, Publication publication, bool ask);
  // Whether one more message of connection `who` (kNoConnection: a server publication) may
  // wait for a verdict; if not, says so (the room and `id`) and returns false.
  bool may_wait_for_verdict(ConnectionId who, std::string_view room, std::string_view id);
  // The hook's verdict on publication `ticket` of room `room_name` (on this Hub's thread).
  void on_verdict(const std::string& room_name, std::uint64_t ticket, PublishVerdict verdict);
  // Publishes or refuses what heads the room's gate with its verdict, in order.
  void release_gate(Room& room);
  // Sends `payload` to every connection of `user_id` on this Hub but `except`; returns how
  // many.
  std::size_t send_to_user(std::string_view user_id, const std::string& payload,
                           ConnectionId except);
  // A joiner's history: what followed `since`, or the recent messages. With the join's
  // `ref`, the `joined` reply carrying it and the room's state; without, `history` (if any).
  void send_history(ConnectionId who, const Room& room, std::optional<std::uint64_t> since,
                    std::string_view ref);
  // Who a message's `id` belongs to (see idempotency_key in hub.cpp).
  static std::string sender_key(const Session& session);
  // A token's user as the rate budgets and the idempotency keys name them: a sender_key (the
  // user's connections and their HTTP sends are one sender, and spend one budget).
  static std::string user_key(std::string_view user_id);
  // The message the chapter answers a rate-limited client with.
  static constexpr std::string_view kRateLimitedText = "Rate limit exceeded. Please slow down.";
  void remember(Room& room, HistoryEntry entry);
  void forget_oldest(Room& room);
  void expire_history(Room& room, std::int64_t now_ms);
  bool evictable(const Room& room) const;
  // One of this node's messages in `room` came back from the store (stored, a duplicate, or
  // refused): it is no longer in flight.
  void landed(Room& room);
  void forget(std::unordered_map<std::string, Room>::iterator room);
  // Messages from this node a room may have in flight: a slow or failing store must not grow
  // memory without bound. A member's message at the bound is still taken, and its
  // connection's reading held until half of them are back (kHeldByStore); the server API,
  // which has no stream to hold, is refused (`unavailable`).
  static constexpr std::size_t kMaxInFlight = 10'000;
  Room& install_room(const std::string& name, RoomHistory history);
  // Whether someone in `room` other than the joiner's own user goes by a name that looks like
  // `username` (the same confusable skeleton). See hub.cpp for who counts as the same user.
  bool looks_like_a_member(const Room& room, const MemberInfo& joiner) const;
  // HistoryStore::Listener
  void on_loaded(std::string_view room, RoomHistory history) override;
  void on_committed(StoredMessage message, ConnectionId origin) override;
  void on_duplicate(const Publication& publication, std::uint64_t seq) override;
  void on_refused(const Publication& publication, std::string_view reason,
                  std::string_view code) override;
  void on_load_failed(std::string_view room, std::string_view reason) override;
  void on_history_reset(std::string_view room, std::uint64_t first_seq) override;
  // Presence::Listener
  void on_member_joined(std::string_view room, const MemberRef& member) override;
  void on_member_left(std::string_view room, const MemberRef& member) override;
  void on_typing(std::string_view room, std::string_view user_id, std::string_view username,
                 bool started) override;
  void on_relayed(std::string_view room, const std::shared_ptr<const std::string>& payload,
                  bool binary) override;
  // Members on every node: what user_list shows and what its pacing counts.
  static std::size_t member_count(const Room& room) {
    return room.members.size() + room.remote_members.size();
  }
  void stop_typing(Room& room, ConnectionId who, const Session& session);
  // "NAME joined the chat" to the room's members here (but `except`), unless it is the return
  // of a member whose leave is not announced yet, or the Hub is still in its starting grace.
  void announce_arrival(Room& room, const MemberInfo& member, ConnectionId except);
  // "NAME left the chat" to the room's members here, once the rejoin grace has passed.
  void announce_departure(Room& room, const MemberInfo& member);
  // Announces the departures whose grace has passed.
  void announce_departures_due(Room& room, base::SteadyTime now);
  // Who returns to a room: a token's user by their id; an anonymous user, whose reconnection
  // gets a new id, by their name (unique in the room: see looks_like_a_member).
  static std::string presence_key(const MemberInfo& member);
  void send_user_list(Room& room);
  // The room's users as user_list names them: each user once, in the order they joined.
  std::vector<UserEntry> room_users(const Room& room) const;
  void rebuild_snapshot(Room& room);
  std::chrono::milliseconds user_list_interval(const Room& room) const;
  // An error to `who`; it echoes the `ref` of the request being handled if that is who's.
  // `field`: the field at fault of an invalid_field; `retry_after`: a rate_limited error's wait.
  void send_error(ConnectionId who, std::string_view code, std::string_view message,
                  std::string_view field = {},
                  std::optional<std::chrono::milliseconds> retry_after = {});
  // The `ref` to echo on a reply to `who` now: the handled request's, if it is who's.
  std::string_view replying_ref(ConnectionId who) const {
    return who == replying_.who ? replying_.ref : std::string_view{};
  }
  // The ref an awaited ack or message error echoes (Session::awaited_refs), taken out.
  std::string take_awaited_ref(ConnectionId who, std::string_view room, std::string_view client_id);
  void count_error(std::string_view code);  // for /metrics
  // A direct_history or conversations request the store could not answer: `unavailable`,
  // with the request's `ref`.
  void refuse_unread(ConnectionId who, std::string_view ref);
  bool admit_signal(ConnectionId who, Session& session);
  std::string new_user_id();
  bool in_room(const Session& session, std::string_view room) const;
  // Whether user `user_id` has a connection in `room` besides local connection `except` and
  // remote record `except_remote`: presence is per user (a token's user with two tabs joins
  // once and leaves with the last).
  static bool user_present(const Room& room, std::string_view user_id,
                           ConnectionId except = kNoConnection,
                           const MemberInfo* except_remote = nullptr);

  // The server API's publications (publish_from_server), by ticket, until answered.
  struct ServerPublish {
    ServerPublication publication;  // an event's: `message` its fields
    ServerPublishDone done;
    std::string event_type;  // a durable app event's; empty: a chat message
  };
  // Hands a waiting server publication to the store (its room is open).
  void publish_server(Room& room, ConnectionId ticket);
  // Delivers the backend's ephemeral app event `event` (its room need not be open here) here
  // and, through presence_, on the other workers and nodes.
  void relay_server_event(ConnectionId ticket, const ServerPublication& publication,
                          const AppEvent& event);
  // Answers the server publication `ticket` names; false if it names none (a connection).
  bool answer_server_publish(ConnectionId ticket, ServerPublishResult result);
  // An event stream (watch()) and where it is in following its room.
  struct Watcher {
    std::string room;
    std::optional<std::uint64_t> since;
    std::string user_id;  // the token's; empty: anonymous
    // As Session::expires_at_ms: nonzero exactly while {expires_at_ms, id} is in expiries_.
    std::int64_t expires_at_ms = 0;
    bool closing = false;  // closed by the Hub (expiry, disconnect_user): nothing more to do
  };
  // The room is open: `who` starts reading it (its retained messages after `since` first).
  void attach_watcher(Room& room, ConnectionId who);
  // Ends event stream `who`; false if `who` is not one.
  bool unwatch(ConnectionId who);
  struct Poller {
    std::string room;
    std::uint64_t since = 0;
    base::SteadyTime deadline;
    PollDone done;
  };
  // The room is open: answers poll `ticket` now if the room has something after its `since`,
  // else keeps it waiting in the room.
  void attach_poller(Room& room, ConnectionId ticket);
  // Answers poll `ticket` with `room`'s messages after its since (none if `room` is null) and
  // forgets it.
  void answer_poller(ConnectionId ticket, const Room* room);
  // Answers every poll whose deadline has passed (tick()).
  void expire_polls(base::SteadyTime now);

  // Whether events_ wants events now (the text of one is built only then).
  bool noting() const { return events_ != nullptr && events_->enabled(); }

  Sink& sink_;
  EventLog* events_ = nullptr;
  BackendEvents* backend_ = nullptr;
  PublishHook* hook_ = nullptr;
  std::function<void(std::function<void()>)> post_;
  std::uint64_t next_verdict_ticket_ = 0;
  std::size_t awaiting_verdict_ = 0;  // over every room's gate
  const base::Clock& clock_;
  const HubOptions options_;
  HistoryStore& store_;
  Presence* const presence_;
  const Authenticator* const authenticator_;
  std::unique_ptr<RateBudgets> own_budgets_;  // when given none
  RateBudgets& budgets_;

  std::unordered_map<ConnectionId, Session> sessions_;
  std::unordered_map<std::string, Room> rooms_;
  // This Hub's connections by user id, for direct messages (a user may have several).
  // (Conversations, chat/conversation.h, keep no state here: their messages are numbered and
  // kept by the store and delivered to these connections as they are reported.)
  std::unordered_multimap<std::string, ConnectionId> by_user_;
  // What decode_client_message relays: options_.app_events, or nullptr if it allows none.
  const AppEvents* app_events_ = nullptr;
  // Rooms the store is loading, and the connections whose joins wait for each.
  std::unordered_map<std::string, std::vector<ConnectionId>> loading_;
  // The sessions and event streams whose token expires, by deadline (Session::expires_at_ms,
  // Watcher::expires_at_ms): a tick looks only at the ones due, however many there are.
  std::set<std::pair<std::int64_t, ConnectionId>> expiries_;
  // For stats(), read from other threads: written on errors only, never on the message path.
  mutable std::mutex stats_mutex_;
  std::map<std::string, std::uint64_t, std::less<>> error_counts_;
  std::atomic<std::size_t> connection_count_{0};
  std::atomic<std::size_t> room_count_{0};
  std::size_t parked_bytes_ = 0;  // over every session's parked messages
  // Joins before this are not announced (HubOptions::rejoin_grace).
  base::SteadyTime quiet_until_{};
  // The request dispatch() is handling, and its `ref`: the immediate replies to `who` echo it
  // (a reply to another connection meanwhile, say a load failing for a parked join, does not).
  struct Replying {
    ConnectionId who = kNoConnection;
    std::string_view ref;
  } replying_;
  std::uint64_t next_joined_ = 0;  // see Member::joined
  std::atomic<std::size_t> awaiting_store_{0};  // see deliveries_awaiting_store()
  std::mt19937_64 random_;
  std::unordered_map<ConnectionId, ServerPublish> server_publishes_;
  std::unordered_map<ConnectionId, Watcher> watchers_;
  std::unordered_map<ConnectionId, Poller> pollers_;
};

}  // namespace roomcast::chat
