// RedisCluster: many roomcast nodes as one, over Redis. It is the HistoryStore and the
// Presence of every node of a cluster:
//
//  - Numbering and history. A Lua script numbers a room's message (INCR), appends it to the
//    room's stream (XADD, the history), records its `id` (idempotency, across nodes) and
//    PUBLISHes it on the room's channel, atomically: Redis runs one script at a time, so
//    the channel carries a room's messages in seq order to every node.
//  - Delivery. A node hears every message of a room it follows on the channel (its own
//    included) and reports them in seq order; a gap (a message missed while the subscriber
//    connection was down) is filled from the stream first. So every member on every node
//    sees one order, each message once.
//  - Presence. A room's members live in a hash (field: node instance/connection), joins,
//    leaves and typing signals go out on the room's channel. Each node refreshes a liveness
//    key with a TTL; a node whose key expired is dead and its members are reported left.
//  - Subscriptions. A node subscribes to a room's channel while the Hub follows the room
//    (it has local members); all share one subscriber connection. Commands share another.
//  - Rate budgets. A user's or an address's budget is a hash counted by a script, with
//    Redis's clock, so every node spends the same budget (chat/shared_budgets.h).
//  - Control (chat/cluster_control.h). The server API's disconnect and unsubscribe go to
//    every node on one control channel, heard on the subscriber connection; the node list is
//    read from the liveness keys, whose value is each node's figures.
//  - Online users (chat/online_users.h). Each node writes its count of a user's connections
//    into the user's hash (rc:online:USER, field: instance) and counts the live nodes' shares
//    by script; the webhooks' user_offline is claimed once per user and generation. The
//    node's counts are written again after a reconnect or a loss of Redis's data.
//
// Redis down: both connections are retried with backoff (100 ms doubling to 2 s). New
// messages and room loads are refused at once (Listener::on_refused / on_load_failed:
// "cluster unavailable"); messages whose script was sent but not answered are sent again
// after the reconnect, which the script recognises if it had already run, so an acknowledged
// message is never lost and none is stored twice. Then every room is resubscribed, missed
// messages are read from the stream and the members re-read. A Redis that keeps the
// connection but stops answering (SIGSTOP, a hung host) counts as down once a command has
// waited `command_timeout` (cluster/redis_connection.h): both connections are dropped.
//
// Redis losing its data (FLUSHALL, a restart without persistence, a failover to a lagging
// replica) must not give a seq twice, mute a room or announce members as left:
//  - Detection. A generation key holds a random value; each node remembers the one it saw,
//    checks it every heartbeat (atomically with judging other nodes' liveness) and with
//    every message it publishes (the script refuses a stale generation: status 3, the node
//    checks and sends the message again). A node that finds another value (or none) knows
//    Redis was emptied and sets a flag key. A room whose seq went below what a node has seen
//    (a lagging replica keeps the generation) is caught by the same script.
//  - New epoch. The room's seq jumps to chat::epoch_seq_base (chat/epoch.h); the jump is
//    recorded in the room's epoch key and announced on its channel ("e"), so every node drops
//    what it retained from before (Listener::on_history_reset) and loads read only the
//    epoch's messages. Clients holding older seqs get `recovered: false`. After the flag is
//    set, a room found without a seq key (nobody here knew it) also starts at an epoch base.
//  - Presence. Each node announces its members again, and for one node TTL nobody is judged
//    dead and no member is reported left because their entry vanished; then each room's
//    members are read again and the difference reported.
//
// Threading: one thread runs an Asio io_context that drives both hiredis connections
// (cluster/redis_connection.h) and all of the state below. The public methods post to it
// and return at once (only flush(), for shutdown, waits, bounded). No worker ever waits
// for Redis.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "chat/cluster_control.h"
#include "chat/history_store.h"
#include "chat/online_users.h"
#include "chat/presence.h"
#include "chat/retention.h"
#include "chat/shared_budgets.h"
#include "cluster/redis_cluster_options.h"
#include "cluster/redis_connection.h"

namespace roomcast::cluster {

class RedisCluster final : public chat::HistoryStore,
                           public chat::Presence,
                           public chat::SharedBudgets,
                           public chat::ClusterControl,
                           public chat::OnlineUsers {
 public:
  // Starts the cluster thread and connecting. Throws std::invalid_argument for a bad URL.
  // `clock` judges the age of messages (retention) and dates numbering epochs; it must outlive
  // the cluster. (Reconnect backoff, heartbeats and the settling of presence are Asio timers
  // on std::chrono::steady_clock, which the io_context waits on.)
  RedisCluster(RedisClusterOptions options, const base::Clock& clock);
  ~RedisCluster() override;

  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // Blocks up to `timeout` for both connections (start-up); false if Redis is not there yet
  // (the cluster keeps trying).
  bool wait_until_up(std::chrono::milliseconds timeout);
  bool up() const { return up_.load(std::memory_order_relaxed); }
  // Why the cluster is down, for /healthz: "unreachable" (no connection) or "not_answering"
  // (a command waited longer than the timeout); "" while up.
  std::string_view down_reason() const {
    return up() ? std::string_view() : not_answering_.load() ? "not_answering" : "unreachable";
  }
  std::uint64_t reconnects() const { return reconnects_.load(std::memory_order_relaxed); }
  // Times this node found Redis's data lost (a new generation, or a room's counter gone back).
  std::uint64_t data_losses() const { return data_losses_.load(std::memory_order_relaxed); }
  const std::string& instance() const { return instance_; }
  // Commands on the command connection (publish scripts included), sent to their replies.
  // Thread-safe.
  metrics::HistogramValues command_latency() const { return commands_.latency().values(); }
  // The publish script alone (numbering, storing and publishing a message), sent to its reply:
  // cluster mode's history commit. Thread-safe.
  metrics::HistogramValues publish_latency() const { return publish_latency_.values(); }
  // Where Redis is, for logs: host:port/db, never the password.
  std::string where() const { return endpoint_.describe(); }

  // chat::HistoryStore
  void set_listener(chat::HistoryStore::Listener* listener) override;
  void load(std::string room) override;
  void unload(std::string room) override;
  void publish(chat::Publication publication) override;
  void read(std::string_view room, std::uint64_t after_seq, std::size_t limit,
            ReadDone done) override;
  // Conversations: numbered by the publish script like rooms, announced on one channel per
  // conversation that every node hears (a pattern subscription), listed per user in hashes.
  void conversations(std::string_view user_id, std::size_t limit, ConversationsDone done) override;
  void flush() override;

  // chat::Presence
  void set_presence_listener(chat::Presence::Listener* listener) override;
  void member_joined(std::string_view room, chat::ConnectionId who,
                     const chat::MemberRef& member) override;
  void member_left(std::string_view room, chat::ConnectionId who,
                   const chat::MemberRef& member) override;
  void typing(std::string_view room, std::string_view user_id, std::string_view username,
              bool started) override;
  // Ephemeral app events and binary messages go out on the room's channel like typing: at
  // most once, to the nodes following the room now, never stored.
  void relay(std::string_view room, chat::ConnectionId who,
             const std::shared_ptr<const std::string>& payload, bool binary) override;
  // Other nodes' users are not known here without asking Redis: a user with no connection on
  // this node may be on another, so a direct message is published (and kept) for them.
  bool may_reach_user(std::string_view user_id) override {
    static_cast<void>(user_id);
    return true;
  }

  // chat::SharedBudgets
  void set_budget_listener(chat::SharedBudgets::Listener* listener) override;
  void spend(std::vector<Spend> spends) override;

  // chat::ClusterControl
  void set_control_listener(chat::ClusterControl::Listener* listener) override;
  void send_command(chat::ControlCommand command, SendDone done) override;
  void list_nodes(NodesDone done) override;

  // chat::OnlineUsers
  void set_connections(std::string_view user_id, std::size_t connections, bool opened,
                       CountDone done) override;
  void claim_offline(std::string_view user_id, std::uint64_t generation, ClaimDone done) override;

 private:
  // A committed message and, when this node published it, its connection and number.
  struct Committed {
    chat::StoredMessage message;
    std::string node;
    chat::ConnectionId origin = chat::kNoConnection;
    std::uint64_t counter = 0;
  };
  struct PresenceEvent {
    std::string id;  // the member's: "NODE/CONNECTION"
    chat::MemberRef member;  // null for a leave
  };
  struct Room {
    enum class Phase { kSubscribing, kLoading, kLive };
    std::string name;
    Phase phase = Phase::kSubscribing;
    bool followed = true;  // false: unloaded, waiting for its UNSUBSCRIBE to be answered
    bool subscribed = false;  // confirmed on the subscriber connection
    bool unsubscribe_pending = false;  // a load waits for an earlier UNSUBSCRIBE's reply
    std::uint64_t last_seq = 0;  // the newest message reported
    std::map<std::uint64_t, Committed> pending;  // heard ahead of a gap (or of the load)
    bool filling = false;  // an XRANGE for a gap is outstanding
    // Other nodes' members by id, each with the one record the node's Hubs share.
    std::map<std::string, chat::MemberRef> remote;
    // A member snapshot (load or resync) is on its way on the command connection while
    // joins and leaves keep coming on the subscriber connection: nothing orders the two, so
    // what was heard meanwhile is applied again on top of the snapshot (each is idempotent).
    bool snapshot_pending = false;
    std::vector<PresenceEvent> heard_during_snapshot;
    std::map<chat::ConnectionId, chat::MemberRef> local;
  };
  // A publication whose script was sent (or is waiting to be sent again).
  struct InFlight {
    chat::Publication publication;
    std::uint64_t counter;
    bool sent = false;  // false: waits to be sent (again), in order
  };

  // All of these run on the cluster thread.
  void connect_commands();
  void connect_subscriber();
  void on_commands_up();
  void on_connection_down(const char* which, const std::string& reason);
  void maybe_up();
  void went_down();
  void schedule_reconnect(bool commands);
  void heartbeat();
  // Runs the generation script (refreshing our liveness key, judging other nodes).
  void check_generation(bool on_connect);
  // A generation read from Redis: false if it reveals that Redis lost its data.
  bool on_generation(std::string_view generation);
  void judge_nodes(const std::vector<std::string>& nodes, const redisReply* alive);
  // Redis lost its data: every room gets a new epoch, presence settles (see the header).
  void lost_data();
  void room_lost(Room& room);
  void settle_presence();
  // Sends the publications waiting to be sent, in order (unless a generation check holds
  // them back).
  void send_held();
  void subscribe(Room& room);
  void on_push(redisReply* reply);
  // A message on the control channel: another node's command, applied here.
  void on_control(std::string_view payload);
  // Writes every count of online_ (and the zeros not written yet) again: after a reconnect,
  // or after Redis lost its data.
  void rewrite_online();
  // This node's figures for its liveness key (encoded).
  std::string node_figures();
  void on_event(Room& room, std::string_view payload);
  // A conversation's message heard on its channel (`ch`: rc:dm:KEY).
  void on_direct(std::string_view ch, std::string_view payload);
  // This node's conversation message, stored as `seq`: listed for its users, reported.
  void report_direct(const InFlight& done, std::uint64_t seq);
  // A user's conversation index (`what`: dm-index, dm-names).
  static std::string direct_key(std::string_view user_id, std::string_view what);
  void start_load(Room& room, bool resync);
  void on_load_reply(const std::string& room_name, bool resync, redisReply* reply);
  void accept(Room& room, Committed committed);
  void drain(Room& room);
  void fill_gap(Room& room);
  void report(Room& room, const Committed& committed);
  // Opens a run of reports if none is (on `listener`, under listener_mutex_), and posts its end
  // behind the cluster thread's work already queued.
  void open_report_run(chat::HistoryStore::Listener& listener);
  void send_publication(InFlight& in_flight);
  void on_publish_reply(std::uint64_t counter, redisReply* reply);
  void announce(Room& room, chat::ConnectionId who, const chat::MemberInfo& member);
  void member_gone(Room& room, const std::string& id);
  void refuse(const chat::Publication& publication);
  void fail_load(const std::string& room);
  std::string member_id(chat::ConnectionId who) const;
  std::string key(std::string_view room, std::string_view suffix) const;
  std::string channel(std::string_view room) const;

  template <typename Fn>
  void with_listener(Fn&& fn);
  template <typename Fn>
  void with_presence_listener(Fn&& fn);

  const RedisClusterOptions options_;
  const base::Clock& clock_;
  const RedisEndpoint endpoint_;
  const std::string instance_;  // node_name + random suffix: unique per process
  const std::int64_t started_unix_ms_;  // on clock_: the node list's start time

  boost::asio::io_context io_;
  RedisConnection commands_;
  RedisConnection subscriber_;
  boost::asio::steady_timer commands_retry_{io_};
  boost::asio::steady_timer subscriber_retry_{io_};
  boost::asio::steady_timer heartbeat_timer_{io_};
  boost::asio::steady_timer settle_timer_{io_};
  std::chrono::milliseconds backoff_{100};
  bool commands_ready_ = false;  // connected and scripts loaded
  bool was_up_ = false;
  // No node is judged dead before this: after an outage nobody could refresh their key.
  std::chrono::steady_clock::time_point judge_nodes_after_{};
  // Until then (after Redis lost its data), no member is reported left for a missing entry.
  std::chrono::steady_clock::time_point settle_until_{};
  std::string generation_;  // Redis's generation as this node last saw it; "" before
  bool generation_check_pending_ = false;  // publications wait for its answer
  std::string publish_sha_;
  std::string load_sha_;
  std::string rate_sha_;
  std::string generation_sha_;
  std::string renumber_sha_;
  std::string nodes_sha_;
  std::string online_set_sha_;
  std::string online_claim_sha_;
  // The control channel's SUBSCRIBE was confirmed on this subscriber connection: the cluster
  // is up only then, so that a command sent by another node once this one is up reaches it.
  bool control_subscribed_ = false;

  std::unordered_map<std::string, Room> rooms_;  // rooms the Hub follows
  // This node's count of each user's connections (set_connections; users with none are not
  // kept), and the users whose count fell to zero while Redis could not be told.
  std::unordered_map<std::string, std::size_t> online_;
  std::set<std::string> online_unwritten_;
  std::deque<InFlight> in_flight_;  // in counter order
  std::size_t unsent_ = 0;  // entries of in_flight_ with sent == false
  std::uint64_t next_counter_ = 1;
  // Own messages heard (reported) before their script's reply came.
  std::set<std::uint64_t> reported_before_reply_;
  // Own messages acknowledged by the script but not heard back yet (by counter).
  std::map<std::uint64_t, base::SteadyTime> awaiting_report_;
  // A run of reports is open (HistoryStore::Listener::begin_reports): the reports of one burst
  // of the cluster thread's work, such as one read of the subscriber connection that carries
  // many rooms' messages, wake each worker once, when the burst is over.
  bool report_run_open_ = false;
  metrics::Histogram publish_latency_{metrics::kSecondsLayout};  // the cluster thread records

  std::atomic<bool> up_{false};
  std::atomic<bool> not_answering_{false};  // the last loss was a command timeout
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> data_losses_{0};
  std::atomic<bool> stopping_{false};

  std::mutex listener_mutex_;  // held while calling a listener
  chat::HistoryStore::Listener* listener_ = nullptr;
  chat::Presence::Listener* presence_listener_ = nullptr;
  chat::SharedBudgets::Listener* budget_listener_ = nullptr;
  chat::ClusterControl::Listener* control_listener_ = nullptr;

  std::thread thread_;
};

}  // namespace roomcast::cluster
