#include "chat/exchange.h"

#include <algorithm>
#include <utility>

namespace roomcast::chat {

namespace {

template <typename F>
void for_each_port(std::uint64_t ports, F&& f) {
  while (ports != 0) {
    const auto p = static_cast<std::size_t>(__builtin_ctzll(ports));
    ports &= ports - 1;
    f(p);
  }
}

}  // namespace

Exchange::Exchange(Options options, HistoryStore& store, Presence* presence)
    : options_(std::move(options)), store_(store), presence_(presence) {
  const std::size_t ports = std::clamp<std::size_t>(options_.ports, 1, kMaxPorts);
  for (std::size_t i = 0; i < ports; ++i) ports_.push_back(std::make_unique<Port>(*this, i));
  store_.set_listener(this);
  if (presence_ != nullptr) presence_->set_presence_listener(this);
}

Exchange::~Exchange() {
  if (presence_ != nullptr) presence_->set_presence_listener(nullptr);
  store_.set_listener(nullptr);
}

std::size_t Exchange::pending_deliveries() const {
  std::size_t total = 0;
  for (const auto& port : ports_) total += port->pending_deliveries();
  return total;
}

Exchange::Shard& Exchange::shard_of(std::string_view room) {
  return shards_[std::hash<std::string_view>{}(room) % kShards];
}

std::size_t Exchange::port_of(ConnectionId who) const {
  const std::size_t port = options_.port_of ? options_.port_of(who) : 0;
  return port < ports_.size() ? port : 0;
}

std::vector<MemberRef> Exchange::others(const RoomState& state, std::size_t port) {
  std::vector<MemberRef> members;
  members.reserve(state.members.size());
  for (const Member& m : state.members) {
    if (m.port != port) members.push_back(m.member);
  }
  return members;
}

// ---- following rooms ---------------------------------------------------------------------

void Exchange::follow(std::size_t port, std::string room) {
  using Stage = RoomState::Stage;
  Shard& shard = shard_of(room);
  std::unique_lock lock(shard.mutex);
  auto [it, created] = shard.rooms.try_emplace(room);
  RoomState& state = it->second;
  const std::uint64_t bit = std::uint64_t{1} << port;
  state.followers |= bit;
  if (created) {
    state.local_members.assign(ports_.size(), 0);
    state.waiting = bit;
    rooms_.fetch_add(1, std::memory_order_relaxed);
    lock.unlock();
    load_from_store(room);
    return;
  }
  switch (state.stage) {
    case Stage::kLoading:
    case Stage::kReloading:
      state.waiting |= bit;
      return;
    case Stage::kUnloading:
      // The unloading call loads it again once the store has been told (see unfollow).
      state.stage = Stage::kReloading;
      state.waiting |= bit;
      return;
    case Stage::kLoaded:
      break;
  }
  lock.unlock();
  read_back(port, room);
}

void Exchange::load_from_store(const std::string& room) {
  store_.load(room);
}

void Exchange::read_back(std::size_t port, const std::string& room) {
  // Messages committed from now on reach the Port (it follows the room), which keeps them
  // until the window is back; the window has everything committed before. Together: all.
  store_.read(room, 0, options_.history_window,
              [this, port, room](std::optional<RoomHistory> history) {
                Shard& shard = shard_of(room);
                std::lock_guard lock(shard.mutex);
                const auto it = shard.rooms.find(room);
                const std::uint64_t bit = std::uint64_t{1} << port;
                if (it == shard.rooms.end() || (it->second.followers & bit) == 0) return;
                // Under the lock, with the members as they are now: a join or leave reported
                // to the Port before this reaches it is in the list, one after is applied to
                // it.
                if (history) history->remote_members = others(it->second, port);
                ports_[port]->post(Port::ReadBack{room, std::move(history)});
              });
}

void Exchange::unfollow(std::size_t port, std::string room) {
  using Stage = RoomState::Stage;
  Shard& shard = shard_of(room);
  {
    std::lock_guard lock(shard.mutex);
    const auto it = shard.rooms.find(room);
    if (it == shard.rooms.end()) return;
    RoomState& state = it->second;
    const std::uint64_t bit = std::uint64_t{1} << port;
    state.followers &= ~bit;
    state.waiting &= ~bit;
    std::erase_if(state.members, [port](const Member& m) { return m.port == port; });
    state.local_members[port] = 0;
    if (state.followers != 0 || state.stage != Stage::kLoaded) return;
    state.stage = Stage::kUnloading;
  }
  // Outside the lock, like load(). A follow() meanwhile finds kUnloading and leaves the
  // reload to this call, so the store hears unload and load in the order they were decided.
  store_.unload(room);
  std::unique_lock lock(shard.mutex);
  const auto it = shard.rooms.find(room);
  if (it->second.stage == Stage::kUnloading) {
    // Members on other nodes are forgotten with the room; the next load lists them again.
    shard.rooms.erase(it);
    rooms_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  it->second.stage = Stage::kLoading;  // kReloading: followed again meanwhile
  it->second.members.clear();
  lock.unlock();
  load_from_store(room);
}

// ---- reports of the store ----------------------------------------------------------------

void Exchange::on_loaded(std::string_view room, RoomHistory history) {
  Shard& shard = shard_of(room);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.rooms.find(std::string(room));
  if (it == shard.rooms.end() || it->second.stage != RoomState::Stage::kLoading) return;
  RoomState& state = it->second;
  state.stage = RoomState::Stage::kLoaded;
  for (MemberRef& member : history.remote_members) {
    const bool known = std::any_of(state.members.begin(), state.members.end(),
                                   [&](const Member& m) { return m.member == member; });
    if (!known) state.members.push_back({std::move(member), kOtherNode});
  }
  history.remote_members.clear();
  const std::uint64_t waiting = std::exchange(state.waiting, 0);
  for_each_port(waiting, [&](std::size_t p) {
    RoomHistory copy;
    copy.last_seq = history.last_seq;
    copy.messages = history.messages;
    copy.remote_members = others(state, p);
    ports_[p]->post(Port::Loaded{std::string(room), std::move(copy)});
  });
}

void Exchange::on_committed(StoredMessage message, ConnectionId origin) {
  if (is_conversation(message.room)) {
    deliver_conversation(std::move(message), origin);
    return;
  }
  Shard& shard = shard_of(message.room);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.rooms.find(message.room);
  if (it == shard.rooms.end()) return;
  const RoomState& state = it->second;
  const std::uint64_t readers = state.followers & ~state.waiting;
  if (readers == 0) return;
  const std::size_t origin_port = origin != kNoConnection ? port_of(origin) : kOtherNode;
  auto shared = std::make_shared<const StoredMessage>(std::move(message));
  // Under the shard's lock: two messages of a room reach every Port in the order they came.
  for_each_port(readers, [&](std::size_t p) {
    const std::size_t deliveries = state.local_members[p];
    ports_[p]->post(Port::Committed{shared, p == origin_port ? origin : kNoConnection, deliveries},
                    deliveries);
  });
}

void Exchange::on_duplicate(const Publication& publication, std::uint64_t seq) {
  ports_[port_of(publication.origin)]->post(Port::Duplicate{publication, seq});
}

void Exchange::on_refused(const Publication& publication, std::string_view reason,
                          std::string_view code) {
  ports_[port_of(publication.origin)]->post(
      Port::Refused{publication, std::string(reason), std::string(code)});
}

void Exchange::on_load_failed(std::string_view room, std::string_view reason) {
  Shard& shard = shard_of(room);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.rooms.find(std::string(room));
  if (it == shard.rooms.end() || it->second.stage != RoomState::Stage::kLoading) return;
  // The store does not follow the room: neither does anyone here.
  for_each_port(it->second.waiting, [&](std::size_t p) {
    ports_[p]->post(Port::LoadFailed{std::string(room), std::string(reason)});
  });
  shard.rooms.erase(it);
  rooms_.fetch_sub(1, std::memory_order_relaxed);
}

void Exchange::on_history_reset(std::string_view room, std::uint64_t first_seq) {
  Shard& shard = shard_of(room);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.rooms.find(std::string(room));
  if (it == shard.rooms.end()) return;
  for_each_port(it->second.followers, [&](std::size_t p) {
    ports_[p]->post(Port::HistoryReset{std::string(room), first_seq});
  });
}

// ---- presence ----------------------------------------------------------------------------

template <typename Fn>
void Exchange::with_others_following(std::size_t port, std::string_view room, Fn&& fn) {
  Shard& shard = shard_of(room);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.rooms.find(std::string(room));
  if (it == shard.rooms.end()) return;
  RoomState& state = it->second;
  fn(state, state.followers & ~state.waiting & ~(std::uint64_t{1} << port));
}

void Exchange::member_joined(std::size_t port, std::string_view room, ConnectionId who,
                             const MemberRef& member) {
  with_others_following(port, room, [&](RoomState& state, std::uint64_t others) {
    ++state.local_members[port];
    for_each_port(others, [&](std::size_t p) {
      ports_[p]->post(Port::MemberJoined{std::string(room), member});
    });
    // Kept for the Ports that open the room later: with one Port there is none.
    if (ports_.size() > 1) state.members.push_back({member, port});
  });
  if (presence_ != nullptr) presence_->member_joined(room, who, member);
}

void Exchange::member_left(std::size_t port, std::string_view room, ConnectionId who,
                           const MemberRef& member) {
  with_others_following(port, room, [&](RoomState& state, std::uint64_t others) {
    std::erase_if(state.members, [&](const Member& m) { return m.member == member; });
    if (state.local_members[port] > 0) --state.local_members[port];
    for_each_port(others, [&](std::size_t p) {
      ports_[p]->post(Port::MemberLeft{std::string(room), member});
    });
  });
  if (presence_ != nullptr) presence_->member_left(room, who, member);
}

void Exchange::typing(std::size_t port, std::string_view room, std::string_view user_id,
                      std::string_view username, bool started) {
  with_others_following(port, room, [&](RoomState&, std::uint64_t others) {
    for_each_port(others, [&](std::size_t p) {
      ports_[p]->post(
          Port::Typing{std::string(room), std::string(user_id), std::string(username), started});
    });
  });
  if (presence_ != nullptr) presence_->typing(room, user_id, username, started);
}

void Exchange::relay(std::size_t port, std::string_view room, ConnectionId who,
                     const std::shared_ptr<const std::string>& payload, bool binary) {
  with_others_following(port, room, [&](RoomState& state, std::uint64_t others) {
    for_each_port(others, [&](std::size_t p) {
      const std::size_t deliveries = state.local_members[p];
      ports_[p]->post(Port::Relayed{std::string(room), payload, deliveries, binary}, deliveries);
    });
  });
  if (presence_ != nullptr) presence_->relay(room, who, payload, binary);
}

// ---- users (direct messages) -------------------------------------------------------------

Exchange::UserShard& Exchange::user_shard_of(std::string_view user_id) {
  return user_shards_[std::hash<std::string_view>{}(user_id) % kShards];
}

void Exchange::user_connected(std::size_t port, std::string_view user_id) {
  UserShard& shard = user_shard_of(user_id);
  std::lock_guard lock(shard.mutex);
  auto& ports = shard.users[std::string(user_id)];
  const auto it = std::find_if(ports.begin(), ports.end(),
                               [port](const auto& entry) { return entry.first == port; });
  if (it != ports.end()) {
    ++it->second;
  } else {
    ports.emplace_back(static_cast<std::uint32_t>(port), 1);
  }
}

void Exchange::user_disconnected(std::size_t port, std::string_view user_id) {
  UserShard& shard = user_shard_of(user_id);
  std::lock_guard lock(shard.mutex);
  const auto user = shard.users.find(std::string(user_id));
  if (user == shard.users.end()) return;
  auto& ports = user->second;
  const auto it = std::find_if(ports.begin(), ports.end(),
                               [port](const auto& entry) { return entry.first == port; });
  if (it == ports.end()) return;
  if (--it->second == 0) ports.erase(it);
  if (ports.empty()) shard.users.erase(user);
}

bool Exchange::may_reach_user(std::string_view user_id) {
  return ports_of_user(user_id) != 0 ||
         (presence_ != nullptr && presence_->may_reach_user(user_id));
}

std::uint64_t Exchange::ports_of_user(std::string_view user_id) {
  UserShard& shard = user_shard_of(user_id);
  std::lock_guard lock(shard.mutex);
  const auto user = shard.users.find(std::string(user_id));
  if (user == shard.users.end()) return 0;
  std::uint64_t ports = 0;
  for (const auto& entry : user->second) ports |= std::uint64_t{1} << entry.first;
  return ports;
}

void Exchange::deliver_conversation(StoredMessage message, ConnectionId origin) {
  const auto users = conversation_users(message.room);
  if (!users) return;
  std::uint64_t ports = ports_of_user(users->first) | ports_of_user(users->second);
  const std::size_t origin_port = origin != kNoConnection ? port_of(origin) : kOtherNode;
  if (origin_port != kOtherNode) ports |= std::uint64_t{1} << origin_port;
  if (ports == 0) return;  // kept for them: nobody to tell on this node now
  auto shared = std::make_shared<const StoredMessage>(std::move(message));
  // The store reports a conversation's messages one at a time, in seq order: posted in that
  // order, they reach every Port in it.
  for_each_port(ports, [&](std::size_t p) {
    ports_[p]->post(Port::Committed{shared, p == origin_port ? origin : kNoConnection, 0});
  });
}

void Exchange::on_relayed(std::string_view room, const std::shared_ptr<const std::string>& payload,
                          bool binary) {
  Shard& shard = shard_of(room);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.rooms.find(std::string(room));
  if (it == shard.rooms.end()) return;
  const RoomState& state = it->second;
  for_each_port(state.followers & ~state.waiting, [&](std::size_t p) {
    const std::size_t deliveries = state.local_members[p];
    ports_[p]->post(Port::Relayed{std::string(room), payload, deliveries, binary}, deliveries);
  });
}

void Exchange::on_member_joined(std::string_view room, const MemberRef& member) {
  Shard& shard = shard_of(room);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.rooms.find(std::string(room));
  if (it == shard.rooms.end()) return;
  RoomState& state = it->second;
  const bool known = std::any_of(state.members.begin(), state.members.end(),
                                 [&](const Member& m) { return m.member == member; });
  if (known) return;
  state.members.push_back({member, kOtherNode});
  for_each_port(state.followers & ~state.waiting, [&](std::size_t p) {
    ports_[p]->post(Port::MemberJoined{std::string(room), member});
  });
}

void Exchange::on_member_left(std::string_view room, const MemberRef& member) {
  Shard& shard = shard_of(room);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.rooms.find(std::string(room));
  if (it == shard.rooms.end()) return;
  RoomState& state = it->second;
  std::erase_if(state.members, [&](const Member& m) { return m.member == member; });
  for_each_port(state.followers & ~state.waiting, [&](std::size_t p) {
    ports_[p]->post(Port::MemberLeft{std::string(room), member});
  });
}

void Exchange::on_typing(std::string_view room, std::string_view user_id, std::string_view username,
                         bool started) {
  Shard& shard = shard_of(room);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.rooms.find(std::string(room));
  if (it == shard.rooms.end()) return;
  for_each_port(it->second.followers & ~it->second.waiting, [&](std::size_t p) {
    ports_[p]->post(
        Port::Typing{std::string(room), std::string(user_id), std::string(username), started});
  });
}

// ---- Port --------------------------------------------------------------------------------

void Exchange::Port::load(std::string room) {
  // Until the room's window arrives (from the store, or read back when another worker has the
  // room open), what is committed meanwhile waits here.
  reading_[room].clear();
  exchange_.follow(index_, std::move(room));
}

void Exchange::Port::unload(std::string room) {
  reading_.erase(room);
  exchange_.unfollow(index_, std::move(room));
}

void Exchange::Port::read(std::string_view room, std::uint64_t after_seq, std::size_t limit,
                          ReadDone done) {
  exchange_.store_.read(
      room, after_seq, limit, [this, done = std::move(done)](std::optional<RoomHistory> history) {
        post(Answer{[done, history = std::move(history)]() mutable { done(std::move(history)); }});
      });
}

void Exchange::Port::conversations(std::string_view user_id, std::size_t limit,
                                   ConversationsDone done) {
  exchange_.store_.conversations(
      user_id, limit,
      [this, done = std::move(done)](std::optional<std::vector<ConversationSummary>> list) {
        post(Answer{[done, list = std::move(list)]() mutable { done(std::move(list)); }});
      });
}

void Exchange::Port::set_wake(std::function<void()> wake) {
  std::lock_guard lock(inbox_mutex_);
  wake_ = std::move(wake);
}

namespace {
// The Ports owed a wake-up at the end of this thread's run of reports; null outside a run.
thread_local std::vector<Exchange::Port*>* held_wakes = nullptr;
}  // namespace

void Exchange::begin_reports() {
  thread_local std::vector<Port*> owed;
  owed.clear();
  held_wakes = &owed;
}

void Exchange::end_reports() {
  std::vector<Port*>* owed = std::exchange(held_wakes, nullptr);
  if (owed == nullptr) return;
  for (Port* port : *owed) port->wake_if_filled();
  owed->clear();
}

void Exchange::Port::post(Event event, std::size_t deliveries) {
  pending_.fetch_add(deliveries, std::memory_order_relaxed);
  std::lock_guard lock(inbox_mutex_);
  const bool was_empty = inbox_.empty();
  inbox_.push_back(std::move(event));
  if (!was_empty) return;
  // Meanwhile the inbox is not empty, so nobody else wakes the owner: the run's end must.
  if (held_wakes != nullptr) {
    if (std::ranges::find(*held_wakes, this) == held_wakes->end()) held_wakes->push_back(this);
    return;
  }
  // Under the lock, so that a wake cleared by a departing owner is never called after.
  if (wake_) wake_();
}

void Exchange::Port::wake_if_filled() {
  std::lock_guard lock(inbox_mutex_);
  if (!inbox_.empty() && wake_) wake_();
}

void Exchange::Port::drain() {
  {
    std::lock_guard lock(inbox_mutex_);
    draining_.swap(inbox_);
  }
  for (Event& event : draining_) handle(event);
  draining_.clear();  // keeps its capacity for the next drain
}

void Exchange::Port::handle(Event& event) {
  if (auto* committed = std::get_if<Committed>(&event)) {
    pending_.fetch_sub(committed->deliveries, std::memory_order_relaxed);
    if (const auto reading = reading_.find(committed->message->room); reading != reading_.end()) {
      reading->second.push_back(std::move(*committed));
      return;
    }
    handle_committed(*committed);
    return;
  }
  if (auto* relayed = std::get_if<Relayed>(&event)) {
    pending_.fetch_sub(relayed->deliveries, std::memory_order_relaxed);
    // Not stored, so not ordered with the room's stored messages: a room still loading here
    // has nobody to show it to yet.
    if (presence_listener_ != nullptr && !reading_.contains(relayed->room)) {
      presence_listener_->on_relayed(relayed->room, relayed->payload, relayed->binary);
    }
    return;
  }
  if (store_listener_ == nullptr) return;
  if (auto* answer = std::get_if<Answer>(&event)) {
    answer->run();
    return;
  }
  std::visit(
      [&](auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, Loaded>) {
          loaded(e.room, std::move(e.history));
        } else if constexpr (std::is_same_v<E, ReadBack>) {
          if (e.history) {
            loaded(e.room, std::move(*e.history));
            return;
          }
          reading_.erase(e.room);
          store_listener_->on_load_failed(e.room,
                                          "History storage cannot be reached right now; join "
                                          "again");
          exchange_.unfollow(index_, e.room);
        } else if constexpr (std::is_same_v<E, Duplicate>) {
          store_listener_->on_duplicate(e.publication, e.seq);
        } else if constexpr (std::is_same_v<E, Refused>) {
          store_listener_->on_refused(e.publication, e.reason, e.code);
        } else if constexpr (std::is_same_v<E, LoadFailed>) {
          reading_.erase(e.room);
          store_listener_->on_load_failed(e.room, e.reason);
        } else if constexpr (std::is_same_v<E, HistoryReset>) {
          store_listener_->on_history_reset(e.room, e.first_seq);
        } else if constexpr (std::is_same_v<E, MemberJoined>) {
          if (presence_listener_ != nullptr) presence_listener_->on_member_joined(e.room, e.member);
        } else if constexpr (std::is_same_v<E, MemberLeft>) {
          if (presence_listener_ != nullptr) presence_listener_->on_member_left(e.room, e.member);
        } else if constexpr (std::is_same_v<E, Relayed> || std::is_same_v<E, Answer>) {
          // Handled above.
        } else if constexpr (std::is_same_v<E, Typing>) {
          if (presence_listener_ != nullptr) {
            presence_listener_->on_typing(e.room, e.user_id, e.username, e.started);
          }
        }
      },
      event);
}

void Exchange::Port::loaded(const std::string& room, RoomHistory history) {
  auto buffered = reading_.extract(room);
  const std::uint64_t last_seq = history.last_seq;
  store_listener_->on_loaded(room, std::move(history));
  if (buffered.empty()) return;
  for (const Committed& c : buffered.mapped()) {
    if (c.message->seq > last_seq) handle_committed(c);
  }
}

void Exchange::Port::handle_committed(const Committed& committed) {
  if (store_listener_ != nullptr)
    store_listener_->on_committed(*committed.message, committed.origin);
}

}  // namespace roomcast::chat
