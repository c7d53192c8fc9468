// ClusterControl: the server API's commands for every node of a cluster, and the list of the
// nodes alive. A single node needs none of this; with a cluster (cluster::RedisCluster) a
// node that receives POST /api/disconnect or /api/unsubscribe acts on its own connections and
// sends the command to the others, which act on theirs through the same path; and each node
// keeps a few figures about itself (NodeInfo) next to its liveness, so any node can list all.
//
// Delivery is at most once, to the nodes connected to the cluster now: a node cut off at that
// moment does not get the command later (the request's answer says how many nodes got it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace roomcast::chat {

// A server API command for every node.
struct ControlCommand {
  enum class Kind { kDisconnect, kUnsubscribe };
  Kind kind = Kind::kDisconnect;
  std::string user_id;
  std::string room;  // kUnsubscribe only
  std::string reason;
};

// What a node tells the others about itself (refreshed with its liveness).
struct NodeInfo {
  std::string node;  // its instance name
  std::string version;
  std::string commit;
  std::int64_t started_unix_ms = 0;
  std::uint64_t connections = 0;  // WebSocket and event-stream connections open now
  std::uint64_t rooms = 0;  // rooms open on the node
  unsigned threads = 0;  // worker threads
};

class ClusterControl {
 public:
  // The node that applies commands and reports its figures (net::Server). Called from the
  // cluster's thread, never while it holds a lock its other methods take; must return at
  // once (post the work to the workers).
  class Listener {
   public:
    virtual ~Listener() = default;
    // Another node received `command`: apply it to this node's connections.
    virtual void on_command(const ControlCommand& command) = 0;
    // This node's figures now (connections, rooms, threads; the cluster fills the rest).
    virtual NodeInfo node_info() const = 0;
  };

  virtual ~ClusterControl() = default;

  // Sets (or, with nullptr, clears) the listener.
  virtual void set_control_listener(Listener* listener) = 0;

  // Sends `command` to every other node. `done` gets how many nodes it reached, this one
  // included, or nullopt if the cluster cannot be reached now (nothing was sent). Returns at
  // once; `done` runs later on the cluster's thread. Thread-safe.
  using SendDone = std::function<void(std::optional<std::size_t> nodes)>;
  virtual void send_command(ControlCommand command, SendDone done) = 0;

  // The nodes alive now, this one included, by name; nullopt if the cluster cannot be
  // reached now. Returns at once; `done` runs later on the cluster's thread. Thread-safe.
  using NodesDone = std::function<void(std::optional<std::vector<NodeInfo>> nodes)>;
  virtual void list_nodes(NodesDone done) = 0;
};

}  // namespace roomcast::chat
