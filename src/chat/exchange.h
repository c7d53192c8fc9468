// Exchange: joins the Hubs of one node's workers into one chat. Each worker has a Hub of its
// own, which owns the worker's connections and their rooms' members on that worker with no
// lock; what the workers must share about rooms goes through the Exchange, which gives every
// Hub a Port that serves it as its HistoryStore and Presence. Workers are to a room what nodes
// are to a cluster: the node's store numbers each room once for every Hub (and, with Redis,
// for every node), and a Hub sees the members on other workers as it sees members on other
// nodes. (Rate budgets are shared otherwise: one chat::RateBudgets for the node.)
//
// Threads: a Port's methods are called by its Hub, on the Hub's thread. What the Exchange
// reports to a Hub (rooms loaded, messages committed, other members' joins) waits in
// the Port's inbox until the Hub's owner calls Port::drain() on the Hub's thread; the Port
// calls its `wake` function (from any thread) when its inbox stops being empty. Every report
// of a room reaches every Port in the order the store made it.
// Locks: rooms are split over shards, each with its own mutex, taken to follow and unfollow a
// room, for a member's join or leave, and to hand a committed message to the Ports that follow
// its room: short, and shared only by workers touching rooms of the same shard. Publishing
// takes none of them (it goes straight to the store).
// Requires: the store and the presence outlive the Exchange; the Hubs are
// destroyed (or detached: set_listener(nullptr)...) before it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "chat/history_store.h"
#include "chat/presence.h"

namespace roomcast::chat {

class Exchange final : private HistoryStore::Listener, private Presence::Listener {
 public:
  // What an Exchange needs to know besides its parts.
  struct Options {
    std::size_t ports = 1;  // one per worker (and Hub); at most kMaxPorts
    // The Port a connection's Hub is behind (the transport's numbering of connections).
    std::function<std::size_t(ConnectionId)> port_of;
    // How many messages a Hub that joins a room already open on another worker reads back:
    // the Hubs' window (HubOptions::history_size).
    std::size_t history_window = 1000;
  };
  static constexpr std::size_t kMaxPorts = 64;

  class Port;

  // `presence`: the cluster's, or nullptr on a single node.
  Exchange(Options options, HistoryStore& store, Presence* presence);
  ~Exchange() override;

  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  Port& port(std::size_t index) { return *ports_[index]; }

  // Rooms some worker of this node follows. Thread-safe.
  std::size_t rooms() const { return rooms_.load(std::memory_order_relaxed); }
  // Deliveries waiting in the Ports' inboxes (a committed message counts once per local member
  // of its room on the Port's worker): the transport's measure of fan-out owed. Thread-safe,
  // approximate.
  std::size_t pending_deliveries() const;

 private:
  // A member's record is shared with its own Hub and the other Ports' Hubs (see MemberInfo).
  struct Member {
    MemberRef member;
    std::size_t port;  // kOtherNode for a member connected to another node
  };
  static constexpr std::size_t kOtherNode = ~std::size_t{0};
  struct RoomState {
    enum class Stage : std::uint8_t {
      kLoading,  // the store is loading it; `waiting` Ports get on_loaded
      kLoaded,
      kUnloading,  // nobody follows it; the store is being told
      kReloading,  // followed again while unloading: loaded once the store has been told
    };
    Stage stage = Stage::kLoading;
    std::uint64_t followers = 0;  // bit p: Port p follows the room
    std::uint64_t waiting = 0;  // bit p: Port p waits for the store's on_loaded
    // On other nodes, and (with more than one Port) on every worker of this node.
    std::vector<Member> members;
    std::vector<std::uint32_t> local_members;  // by Port
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, RoomState> rooms;
  };
  // The node's users, for direct messages: how many connections each has behind each Port
  // (Port index, count), only Ports with some.
  struct UserShard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<std::pair<std::uint32_t, std::uint32_t>>> users;
  };
  static constexpr std::size_t kShards = 16;

  Shard& shard_of(std::string_view room);
  // Calls fn(state, others) under the room's shard lock if the room is followed on this node;
  // `others`: the Ports, other than `port`, that follow the room and have loaded it (whom a
  // report from `port` about the room concerns).
  template <typename Fn>
  void with_others_following(std::size_t port, std::string_view room, Fn&& fn);
  // A Port's Hub starts or stops following a room (HistoryStore::load, unload).
  void follow(std::size_t port, std::string room);
  void unfollow(std::size_t port, std::string room);
  // Tells the store to load `room` (outside every lock: a synchronous store reports at once).
  void load_from_store(const std::string& room);
  // The room is loaded elsewhere on the node: Port `port` reads its window back.
  void read_back(std::size_t port, const std::string& room);
  // The members a Port's Hub sees as remote: everyone but its own.
  static std::vector<MemberRef> others(const RoomState& state, std::size_t port);
  void member_joined(std::size_t port, std::string_view room, ConnectionId who,
                     const MemberRef& member);
  void member_left(std::size_t port, std::string_view room, ConnectionId who,
                   const MemberRef& member);
  void typing(std::size_t port, std::string_view room, std::string_view user_id,
              std::string_view username, bool started);
  void relay(std::size_t port, std::string_view room, ConnectionId who,
             const std::shared_ptr<const std::string>& payload, bool binary);
  UserShard& user_shard_of(std::string_view user_id);
  void user_connected(std::size_t port, std::string_view user_id);
  void user_disconnected(std::size_t port, std::string_view user_id);
  bool may_reach_user(std::string_view user_id);
  // The Ports with a connection of `user_id` (bit p: Port p).
  std::uint64_t ports_of_user(std::string_view user_id);
  // A message of a conversation (chat/conversation.h): to the Ports where either of its users
  // has a connection, and the sender's (its ack), rather than to a room's followers.
  void deliver_conversation(StoredMessage message, ConnectionId origin);
  std::size_t port_of(ConnectionId who) const;

  // HistoryStore::Listener (the node's store)
  void on_loaded(std::string_view room, RoomHistory history) override;
  void on_committed(StoredMessage message, ConnectionId origin) override;
  void on_duplicate(const Publication& publication, std::uint64_t seq) override;
  void on_refused(const Publication& publication, std::string_view reason,
                  std::string_view code) override;
  void on_load_failed(std::string_view room, std::string_view reason) override;
  void on_history_reset(std::string_view room, std::uint64_t first_seq) override;
  // A run of reports wakes each Port once, at its end (Port::post holds the wake-ups).
  void begin_reports() override;
  void end_reports() override;
  // Presence::Listener (the cluster's: members on other nodes)
  void on_member_joined(std::string_view room, const MemberRef& member) override;
  void on_member_left(std::string_view room, const MemberRef& member) override;
  void on_typing(std::string_view room, std::string_view user_id, std::string_view username,
                 bool started) override;
  void on_relayed(std::string_view room, const std::shared_ptr<const std::string>& payload,
                  bool binary) override;

  const Options options_;
  HistoryStore& store_;
  Presence* const presence_;
  std::vector<std::unique_ptr<Port>> ports_;
  std::array<Shard, kShards> shards_;
  std::array<UserShard, kShards> user_shards_;
  std::atomic<std::size_t> rooms_{0};
};

// A Hub's view of the Exchange. Worker-affine: every method but the inbox's filling is called
// on the Hub's thread.
class Exchange::Port final : public HistoryStore, public Presence {
 public:
  Port(Exchange& exchange, std::size_t index) : exchange_(exchange), index_(index) {}

  // Called (from any thread, under the inbox's lock: it must not call the Port) when the
  // inbox stops being empty: the owner then calls drain() on the Hub's thread. Set before the
  // Hub runs; cleared (nullptr) before its owner goes, while other threads may still report.
  void set_wake(std::function<void()> wake);
  // Hands everything in the inbox to the Hub, in order.
  void drain();
  // Deliveries waiting in the inbox (see Exchange::pending_deliveries).
  std::size_t pending_deliveries() const { return pending_.load(std::memory_order_relaxed); }

  // HistoryStore
  void set_listener(HistoryStore::Listener* listener) override { store_listener_ = listener; }
  void load(std::string room) override;
  void unload(std::string room) override;
  void publish(Publication publication) override {
    exchange_.store_.publish(std::move(publication));
  }
  // The Hub's reads (a conversation's history, a user's conversations) are answered on the
  // Hub's thread: the store's answer waits in the inbox like a report.
  void read(std::string_view room, std::uint64_t after_seq, std::size_t limit,
            ReadDone done) override;
  void conversations(std::string_view user_id, std::size_t limit, ConversationsDone done) override;
  void flush() override { exchange_.store_.flush(); }
  // Presence
  void set_presence_listener(Presence::Listener* listener) override {
    presence_listener_ = listener;
  }
  void member_joined(std::string_view room, ConnectionId who, const MemberRef& member) override {
    exchange_.member_joined(index_, room, who, member);
  }
  void member_left(std::string_view room, ConnectionId who, const MemberRef& member) override {
    exchange_.member_left(index_, room, who, member);
  }
  void typing(std::string_view room, std::string_view user_id, std::string_view username,
              bool started) override {
    exchange_.typing(index_, room, user_id, username, started);
  }
  void relay(std::string_view room, ConnectionId who,
             const std::shared_ptr<const std::string>& payload, bool binary) override {
    exchange_.relay(index_, room, who, payload, binary);
  }
  void user_connected(ConnectionId, std::string_view user_id) override {
    exchange_.user_connected(index_, user_id);
  }
  void user_disconnected(ConnectionId, std::string_view user_id) override {
    exchange_.user_disconnected(index_, user_id);
  }
  bool may_reach_user(std::string_view user_id) override {
    return exchange_.may_reach_user(user_id);
  }

 private:
  friend class Exchange;
  struct Loaded {
    std::string room;
    RoomHistory history;
  };
  // The window of a room loaded on another worker, read back for this one (nullopt: the
  // store could not be read).
  struct ReadBack {
    std::string room;
    std::optional<RoomHistory> history;
  };
  struct Committed {
    std::shared_ptr<const StoredMessage> message;  // one copy for every Port
    ConnectionId origin;  // kNoConnection unless the sender is this Port's
    std::size_t deliveries;  // its weight in pending_
  };
  struct Duplicate {
    Publication publication;
    std::uint64_t seq;
  };
  struct Refused {
    Publication publication;
    std::string reason;
    std::string code;
  };
  struct LoadFailed {
    std::string room;
    std::string reason;
  };
  struct HistoryReset {
    std::string room;
    std::uint64_t first_seq;
  };
  struct MemberJoined {
    std::string room;
    MemberRef member;
  };
  struct MemberLeft {
    std::string room;
    MemberRef member;
  };
  struct Typing {
    std::string room;
    std::string user_id;
    std::string username;
    bool started;
  };
  struct Relayed {
    std::string room;
    std::shared_ptr<const std::string> payload;  // one copy for every Port
    std::size_t deliveries;  // its weight in pending_
    bool binary;  // a binary message, for the members that asked for them
  };
  // An answer to the Hub's read (read(), conversations()), to run on its thread.
  struct Answer {
    std::function<void()> run;
  };
  using Event = std::variant<Loaded, ReadBack, Committed, Duplicate, Refused, LoadFailed,
                             HistoryReset, MemberJoined, MemberLeft, Typing, Relayed, Answer>;

  // Any thread. Inside a run of reports on this thread (Exchange::begin_reports), the wake-up
  // an inbox that stops being empty owes waits for the run's end (wake_if_filled).
  void post(Event event, std::size_t deliveries = 0);
  void wake_if_filled();
  void handle(Event& event);
  void handle_committed(const Committed& committed);
  // The room's window arrived: the Hub gets it, then what was committed after it.
  void loaded(const std::string& room, RoomHistory history);

  Exchange& exchange_;
  const std::size_t index_;
  HistoryStore::Listener* store_listener_ = nullptr;
  Presence::Listener* presence_listener_ = nullptr;

  std::mutex inbox_mutex_;
  std::vector<Event> inbox_;  // filled by any thread
  std::function<void()> wake_;  // under inbox_mutex_
  std::atomic<std::size_t> pending_{0};
  std::vector<Event> draining_;  // the Hub's thread only; reused between drains
  // Rooms being read back, and the messages committed meanwhile (the Hub's thread only).
  std::unordered_map<std::string, std::vector<Committed>> reading_;
};

}  // namespace roomcast::chat
