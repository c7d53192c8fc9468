#include "chat/hub.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <random>
#include <stdexcept>
#include <type_traits>
#include <unordered_set>
#include <utility>

#include "chat/unicode_text.h"

namespace roomcast::chat {

namespace {

// Idempotency: a resent `id` is recognised per sender: an authenticated user by the token's
// user id, an anonymous one by name (their userId changes with every connection, and a
// resend usually comes after a reconnect), so clients must make ids unique, e.g. UUIDs;
// docs/protocol.md says so. (The key itself: chat::idempotency_key.)

constexpr std::string_view kTokenExpiredReason = "Token expired";

// An app event as encode_app_event wrote it begins {"type":T,"room":R,"userId":U,"username":
// and neither T, R nor U can hold that last name unescaped: that beginning names the stream
// (one sender's events of one type in one room) whose latest value conflation keeps. Returns
// the type and the beginning, or nothing for a payload of another shape.
std::optional<std::pair<std::string_view, std::string_view>> event_stream(
    std::string_view payload) {
  constexpr std::string_view kStart = R"({"type":")";
  constexpr std::string_view kUsername = R"(,"username":)";
  if (!payload.starts_with(kStart)) return std::nullopt;
  const std::size_t type_end = payload.find('"', kStart.size());
  const std::size_t stream_end = payload.find(kUsername);
  if (type_end == std::string_view::npos || stream_end == std::string_view::npos) {
    return std::nullopt;
  }
  return std::pair{payload.substr(kStart.size(), type_end - kStart.size()),
                   payload.substr(0, stream_end)};
}

// What a reader of a retained window (oldest first, seqs increasing, the newest ever
// `last_seq`) gets: from `since`, exactly what followed it, and whether that is everything
// (`recovered`: false when the window no longer reaches back to since + 1, or when `since` is
// beyond last_seq, a history this server lost, and then the recent ones); without, the
// newest `recent`. Returns the index of the first entry to send, and `recovered` (only with
// `since`).
template <typename Window, typename SeqOf>
std::pair<std::size_t, std::optional<bool>> slice_window(const Window& kept, SeqOf seq_of,
                                                         std::uint64_t last_seq,
                                                         std::optional<std::uint64_t> since,
                                                         std::size_t recent) {
  if (since && *since <= last_seq) {
    const auto after =
        std::upper_bound(kept.begin(), kept.end(), *since,
                         [&](std::uint64_t seq, const auto& entry) { return seq < seq_of(entry); });
    const bool recovered =
        *since == last_seq || (!kept.empty() && seq_of(kept.front()) <= *since + 1);
    return {static_cast<std::size_t>(after - kept.begin()), recovered};
  }
  const std::size_t first = kept.size() - std::min(kept.size(), recent);
  return {first, since ? std::optional<bool>(false) : std::nullopt};
}

// Sets `slot` to `value` for a scope, and puts back what it held.
template <typename T>
class Scoped {
 public:
  Scoped(T& slot, T value) : slot_(slot), saved_(std::exchange(slot, std::move(value))) {}
  ~Scoped() { slot_ = std::move(saved_); }
  Scoped(const Scoped&) = delete;
  Scoped& operator=(const Scoped&) = delete;

 private:
  T& slot_;
  T saved_;
};

}  // namespace

RateBudgets::Policies rate_policies(const HubOptions& options) {
  RateBudgets::Policies policies;
  policies.messages = options.message_rate;
  policies.address_messages = options.address_message_rate;
  policies.signals = options.signal_rate;
  policies.address_signals = options.address_signal_rate;
  for (const auto& [type, treatment] : options.app_events.types()) {
    if (treatment.rate) policies.events.emplace(type, *treatment.rate);
  }
  return policies;
}

std::int64_t Hub::token_deadline_ms(std::int64_t unix_s) {
  constexpr std::int64_t kMaxSeconds = std::numeric_limits<std::int64_t>::max() / 1000;
  return std::clamp(unix_s, -kMaxSeconds, kMaxSeconds) * 1000;
}

std::string Hub::user_key(std::string_view user_id) {
  return "user:" + std::string(user_id);
}

std::string Hub::sender_key(const Session& session) {
  const MemberInfo& member = *session.member;
  return member.authenticated() ? user_key(member.user_id()) : "name:" + member.username();
}

Hub::Hub(Sink& sink, const base::Clock& clock, HubOptions options, HistoryStore& store,
         Presence* presence, const Authenticator* authenticator, RateBudgets* budgets)
    : sink_(sink),
      clock_(clock),
      options_(options),
      store_(store),
      presence_(presence),
      authenticator_(authenticator),
      own_budgets_(budgets != nullptr
                       ? nullptr
                       : std::make_unique<RateBudgets>(rate_policies(options), clock)),
      budgets_(budgets != nullptr ? *budgets : *own_budgets_),
      quiet_until_(clock.now() + options.rejoin_grace),
      random_(std::random_device{}()) {
  if (!options_.app_events.empty()) app_events_ = &options_.app_events;
  store_.set_listener(this);
  if (presence_ != nullptr) presence_->set_presence_listener(this);
}

Hub::~Hub() {
  if (presence_ != nullptr) presence_->set_presence_listener(nullptr);
  store_.set_listener(nullptr);
}

void Hub::connect(ConnectionId who, ConnectInfo info) {
  auto [it, inserted] = sessions_.try_emplace(who);
  if (!inserted) return;
  connection_count_.fetch_add(1, std::memory_order_relaxed);
  Session& session = it->second;
  const std::string budget_key = info.identity ? user_key(info.identity->user_id) : std::string();
  budgets_.messages().attach(session.message_rate, budget_key, info.peer_address);
  budgets_.signals().attach(session.signal_rate, budget_key, info.peer_address);
  for (const auto& [type, budget] : budgets_.events()) {
    budget->attach(session.event_rates[type], budget_key, info.peer_address);
  }
  if (info.identity) {
    Identity& identity = *info.identity;
    // A token's name is kept, and compared, as a join's would be. check_identity bounds the
    // id (MemberInfo's cut only keeps a broken caller from overflowing).
    session.member = MemberInfo::make(identity.user_id, to_nfc(identity.username),
                                      /*authenticated=*/true);
    if (identity.rooms) {
      session.allowed_rooms =
          std::make_unique<const std::vector<std::string>>(std::move(*identity.rooms));
    }
    set_expiry(who, session, identity.expires_at_unix_s);
  } else {
    session.member = MemberInfo::make(new_user_id(), std::string(),
                                      /*authenticated=*/false);
  }
  if (noting()) {
    events_->note(who, "connected as user " + std::string(session.member->user_id()) +
                           (session.member->authenticated() ? " (token)" : " (anonymous)"));
  }
  const std::string user_id(session.member->user_id());
  by_user_.emplace(user_id, who);
  if (presence_ != nullptr) presence_->user_connected(who, user_id);
  if (backend_ != nullptr) backend_->user_connected(*session.member);
  sink_.send(who, encode_connection_established(user_id));
}

void Hub::receive(ConnectionId who, std::string_view text) {
  std::string ref;
  auto decoded = decode_client_message(text, options_.limits, app_events_, &ref);
  std::optional<AuthResult> verdict = verify_refresh(decoded);
  auto it = sessions_.find(who);
  if (it == sessions_.end()) return;
  dispatch(who, it->second, text, std::move(decoded), ref, std::move(verdict));
}

std::optional<AuthResult> Hub::verify_refresh(
    const std::variant<ClientMessage, ProtocolError>& decoded) const {
  const auto* message = std::get_if<ClientMessage>(&decoded);
  const auto* refresh = message != nullptr ? std::get_if<Refresh>(message) : nullptr;
  if (refresh == nullptr || authenticator_ == nullptr) return std::nullopt;
  return authenticator_->verify(refresh->token);
}

void Hub::dispatch(ConnectionId who, Session& session, std::string_view text,
                   std::variant<ClientMessage, ProtocolError> decoded, std::string_view ref,
                   std::optional<AuthResult> verdict) {
  // Closing for an expired token: nothing it says counts any more (parked messages included).
  if (session.expired) return;
  // What this request causes echoes its ref; restored after, since handling it may handle
  // another connection's parked messages (a room that loads synchronously).
  const Scoped<Replying> replying(replying_, {who, ref});
  if (session.parked) {
    // A join of this connection waits for its room: what it says next waits behind it,
    // so a chat_message right after a join_room still finds the connection in the room.
    park(who, session, text);
    return;
  }
  if (auto* error = std::get_if<ProtocolError>(&decoded)) {
    send_error(who, error->code, error->message, error->field);
    return;
  }
  auto& message = std::get<ClientMessage>(decoded);
  if (const auto* join = std::get_if<JoinRoom>(&message);
      join != nullptr && !rooms_.contains(join->room)) {
    session.parked = std::make_unique<ParkedMessages>();
    park(who, session, text);
    auto [waiting, first] = loading_.try_emplace(join->room);
    waiting->second.push_back(who);
    // Last: a synchronous store reports the room loaded from inside load().
    if (first) store_.load(join->room);
    return;
  }
  if (const auto* refresh = std::get_if<Refresh>(&message)) {
    handle(who, session, *refresh, std::move(verdict));
    return;
  }
  std::visit(
      [&](auto& msg) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(msg)>, Refresh>) {
          handle(who, session, msg);
        }
      },
      message);
}

void Hub::resume(ConnectionId who, bool drop_join) {
  const auto it = sessions_.find(who);
  if (it == sessions_.end()) return;  // disconnected while it waited
  Session& session = it->second;
  const std::unique_ptr<ParkedMessages> parked = unpark(session);
  if (!parked) return;
  // In order; a later join may wait for another room, parking the rest again.
  for (std::size_t i = drop_join ? 1 : 0; i < parked->texts.size(); ++i) {
    const std::string& text = parked->texts[i];
    std::string ref;
    auto decoded = decode_client_message(text, options_.limits, app_events_, &ref);
    dispatch(who, session, text, std::move(decoded), ref);
  }
  // What was held behind the join is read again, unless a later join's wait is at its bound.
  if (!session.parked || !parked_at_bound(*session.parked)) {
    release(who, session, kHeldBehindJoin);
  }
}

void Hub::park(ConnectionId who, Session& session, std::string_view text) {
  // Kept even past a bound: it was read already. Reading stops here instead, so the next
  // message is not even parsed until the join is answered.
  ParkedMessages& parked = *session.parked;
  parked.texts.emplace_back(text);
  parked.bytes += text.size();
  parked_bytes_ += text.size();
  if (parked_at_bound(parked)) hold(who, session, kHeldBehindJoin);
}

bool Hub::parked_at_bound(const ParkedMessages& parked) const {
  return parked.texts.size() >= options_.max_parked_messages ||
         parked.bytes >= options_.max_parked_bytes ||
         parked_bytes_ >= options_.max_parked_bytes_total;
}

void Hub::hold(ConnectionId who, Session& session, Hold reason) {
  const bool first = session.holds == 0;
  session.holds |= reason;
  if (first) sink_.hold_reading(who, true);
}

void Hub::release(ConnectionId who, Session& session, Hold reason) {
  if ((session.holds & reason) == 0) return;
  session.holds &= static_cast<std::uint8_t>(~reason);
  if (session.holds == 0) sink_.hold_reading(who, false);
}

std::unique_ptr<Hub::ParkedMessages> Hub::unpark(Session& session) {
  if (session.parked) parked_bytes_ -= session.parked->bytes;
  return std::move(session.parked);
}

void Hub::receive_binary(ConnectionId who, std::string_view data) {
  const auto it = sessions_.find(who);
  if (it == sessions_.end() || it->second.expired) return;
  Session& session = it->second;
  if (session.binary_rooms.empty()) {
    // Also while a join with binary waits for its room: binary messages are not parked.
    send_error(who, error_code::kUnsupportedBinary,
               "Binary messages go to the rooms joined with \"binary\": true; this connection "
               "is in none (send JSON text, or join with binary and wait for the welcome)");
    return;
  }
  if (data.size() > options_.limits.max_binary_bytes) {
    send_error(who, error_code::kTooLarge,
               "A binary message must be at most " +
                   std::to_string(options_.limits.max_binary_bytes) + " bytes");
    return;
  }
  // A stream of positions, like typing: on the signal budget.
  if (!admit_signal(who, session)) return;
  // One copy, shared by this worker's fan-out and every other worker's.
  const auto payload = std::make_shared<const std::string>(data);
  for (const std::string& name : session.binary_rooms) {
    const Room& room = rooms_.at(name);
    sink_.broadcast_binary(room.binary_snapshot, *payload, who);
    if (presence_ != nullptr) presence_->relay(room.name, who, payload, /*binary=*/true);
  }
}

void Hub::disconnect(ConnectionId who) {
  if (unwatch(who)) return;
  auto it = sessions_.find(who);
  if (it == sessions_.end()) return;
  // Copy: leave() edits session.rooms while we walk it.
  const std::vector<std::string> rooms = it->second.rooms;
  for (const auto& room : rooms) leave(who, it->second, room);
  unpark(it->second);
  budgets_.messages().detach(it->second.message_rate);
  budgets_.signals().detach(it->second.signal_rate);
  for (auto& [type, holder] : it->second.event_rates) budgets_.event(type)->detach(holder);
  set_expiry(who, it->second, 0);
  const std::string user_id(it->second.member->user_id());
  for (auto [first, last] = by_user_.equal_range(user_id); first != last; ++first) {
    if (first->second == who) {
      by_user_.erase(first);
      break;
    }
  }
  if (presence_ != nullptr) presence_->user_disconnected(who, user_id);
  if (backend_ != nullptr) backend_->user_disconnected(*it->second.member);
  sessions_.erase(it);
  connection_count_.fetch_sub(1, std::memory_order_relaxed);
  if (noting()) events_->note(who, "disconnected");
}

void Hub::handle(ConnectionId who, Session& session, JoinRoom& msg) {
  const MemberInfo& named = *session.member;
  if (named.username().empty()) {
    if (!msg.username) {
      send_error(who, error_code::kInvalidField, "Field 'username' is required on the first join",
                 "username");
      return;
    }
  } else if (msg.username && *msg.username != named.username()) {
    send_error(who, error_code::kUsernameMismatch,
               "This connection's username is '" + named.username() +
                   "'; a connection keeps one username in every room");
    return;
  }
  if (in_room(session, msg.room)) {
    send_error(who, error_code::kAlreadyInRoom, "Already in room '" + msg.room + "'");
    return;
  }
  // The transport refuses anonymous connections under --require-auth before they get a
  // session, so only the room claims can still say no here.
  if (room_access(named.authenticated(), session.allowed_rooms.get(), /*require_auth=*/false,
                  msg.room) != RoomAccess::kAllowed) {
    send_error(who, error_code::kForbiddenRoom,
               "Your token does not allow joining room '" + msg.room + "'");
    return;
  }
  if (options_.max_rooms_per_connection != 0 &&
      session.rooms.size() >= options_.max_rooms_per_connection) {
    send_error(who, error_code::kTooManyRooms,
               "A connection may be in at most " +
                   std::to_string(options_.max_rooms_per_connection) + " rooms at once");
    return;
  }
  if (!admit_signal(who, session)) return;
  // Names that look alike deceive only side by side: a name is refused in a room where
  // someone else looks the same, and taken where nobody does. A connection computes its
  // skeleton once (MemberInfo keeps its hash); a join costs one comparison per member.
  MemberRef joiner = session.member;
  if (named.username().empty()) {
    joiner = MemberInfo::make(named.user_id(), *msg.username, named.authenticated());
  }
  if (const auto existing = rooms_.find(msg.room);
      existing != rooms_.end() && looks_like_a_member(existing->second, *joiner)) {
    send_error(who, error_code::kInvalidField,
               "Field 'username' looks like the name of someone else in room '" + msg.room +
                   "'; choose another",
               "username");
    return;
  }
  // Only a join that succeeds names the connection.
  session.member = std::move(joiner);
  const MemberInfo& member = *session.member;

  // Open: a join waits for its room to load (see dispatch).
  Room& room = rooms_.at(msg.room);
  room.members.push_back({who, &session, ++next_joined_, msg.binary, msg.batch});
  rebuild_snapshot(room);
  session.rooms.push_back(msg.room);
  if (msg.binary) session.binary_rooms.push_back(msg.room);
  if (presence_ != nullptr) presence_->member_joined(room.name, who, session.member);

  if (noting())
    events_->note(who, "joined room '" + room.name + "' as '" + member.username() + "'");
  const std::int64_t now_ms = clock_.unix_ms();
  sink_.send(who, encode_system_message(room.name, "Welcome to " + room.name + "!", now_ms));
  if (!user_present(room, member.user_id(), who)) {
    if (backend_ != nullptr) backend_->user_joined(room.name, member);
    announce_arrival(room, member, who);
  }
  // With the membership, in one step: no live message of the room can come between the
  // history and the joiner's first live message.
  send_history(who, room, msg.since, replying_ref(who));
  room.user_list_owed = true;
}

void Hub::handle(ConnectionId who, Session& session, LeaveRoom& msg) {
  if (!in_room(session, msg.room)) {
    send_error(who, error_code::kNotInRoom, "Not in room '" + msg.room + "'");
    return;
  }
  // Not rate-limited: a user may always leave, and leaves cannot outnumber (limited) joins.
  leave(who, session, msg.room);
}

void Hub::handle(ConnectionId who, Session& session, ChatMessage& msg) {
  if (session.rooms.empty()) {
    send_error(who, error_code::kNotInRoom, "Join a room before sending messages");
    return;
  }
  // A message without `room` goes to every room the sender is in, and is kept in each one's
  // history: it costs one message of the budget per room, so that being in many rooms does
  // not multiply what one person can make the server store.
  const auto cost = static_cast<std::uint32_t>(msg.room ? 1 : session.rooms.size());
  const RatePolicy& policy = budgets_.messages().person_policy();
  if (policy.enabled() && cost > policy.max_events) {
    send_error(who, error_code::kInvalidField,
               "A message without 'room' goes to all " + std::to_string(cost) +
                   " of your rooms, more than " + std::to_string(policy.max_events) +
                   " messages a window allow: name a 'room'",
               "room");
    return;
  }
  // Every refused message is answered, as in the chapter: the client learns why its
  // message went nowhere.
  // The one clock read of a message: its budget, and when it was accepted (delivery latency).
  const base::SteadyTime now = clock_.now();
  if (budgets_.messages().admit(session.message_rate, now, cost) !=
      RateLimiter::Verdict::kAllowed) {
    send_error(who, error_code::kRateLimited, kRateLimitedText, {},
               budgets_.messages().retry_after(session.message_rate, now));
    return;
  }
  if (msg.room) {
    if (!in_room(session, *msg.room)) {
      send_error(who, error_code::kNotInRoom, "Not in room '" + *msg.room + "'");
      return;
    }
    publish_chat(rooms_.at(*msg.room), who, session, msg.message, msg.id, now);
    return;
  }
  // The chapter's semantics: a message goes to every room the sender is in.
  for (const auto& name : session.rooms) {
    publish_chat(rooms_.at(name), who, session, msg.message, msg.id, now);
  }
}

void Hub::handle(ConnectionId who, Session& session, Typing& msg) {
  if (!in_room(session, msg.room)) {
    send_error(who, error_code::kNotInRoom, "Not in room '" + msg.room + "'");
    return;
  }
  if (!admit_signal(who, session)) return;
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
    const MemberInfo& member = *session.member;
    sink_.broadcast(room.snapshot,
                    encode_typing(true, room.name, member.user_id(), member.username()), who);
    if (presence_ != nullptr) {
      presence_->typing(room.name, member.user_id(), member.username(), true);
    }
  }
}

void Hub::handle(ConnectionId who, Session& session, AppEvent& msg) {
  // Decoded only for an allowed type (decode_client_message was given app_events_).
  // An event with an `id` is refused naming its room and id, so that its sender can tell which
  // of its requests the error answers.
  const std::string id = msg.id.value_or("");
  const auto refuse = [&](std::string_view code, std::string_view text,
                          std::optional<std::chrono::milliseconds> retry_after = {}) {
    if (id.empty()) {
      send_error(who, code, text, {}, retry_after);
      return;
    }
    count_error(code);
    sink_.send(who, encode_message_error(code, text, msg.room, id, replying_ref(who), retry_after));
  };
  const AppEventType* treatment = options_.app_events.find(msg.type);
  if (treatment == nullptr) {
    refuse(error_code::kUnknownType, "Unknown message type '" + msg.type + "'");
    return;
  }
  if (!in_room(session, msg.room)) {
    refuse(error_code::kNotInRoom, "Not in room '" + msg.room + "'");
    return;
  }
  Room& room = rooms_.at(msg.room);
  // A type with a budget of its own (`rate=`) spends it, and neither the chat nor the signal
  // budget: an editor's or a game's stream of events is not throttled like people's messages.
  // Durable ones are stored like chat messages, so counted like them; ephemeral ones like typing.
  RateBudget* own = budgets_.event(msg.type);  // its holder was attached with the connection
  RateBudget& budget = own != nullptr       ? *own
                       : treatment->durable ? budgets_.messages()
                                            : budgets_.signals();
  RateBudget::Holder& holder = own != nullptr       ? session.event_rates[msg.type]
                               : treatment->durable ? session.message_rate
                                                    : session.signal_rate;
  if (treatment->durable) {
    // Stored like a chat message (and its delivery timed like one).
    const base::SteadyTime now = clock_.now();
    if (budget.admit(holder, now) != RateLimiter::Verdict::kAllowed) {
      refuse(error_code::kRateLimited, kRateLimitedText, budget.retry_after(holder, now));
      return;
    }
    publish_chat(room, who, session, msg.fields, msg.id, now, msg.type);
    return;
  }
  // Ephemeral: nothing to number or keep, so delivered now, here and (one shared copy) on the
  // other workers and nodes. Without a budget of its own it spends the signal budget, like
  // typing: a stream of positions or prices is state, not text.
  const base::SteadyTime now = clock_.now();
  switch (budget.admit(holder, now)) {
    case RateLimiter::Verdict::kAllowed:
      break;
    case RateLimiter::Verdict::kLimited:
      refuse(error_code::kRateLimited, kRateLimitedText, budget.retry_after(holder, now));
      return;
    case RateLimiter::Verdict::kBlocked:
      return;  // as for every signal: one error per block (admit_signal)
  }
  const MemberInfo& member = *session.member;
  auto payload = std::make_shared<const std::string>(
      encode_app_event(msg.type, room.name, member.user_id(), member.username(), msg.fields,
                       clock_.unix_ms(), std::nullopt));
  send_event_to_room(room, *payload, treatment->echo ? kNoConnection : who);
  if (presence_ != nullptr) presence_->relay(room.name, who, payload, /*binary=*/false);
}

void Hub::handle(ConnectionId who, Session& session, DirectMessage& msg) {
  const MemberInfo& member = *session.member;
  // Every refusal names the recipient (and the id): a client tells them from other errors.
  const auto refuse = [&](std::string_view code, std::string_view text,
                          std::optional<std::chrono::milliseconds> retry_after = {}) {
    count_error(code);
    sink_.send(who, encode_direct_error(code, text, msg.to, msg.id.value_or(""), replying_ref(who),
                                        retry_after));
  };
  // A direct message says who sent it by name: a connection is named by its token or its
  // first join.
  if (member.username().empty()) {
    refuse(error_code::kNotInRoom, "Join a room (it names you) before sending direct messages");
    return;
  }
  const base::SteadyTime now = clock_.now();
  if (budgets_.messages().admit(session.message_rate, now) != RateLimiter::Verdict::kAllowed) {
    refuse(error_code::kRateLimited, kRateLimitedText,
           budgets_.messages().retry_after(session.message_rate, now));
    return;
  }
  // Kept for a recipient who is away only when its sender has a token: an anonymous sender's
  // id dies with its connection, so it could never read the conversation again, and whoever
  // it names may be nobody at all.
  if (!member.authenticated() && !may_reach_user(msg.to)) {
    refuse(error_code::kUserOffline,
           "User '" + msg.to +
               "' is not connected; nothing was sent (messages to someone offline are kept "
               "only from users with a token)");
    return;
  }
  // Numbered and stored in the two users' conversation like a room's message (the store
  // recognises a resent id), then delivered (on_committed) to every connection of both.
  const std::string key = conversation_key(member.user_id(), msg.to);
  if (const std::string_view ref = replying_ref(who); msg.id && !ref.empty()) {
    session.awaited_refs.push_back({key, *msg.id, std::string(ref)});
  }
  store_.publish({key, clock_.unix_ms(), std::string(member.user_id()), member.username(),
                  std::move(msg.message), msg.id ? sender_key(session) : std::string(),
                  msg.id.value_or(""), who, now});
}

void Hub::handle(ConnectionId who, Session& session, DirectHistory& msg) {
  // A read of the store, like a join's: on the signals' budget.
  if (!admit_signal(who, session)) return;
  // The asker is always one of the two: nobody can name another pair's conversation.
  const std::string key = conversation_key(session.member->user_id(), msg.with);
  // The whole retained window: the slice is cut here, as for a join (send_history).
  store_.read(key, 0, options_.history_size,
              [this, who, with = msg.with, since = msg.since,
               ref = std::string(replying_ref(who))](std::optional<RoomHistory> history) {
                if (!sessions_.contains(who)) return;
                if (!history) return refuse_unread(who, ref);
                const auto& kept = history->messages;
                const auto [first, recovered] = slice_window(
                    kept, [](const StoredMessage& m) { return m.seq; }, history->last_seq, since,
                    options_.history_on_join);
                std::vector<std::string> payloads;
                payloads.reserve(kept.size() - first);
                for (std::size_t i = first; i < kept.size(); ++i) {
                  payloads.push_back(encode_stored(kept[i]));
                }
                const std::vector<std::string_view> views(payloads.begin(), payloads.end());
                sink_.send(who,
                           encode_direct_history(with, history->last_seq, views, recovered, ref));
              });
}

void Hub::handle(ConnectionId who, Session& session, ListConversations&) {
  if (!admit_signal(who, session)) return;
  store_.conversations(
      session.member->user_id(), kMaxConversationsListed,
      [this, who,
       ref = std::string(replying_ref(who))](std::optional<std::vector<ConversationSummary>> list) {
        if (!sessions_.contains(who)) return;
        if (!list) return refuse_unread(who, ref);
        std::vector<ConversationEntry> entries;
        entries.reserve(list->size());
        for (const ConversationSummary& c : *list) {
          entries.push_back({c.peer_id, c.peer_username, c.last_seq, c.last_timestamp_ms});
        }
        sink_.send(who, encode_conversations(entries, ref));
      });
}

void Hub::refuse_unread(ConnectionId who, std::string_view ref) {
  count_error(error_code::kUnavailable);
  sink_.send(who, encode_error(error_code::kUnavailable,
                               "History storage cannot be reached right now; try again", {}, ref));
}

bool Hub::may_reach_user(std::string_view user_id) const {
  return by_user_.contains(std::string(user_id)) ||
         (presence_ != nullptr && presence_->may_reach_user(user_id));
}

void Hub::deliver_direct(const StoredMessage& message, ConnectionId origin) {
  const auto users = conversation_users(message.room);
  if (!users) return;
  // Both users' connections here (the sender's other tabs too); the sending connection has
  // its ack instead.
  const std::string payload = encode_stored(message);
  send_to_user(users->first, payload, origin);
  if (users->second != users->first) send_to_user(users->second, payload, origin);
  if (origin == kNoConnection || message.client_id.empty()) return;
  sink_.send(origin, encode_direct_ack(conversation_peer(message.room, message.user_id),
                                       message.client_id, message.seq,
                                       take_awaited_ref(origin, message.room, message.client_id)));
}

std::size_t Hub::send_to_user(std::string_view user_id, const std::string& payload,
                              ConnectionId except) {
  std::size_t reached = 0;
  for (auto [first, last] = by_user_.equal_range(std::string(user_id)); first != last; ++first) {
    if (first->second == except) continue;
    const auto session = sessions_.find(first->second);
    if (session == sessions_.end() || session->second.expired) continue;
    sink_.send(first->second, payload);
    ++reached;
  }
  return reached;
}

void Hub::on_relayed(std::string_view room_name, const std::shared_ptr<const std::string>& payload,
                     bool binary) {
  const auto it = rooms_.find(std::string(room_name));
  if (it == rooms_.end() || it->second.members.empty()) return;
  // From another worker or node: the sender is not here, so echo or not, all get it.
  if (binary) {
    sink_.broadcast_binary(it->second.binary_snapshot, *payload, kNoConnection);
    return;
  }
  send_event_to_room(it->second, *payload, kNoConnection);
}

void Hub::send_event_to_room(Room& room, std::string payload, ConnectionId except) {
  // Batching members get a batch shared by all of them: nothing of it is conflated.
  const bool batching = room.batching_snapshot && !room.batching_snapshot->empty();
  if (!batching) {
    if (const auto stream = event_stream(payload)) {
      const AppEventType* treatment = options_.app_events.find(stream->first);
      if (treatment != nullptr && treatment->conflate) {
        const std::uint64_t key = std::hash<std::string_view>{}(stream->second);
        sink_.broadcast_latest(room.snapshot, std::move(payload), except, key);
        return;
      }
    }
  }
  send_to_room(room, std::move(payload), except);
}

void Hub::handle(ConnectionId who, Session& session, const Refresh& msg,
                 std::optional<AuthResult> verdict) {
  if (!session.member->authenticated()) {
    send_error(who, error_code::kNotAuthenticated,
               "This connection was opened without a token; there is no token to refresh");
    return;
  }
  // Each refresh costs a signature check: on the signals' budget, like joins.
  if (!admit_signal(who, session)) return;
  if (authenticator_ == nullptr) {
    send_error(who, error_code::kInvalidToken, "This server verifies no tokens");
    return;
  }
  // Verified under the lock only for a refresh that waited behind a join (rare).
  if (!verdict) verdict = authenticator_->verify(msg.token);
  auto* identity = std::get_if<Identity>(&*verdict);
  // As at the upgrade, the client learns no more than "invalid"; the refused refresh changes
  // nothing, so the connection still closes when its current token expires.
  if (identity == nullptr || check_identity(*identity, options_.limits)) {
    send_error(who, error_code::kInvalidToken,
               "Invalid token; this connection keeps its current token until it expires");
    return;
  }
  if (identity->user_id != session.member->user_id()) {
    send_error(who, error_code::kTokenMismatch,
               "The token names another user ('sub'); a connection keeps the user it was "
               "opened with");
    return;
  }
  // The new token's rooms apply to joins from now on; rooms already joined are kept. The
  // username stays the connection's (its rooms know it by that name).
  set_expiry(who, session, identity->expires_at_unix_s);
  if (identity->rooms) {
    session.allowed_rooms =
        std::make_unique<const std::vector<std::string>>(std::move(*identity->rooms));
  } else {
    session.allowed_rooms.reset();
  }
  sink_.send(who, encode_token_refreshed(session.expires_at_ms != 0
                                             ? std::optional<std::int64_t>(session.expires_at_ms)
                                             : std::nullopt,
                                         replying_ref(who)));
}

void Hub::set_expiry(ConnectionId who, Session& session, std::int64_t expires_at_unix_s) {
  if (session.expires_at_ms != 0) expiries_.erase({session.expires_at_ms, who});
  session.expires_at_ms = expires_at_unix_s == 0 ? 0 : token_deadline_ms(expires_at_unix_s);
  if (session.expires_at_ms != 0) expiries_.emplace(session.expires_at_ms, who);
}

void Hub::expire_tokens(std::int64_t now_ms) {
  while (!expiries_.empty() && expiries_.begin()->first <= now_ms) {
    const ConnectionId who = expiries_.begin()->second;
    expiries_.erase(expiries_.begin());
    if (const auto stream = watchers_.find(who); stream != watchers_.end()) {
      stream->second.expires_at_ms = 0;
      stream->second.closing = true;
      sink_.close(who, close_code::kTokenExpired, std::string(kTokenExpiredReason));
      continue;
    }
    Session& session = sessions_.at(who);
    session.expires_at_ms = 0;
    session.expired = true;
    unpark(session);  // what waited behind a join will never count
    // The others see the user leave now, not once the closing handshake is over.
    const std::vector<std::string> rooms = session.rooms;
    for (const auto& room : rooms) leave(who, session, room);
    sink_.close(who, close_code::kTokenExpired, std::string(kTokenExpiredReason));
  }
}

void Hub::leave(ConnectionId who, Session& session, const std::string& room_name) {
  std::erase(session.rooms, room_name);
  std::erase(session.binary_rooms, room_name);
  if (noting()) events_->note(who, "left room '" + room_name + "'");
  auto it = rooms_.find(room_name);
  if (it == rooms_.end()) return;
  Room& room = it->second;
  stop_typing(room, who, session);
  std::erase_if(room.members, [who](const Member& m) { return m.connection == who; });
  rebuild_snapshot(room);
  if (presence_ != nullptr) presence_->member_left(room.name, who, session.member);
  // Before the room may be forgotten: the backend hears of the leave even when nobody here
  // is left to read "left the chat".
  const bool user_still_here = user_present(room, session.member->user_id());
  if (backend_ != nullptr && !user_still_here) backend_->user_left(room.name, *session.member);
  if (room.members.empty()) {
    room.user_list_owed = false;
    // A room with messages in flight stays until they are back (see tick()).
    if (evictable(room)) forget(it);
    return;
  }
  if (!user_still_here) announce_departure(room, *session.member);
  room.user_list_owed = true;
}

void Hub::publish_chat(Room& room, ConnectionId who, Session& session, std::string_view text,
                       const std::optional<std::string>& id, base::SteadyTime now,
                       std::string_view event_type) {
  // A message ends the sender's typing in that room (an app event is not typed).
  if (event_type.empty()) stop_typing(room, who, session);
  // The store numbers it as it makes it durable, recognises a resent id, and reports back
  // (on_committed, on_duplicate); only then is it delivered and acked.
  if (hook_ != nullptr && !may_wait_for_verdict(who, room.name, id.value_or(""))) return;
  if (room.in_flight >= kMaxInFlight) {
    // The store is behind: this message is taken, the sender's next ones wait unread until
    // half of the room's are back (landed()), so nothing is refused and memory stays bounded.
    if ((session.holds & kHeldByStore) == 0) room.held_senders.push_back(who);
    hold(who, session, kHeldByStore);
  }
  ++room.in_flight;
  room.in_flight_recipients += room.members.size();
  if (const std::string_view ref = replying_ref(who); id && !ref.empty()) {
    session.awaited_refs.push_back({room.name, *id, std::string(ref)});
  }
  awaiting_store_.fetch_add(room.members.size(), std::memory_order_relaxed);
  const MemberInfo& member = *session.member;
  submit(room,
         {room.name, clock_.unix_ms(), std::string(member.user_id()), member.username(),
          std::string(text), id ? sender_key(session) : std::string(), id.value_or(""), who, now,
          std::string(event_type)},
         /*ask=*/true);
}

bool Hub::may_wait_for_verdict(ConnectionId who, std::string_view room, std::string_view id) {
  const auto session = sessions_.find(who);
  const bool connection_full =
      session != sessions_.end() &&
      session->second.awaiting_verdict >= options_.max_awaiting_verdict_per_connection;
  if (!connection_full && awaiting_verdict_ < options_.max_awaiting_verdict) return true;
  const std::string text = connection_full
                               ? "Too many of your messages are waiting for the publish hook's "
                                 "verdict; this one was not sent, send it again later"
                               : "Too many messages are waiting for the publish hook's verdict; "
                                 "this one was not sent, send it again later";
  if (answer_server_publish(who, {0, std::string(error_code::kUnavailable), text})) return false;
  count_error(error_code::kUnavailable);
  sink_.send(who,
             encode_message_error(error_code::kUnavailable, text, room, id, replying_ref(who)));
  return false;
}

void Hub::submit(Room& room, Publication publication, bool ask) {
  if (hook_ == nullptr || !ask) {
    // Last: a synchronous store reports the message from inside publish().
    store_.publish(std::move(publication));
    return;
  }
  const std::uint64_t ticket = ++next_verdict_ticket_;
  ++awaiting_verdict_;
  if (const auto session = sessions_.find(publication.origin); session != sessions_.end()) {
    ++session->second.awaiting_verdict;
  }
  PublishQuestion question{
      room.name,           publication.user_id,  publication.username, publication.event_type,
      publication.message, publication.client_id};
  room.gate.push_back({ticket, std::move(publication), std::nullopt});
  // The hook calls back on its own thread: the verdict is posted to this Hub's.
  hook_->ask(std::move(question),
             [this, post = post_, room_name = room.name, ticket](PublishVerdict verdict) {
               post([this, room_name, ticket, verdict = std::move(verdict)]() mutable {
                 on_verdict(room_name, ticket, std::move(verdict));
               });
             });
}

void Hub::on_verdict(const std::string& room_name, std::uint64_t ticket, PublishVerdict verdict) {
  // The room stays open while its gate holds anything (in_flight), so it is found.
  const auto it = rooms_.find(room_name);
  if (it == rooms_.end()) return;
  Room& room = it->second;
  const auto gated = std::find_if(room.gate.begin(), room.gate.end(),
                                  [ticket](const Gated& g) { return g.ticket == ticket; });
  if (gated == room.gate.end() || gated->verdict) return;
  gated->verdict = std::move(verdict);
  release_gate(room);
}

void Hub::release_gate(Room& room) {
  while (!room.gate.empty() && room.gate.front().verdict) {
    // Out of the gate first: the store may report back from inside publish().
    Gated gated = std::move(room.gate.front());
    room.gate.pop_front();
    --awaiting_verdict_;
    Publication& publication = gated.publication;
    const ConnectionId origin = publication.origin;
    const auto session = sessions_.find(origin);
    if (session != sessions_.end() && session->second.awaiting_verdict > 0) {
      --session->second.awaiting_verdict;
    }
    PublishVerdict& verdict = *gated.verdict;
    if (verdict.error_code.empty()) {
      if (verdict.rewritten && publication.event_type.empty()) {
        publication.message = std::move(*verdict.rewritten);
      }
      // A sender gone meanwhile: its message is published all the same (the room was promised
      // it when it was accepted); only the ack has nobody to go to.
      store_.publish(std::move(publication));
      continue;
    }
    // Refused: never stored, so its `id` is not spent (the sender may send it again).
    landed(room);
    if (noting()) {
      events_->note(
          origin, "publish hook refused a message (" + verdict.error_code + "): " + verdict.reason);
    }
    if (answer_server_publish(origin, {0, verdict.error_code, verdict.reason})) continue;
    if (session != sessions_.end()) {
      count_error(verdict.error_code);
      sink_.send(origin, encode_message_error(
                             verdict.error_code, verdict.reason, room.name, publication.client_id,
                             take_awaited_ref(origin, room.name, publication.client_id)));
    }
  }
}

void Hub::deliver(Room& room, HistoryEntry entry, ConnectionId except, const Delivery& delivery) {
  room.last_seq = entry.seq;
  if (options_.history_size == 0) {
    send_to_room(room, std::move(entry.payload), except, delivery);
    return;
  }
  send_to_room(room, entry.payload, except, delivery);
  remember(room, std::move(entry));
  // Long-polls waiting for this room have their answer (in the window just remembered).
  while (!room.pollers.empty()) {
    const ConnectionId ticket = room.pollers.back();
    room.pollers.pop_back();
    answer_poller(ticket, &room);
  }
}

void Hub::on_committed(StoredMessage message, ConnectionId origin) {
  if (is_conversation(message.room)) {
    deliver_direct(message, origin);
    return;
  }
  const auto it = rooms_.find(message.room);
  if (it == rooms_.end()) return;  // not followed here (a store reports only loaded rooms)
  Room& room = it->second;
  if (origin != kNoConnection) landed(room);
  // Already delivered: a store may report a message twice (say, after reconnecting).
  if (message.seq <= room.last_seq) {
    if (origin != kNoConnection) answer_server_publish(origin, {message.seq, {}, {}});
    return;
  }
  // In seq order, as the store reports: every member sees one and the same order.
  // A durable app event of a type that does not echo skips its sender (the sender's ack
  // still says it is stored).
  ConnectionId except = kNoConnection;
  if (!message.event_type.empty() && origin != kNoConnection) {
    const AppEventType* treatment = options_.app_events.find(message.event_type);
    if (treatment != nullptr && !treatment->echo) except = origin;
  }
  // The sender's worker counts the message's recipients, once for the whole node and cluster.
  const Delivery delivery{message.accepted_at, origin != kNoConnection ? member_count(room) : 0};
  deliver(room, {message.seq, message.timestamp_ms, encode_stored(message)}, except, delivery);
  // Only the sender's Hub has the origin: the message is reported once per cluster.
  if (origin != kNoConnection && backend_ != nullptr) backend_->message_published(message);
  if (origin != kNoConnection && answer_server_publish(origin, {message.seq, {}, {}})) return;
  if (origin != kNoConnection && !message.client_id.empty()) {
    sink_.send(origin, encode_ack(room.name, message.client_id, message.seq,
                                  take_awaited_ref(origin, room.name, message.client_id)));
  }
}

void Hub::landed(Room& room) {
  if (room.in_flight == 0) return;
  // Members come and go while messages are in flight: each landing takes its share of what
  // was counted, and the last takes the rest, so the count returns to zero exactly.
  const std::size_t share = room.in_flight_recipients / room.in_flight;
  --room.in_flight;
  const std::size_t taken = room.in_flight == 0 ? room.in_flight_recipients : share;
  room.in_flight_recipients -= taken;
  awaiting_store_.fetch_sub(taken, std::memory_order_relaxed);
  if (!room.held_senders.empty() && room.in_flight <= kMaxInFlight / 2) {
    for (const ConnectionId who : std::exchange(room.held_senders, {})) {
      if (const auto it = sessions_.find(who); it != sessions_.end()) {
        release(who, it->second, kHeldByStore);
      }
    }
  }
}

void Hub::on_duplicate(const Publication& publication, std::uint64_t seq) {
  if (is_conversation(publication.room)) {
    // A resent direct message: acknowledged again with its seq, delivered once.
    sink_.send(
        publication.origin,
        encode_direct_ack(
            conversation_peer(publication.room, publication.user_id), publication.client_id, seq,
            take_awaited_ref(publication.origin, publication.room, publication.client_id)));
    return;
  }
  const auto it = rooms_.find(publication.room);
  if (it == rooms_.end()) return;
  landed(it->second);
  if (answer_server_publish(publication.origin, {seq, {}, {}})) return;
  // A resend of a stored message: acknowledged again with its seq, delivered once.
  sink_.send(publication.origin, encode_ack(publication.room, publication.client_id, seq,
                                            take_awaited_ref(publication.origin, publication.room,
                                                             publication.client_id)));
}

void Hub::on_refused(const Publication& publication, std::string_view reason,
                     std::string_view code) {
  if (is_conversation(publication.room)) {
    if (sessions_.contains(publication.origin)) {
      count_error(code);
      sink_.send(
          publication.origin,
          encode_direct_error(
              code, reason, conversation_peer(publication.room, publication.user_id),
              publication.client_id,
              take_awaited_ref(publication.origin, publication.room, publication.client_id)));
    }
    return;
  }
  if (const auto it = rooms_.find(publication.room); it != rooms_.end()) landed(it->second);
  if (answer_server_publish(publication.origin, {0, std::string(code), std::string(reason)})) {
    return;
  }
  // Not stored, not acked: the client keeps the message and may send it again.
  if (sessions_.contains(publication.origin)) {
    count_error(code);
    sink_.send(publication.origin,
               encode_message_error(
                   code, reason, publication.room, publication.client_id,
                   take_awaited_ref(publication.origin, publication.room, publication.client_id)));
  }
}

void Hub::on_load_failed(std::string_view room_name, std::string_view reason) {
  auto waiting = loading_.extract(std::string(room_name));
  if (waiting.empty()) return;
  for (const ConnectionId who : waiting.mapped()) {
    if (answer_server_publish(
            who, {0, std::string(error_code::kClusterUnavailable), std::string(reason)})) {
      continue;
    }
    if (const auto stream = watchers_.find(who); stream != watchers_.end()) {
      if (stream->second.expires_at_ms != 0) {
        expiries_.erase({stream->second.expires_at_ms, who});
      }
      watchers_.erase(stream);
      sink_.close(who, close_code::kUnavailable, std::string(reason));
      continue;
    }
    if (auto poll = pollers_.extract(who); !poll.empty()) {
      poll.mapped().done(
          {0, {}, std::string(error_code::kClusterUnavailable), std::string(reason)});
      continue;
    }
    const auto it = sessions_.find(who);
    if (it == sessions_.end() || !it->second.parked) continue;
    // The parked join fails; whatever the connection said after it is handled as usual.
    send_error(who, error_code::kClusterUnavailable, reason);
    resume(who, /*drop_join=*/true);
  }
}

void Hub::on_history_reset(std::string_view room_name, std::uint64_t first_seq) {
  const auto it = rooms_.find(std::string(room_name));
  if (it == rooms_.end()) return;
  Room& room = it->second;
  // What the store no longer has: a join would get messages no other node can serve, and a
  // `since` inside them would be taken as recovered. last_seq stays: a client that saw it
  // missed nothing, one with an older `since` is told `recovered: false`.
  while (!room.history.empty() && room.history.front().seq < first_seq) forget_oldest(room);
}

void Hub::on_member_joined(std::string_view room_name, const MemberRef& member) {
  const auto it = rooms_.find(std::string(room_name));
  if (it == rooms_.end()) return;
  Room& room = it->second;
  const auto known = std::find_if(room.remote_members.begin(), room.remote_members.end(),
                                  [&](const Remote& m) { return m.member == member; });
  if (known != room.remote_members.end()) return;
  room.remote_members.push_back({member, ++next_joined_});
  if (!user_present(room, member->user_id(), kNoConnection, member.get())) {
    announce_arrival(room, *member, kNoConnection);
  }
  room.user_list_owed = !room.members.empty();
}

void Hub::on_member_left(std::string_view room_name, const MemberRef& member) {
  const auto it = rooms_.find(std::string(room_name));
  if (it == rooms_.end()) return;
  Room& room = it->second;
  const auto known = std::find_if(room.remote_members.begin(), room.remote_members.end(),
                                  [&](const Remote& m) { return m.member == member; });
  if (known == room.remote_members.end()) return;
  room.remote_members.erase(known);
  const std::string_view user_id = member->user_id();
  const std::string& username = member->username();
  if (std::erase(room.remote_typing, user_id) > 0) {
    sink_.broadcast(room.snapshot, encode_typing(false, room.name, user_id, username),
                    kNoConnection);
  }
  if (!user_present(room, user_id)) announce_departure(room, *member);
  room.user_list_owed = !room.members.empty();
}

void Hub::on_typing(std::string_view room_name, std::string_view user_id, std::string_view username,
                    bool started) {
  const auto it = rooms_.find(std::string(room_name));
  if (it == rooms_.end()) return;
  Room& room = it->second;
  auto& typing = room.remote_typing;
  if (started) {
    if (std::find(typing.begin(), typing.end(), user_id) == typing.end()) {
      typing.emplace_back(user_id);
    }
  } else {
    std::erase(typing, user_id);
  }
  sink_.broadcast(room.snapshot, encode_typing(started, room_name, user_id, username),
                  kNoConnection);
}

void Hub::on_loaded(std::string_view room_name, RoomHistory stored) {
  const std::string name(room_name);
  if (!rooms_.contains(name)) install_room(name, std::move(stored));
  if (auto waiting = loading_.extract(name); !waiting.empty()) {
    for (const ConnectionId who : waiting.mapped()) {
      const bool api =
          server_publishes_.contains(who) || watchers_.contains(who) || pollers_.contains(who);
      if (!api) {
        resume(who);
      } else if (const auto it = rooms_.find(name); it != rooms_.end()) {
        if (watchers_.contains(who)) {
          attach_watcher(it->second, who);
        } else if (pollers_.contains(who)) {
          attach_poller(it->second, who);
        } else {
          publish_server(it->second, who);
        }
      } else {
        // Forgotten meanwhile (a join that waited left again): load it once more.
        auto [again, first] = loading_.try_emplace(name);
        again->second.push_back(who);
        if (first) store_.load(name);
      }
    }
  }
  // Nobody got in (the joins failed, or their connections left meanwhile): let it go.
  if (const auto it = rooms_.find(name); it != rooms_.end() && evictable(it->second)) forget(it);
}

void Hub::send_history(ConnectionId who, const Room& room, std::optional<std::uint64_t> since,
                       std::string_view ref) {
  const auto& kept = room.history;
  const auto [first, recovered] = slice_window(
      kept, [](const HistoryEntry& entry) { return entry.seq; }, room.last_seq, since,
      options_.history_on_join);
  std::vector<std::string_view> payloads;
  payloads.reserve(kept.size() - first);
  for (std::size_t i = first; i < kept.size(); ++i) payloads.push_back(kept[i].payload);
  if (!ref.empty()) {
    sink_.send(who,
               encode_joined(room.name, ref, room.last_seq, room_users(room), payloads, recovered));
    return;
  }
  // The chapter's client knows no empty history: nothing is said when there is nothing.
  if (!since && payloads.empty()) return;
  sink_.send(who, encode_history(room.name, payloads, recovered));
}

void Hub::remember(Room& room, HistoryEntry entry) {
  room.history.push_back(std::move(entry));
  while (room.history.size() > options_.history_size) forget_oldest(room);
}

void Hub::forget_oldest(Room& room) {
  room.history.pop_front();
}

void Hub::expire_history(Room& room, std::int64_t now_ms) {
  const Retention retention = options_.retention();
  while (!room.history.empty() && !retention.keeps(room.history.front().timestamp_ms, now_ms)) {
    forget_oldest(room);
  }
}

bool Hub::evictable(const Room& room) const {
  return room.members.empty() && room.in_flight == 0 && room.watchers.empty() &&
         room.pollers.empty();
}

void Hub::forget(std::unordered_map<std::string, Room>::iterator room) {
  const std::string name = room->first;
  rooms_.erase(room);
  room_count_.fetch_sub(1, std::memory_order_relaxed);
  store_.unload(name);
}

Hub::Room& Hub::install_room(const std::string& name, RoomHistory stored) {
  Room& room = rooms_[name];
  room_count_.fetch_add(1, std::memory_order_relaxed);
  room.name = name;
  room.last_seq = stored.last_seq;
  room.remote_members.reserve(stored.remote_members.size());
  for (MemberRef& member : stored.remote_members) {
    room.remote_members.push_back({std::move(member), ++next_joined_});
  }
  for (auto& m : stored.messages) {
    remember(room, {m.seq, m.timestamp_ms, encode_stored(m)});
  }
  expire_history(room, clock_.unix_ms());
  return room;
}

void Hub::announce_arrival(Room& room, const MemberInfo& member, ConnectionId except) {
  const std::string key = presence_key(member);
  if (std::erase_if(room.departures, [&](const Departure& d) { return d.key == key; }) > 0) {
    return;  // back within the grace: neither the leave nor the return is news
  }
  if (clock_.now() < quiet_until_) return;
  sink_.broadcast(
      room.snapshot,
      encode_system_message(room.name, member.username() + " joined the chat", clock_.unix_ms()),
      except);
}

void Hub::announce_departure(Room& room, const MemberInfo& member) {
  if (options_.rejoin_grace.count() > 0) {
    room.departures.push_back(
        {presence_key(member), member.username(), clock_.now() + options_.rejoin_grace});
    return;
  }
  sink_.broadcast(
      room.snapshot,
      encode_system_message(room.name, member.username() + " left the chat", clock_.unix_ms()),
      kNoConnection);
}

void Hub::announce_departures_due(Room& room, base::SteadyTime now) {
  // Oldest first, all with the same grace: the due ones are a prefix.
  const auto due = std::find_if(room.departures.begin(), room.departures.end(),
                                [now](const Departure& d) { return d.due > now; });
  for (auto it = room.departures.begin(); it != due; ++it) {
    sink_.broadcast(
        room.snapshot,
        encode_system_message(room.name, it->username + " left the chat", clock_.unix_ms()),
        kNoConnection);
  }
  room.departures.erase(room.departures.begin(), due);
}

std::string Hub::presence_key(const MemberInfo& member) {
  std::string key(member.authenticated() ? "user:" : "name:");
  key += member.authenticated() ? member.user_id() : std::string_view(member.username());
  return key;
}

void Hub::stop_typing(Room& room, ConnectionId who, const Session& session) {
  if (room.typing.erase(who) == 0) return;
  const MemberInfo& member = *session.member;
  sink_.broadcast(room.snapshot,
                  encode_typing(false, room.name, member.user_id(), member.username()), who);
  if (presence_ != nullptr) {
    presence_->typing(room.name, member.user_id(), member.username(), false);
  }
}

void Hub::tick() {
  const auto now = clock_.now();
  budgets_.tick(now);
  const std::int64_t now_ms = clock_.unix_ms();
  expire_tokens(now_ms);
  if (!pollers_.empty()) expire_polls(now);
  for (auto room_it = rooms_.begin(); room_it != rooms_.end();) {
    Room& room = room_it->second;
    expire_history(room, now_ms);
    if (evictable(room)) {
      forget(room_it++);
      continue;
    }
    ++room_it;
    if (!room.departures.empty()) announce_departures_due(room, now);
    if (!room.batch.empty() && now - room.batch_started >= options_.batch_interval) {
      flush_batch(room);
    }
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
  HubStats stats{connection_count_.load(std::memory_order_relaxed),
                 room_count_.load(std::memory_order_relaxed),
                 {}};
  std::lock_guard lock(stats_mutex_);
  stats.errors.insert(error_counts_.begin(), error_counts_.end());
  return stats;
}

void Hub::send_user_list(Room& room) {
  sink_.broadcast(room.snapshot, encode_user_list(room.name, room_users(room)), kNoConnection);
  room.user_list_owed = false;
}

std::vector<UserEntry> Hub::room_users(const Room& room) const {
  std::vector<UserEntry> users;
  users.reserve(member_count(room));
  // A user once, however many connections (tabs) they have in the room: a token's user has
  // one id on all of them; an anonymous connection's id is its own.
  std::unordered_set<std::string_view> listed;
  // Both lists are in the order they were learned of: merge them.
  auto local = room.members.begin();
  auto remote = room.remote_members.begin();
  while (local != room.members.end() || remote != room.remote_members.end()) {
    if (remote == room.remote_members.end() ||
        (local != room.members.end() && local->joined < remote->joined)) {
      const MemberInfo& member = *local->session->member;
      if (listed.insert(member.user_id()).second) {
        users.push_back({member.user_id(), member.username()});
      }
      ++local;
    } else {
      if (listed.insert(remote->member->user_id()).second) {
        users.push_back({remote->member->user_id(), remote->member->username()});
      }
      ++remote;
    }
  }
  return users;
}

void Hub::rebuild_snapshot(Room& room) {
  // What waits was sent while the members were the old ones: a joiner must not get it twice
  // (its history has it), a leaver not miss it.
  flush_batch(room);
  auto members = std::make_shared<std::vector<ConnectionId>>();
  auto binary = std::make_shared<std::vector<ConnectionId>>();
  auto batching = std::make_shared<std::vector<ConnectionId>>();
  auto live = std::make_shared<std::vector<ConnectionId>>();
  members->reserve(room.members.size() + room.watchers.size());
  for (const auto& m : room.members) {
    members->push_back(m.connection);
    if (m.binary) binary->push_back(m.connection);
    (m.batch ? batching : live)->push_back(m.connection);
  }
  // Event streams read the room as it happens (never batched, never binary).
  for (const ConnectionId watcher : room.watchers) {
    members->push_back(watcher);
    live->push_back(watcher);
  }
  room.snapshot = std::move(members);
  room.binary_snapshot = std::move(binary);
  room.live_snapshot = batching->empty() ? room.snapshot : std::move(live);
  room.batching_snapshot = std::move(batching);
}

void Hub::send_to_room(Room& room, std::string payload, ConnectionId except,
                       const Delivery& delivery) {
  // Timed (Delivery) as it leaves at once; what waits in a batch is not timed.
  if (!room.batching_snapshot || room.batching_snapshot->empty()) {
    sink_.broadcast_message(room.snapshot, std::move(payload), except, delivery);
    return;
  }
  sink_.broadcast_message(room.live_snapshot, payload, except, delivery);
  const auto& batching = *room.batching_snapshot;
  if (except != kNoConnection &&
      std::find(batching.begin(), batching.end(), except) != batching.end()) {
    // One batch is shared by every batching member, so a message one of them must not get
    // (a no-echo event, to its sender) goes alone, after what waited: order is kept.
    flush_batch(room);
    sink_.broadcast(room.batching_snapshot, std::move(payload), except);
    return;
  }
  if (room.batch.empty()) room.batch_started = clock_.now();
  room.batch.push_back(std::move(payload));
  if (room.batch.size() >= options_.batch_size) flush_batch(room);
}

void Hub::flush_batch(Room& room) {
  if (room.batch.empty()) return;
  sink_.broadcast(room.batching_snapshot, encode_message_batch(room.name, room.batch),
                  kNoConnection);
  room.batch.clear();
}

std::chrono::milliseconds Hub::user_list_interval(const Room& room) const {
  // One list costs about n entries of ~64 bytes to each of n members.
  const std::uint64_t n = member_count(room);
  const std::uint64_t bytes = n * n * 64;
  const auto budget_ms = bytes * 1000 / options_.user_list_bytes_per_second;
  return std::max(options_.user_list_min_interval,
                  std::chrono::milliseconds(static_cast<std::int64_t>(budget_ms)));
}

void Hub::send_error(ConnectionId who, std::string_view code, std::string_view message,
                     std::string_view field, std::optional<std::chrono::milliseconds> retry_after) {
  count_error(code);
  if (noting()) {
    events_->note(who, "refused (" + std::string(code) + "): " + std::string(message));
  }
  sink_.send(who, encode_error(code, message, field, replying_ref(who), retry_after));
}

std::string Hub::take_awaited_ref(ConnectionId who, std::string_view room,
                                  std::string_view client_id) {
  const auto session = sessions_.find(who);
  if (session == sessions_.end()) return {};
  auto& awaited = session->second.awaited_refs;
  // Oldest first: a resent id awaits twice, and its answers come in the order it was sent.
  const auto it = std::find_if(awaited.begin(), awaited.end(), [&](const AwaitedRef& a) {
    return a.client_id == client_id && a.room == room;
  });
  if (it == awaited.end()) return {};
  std::string ref = std::move(it->ref);
  awaited.erase(it);
  return ref;
}

void Hub::count_error(std::string_view code) {
  std::lock_guard lock(stats_mutex_);
  auto counted = error_counts_.find(code);
  if (counted == error_counts_.end()) counted = error_counts_.emplace(code, 0).first;
  ++counted->second;
}

bool Hub::admit_signal(ConnectionId who, Session& session) {
  const base::SteadyTime now = clock_.now();
  switch (budgets_.signals().admit(session.signal_rate, now)) {
    case RateLimiter::Verdict::kAllowed:
      return true;
    case RateLimiter::Verdict::kLimited:
      send_error(who, error_code::kRateLimited, kRateLimitedText, {},
                 budgets_.signals().retry_after(session.signal_rate, now));
      return false;
    case RateLimiter::Verdict::kBlocked:
      // Signals are sent without a human waiting for each: one error per block is enough,
      // and answering every one would turn the flood back on the flooder's own link.
      return false;
  }
  return false;
}

std::string Hub::new_user_id() {
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
  return text;
}

// Who counts as the joiner's own user: for a token's user, the same user id (another tab of
// theirs); for an anonymous user, the same name, since an anonymous user is known by name (as
// for resent ids) and may come back on a new connection before the old one is noticed gone.
// A token's user and an anonymous one are never the same, so nobody can pass for a token's
// user by taking the name, exactly or nearly.
bool Hub::looks_like_a_member(const Room& room, const MemberInfo& joiner) const {
  const auto deceives = [&](const MemberInfo& member) {
    if (!member.name_looks_like(joiner)) return false;
    const bool same_user = joiner.authenticated()
                               ? member.authenticated() && member.user_id() == joiner.user_id()
                               : !member.authenticated() && member.username() == joiner.username();
    return !same_user;
  };
  for (const Member& m : room.members) {
    if (deceives(*m.session->member)) return true;
  }
  for (const Remote& r : room.remote_members) {
    if (deceives(*r.member)) return true;
  }
  return false;
}

bool Hub::user_present(const Room& room, std::string_view user_id, ConnectionId except,
                       const MemberInfo* except_remote) {
  for (const Member& m : room.members) {
    if (m.connection != except && m.session->member->user_id() == user_id) return true;
  }
  for (const Remote& r : room.remote_members) {
    if (r.member.get() != except_remote && r.member->user_id() == user_id) return true;
  }
  return false;
}

bool Hub::in_room(const Session& session, std::string_view room) const {
  return std::find(session.rooms.begin(), session.rooms.end(), room) != session.rooms.end();
}

}  // namespace roomcast::chat
