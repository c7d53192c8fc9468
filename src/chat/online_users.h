// OnlineUsers: a user's connections counted across a cluster, so that "this user has no
// connection anywhere" (the webhooks' user_offline, hooks/webhooks.h) is decided once for
// the cluster, not per node. A single node needs none of this (its own count is the count);
// cluster::RedisCluster implements it with a hash per user in Redis holding each node's count.
//
// Each node writes its own count of the user's connections (absolute, not +1/-1: an update
// lost while Redis was unreachable is healed by the next one, and the node writes all its
// counts again on reconnect). The shares of nodes whose liveness expired are dropped when
// counted. Every increase bumps the user's generation; an offline report is claimed for a
// generation, so it is made once, and not at all if the user came back meanwhile.
//
// Thread-safe: any thread calls; the answers (`done`) run on the implementation's thread and
// must return at once. Calls made in some order by one thread are applied in that order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace roomcast::chat {

class OnlineUsers {
 public:
  // The user's connections on every live node, and the user's generation, after an update.
  struct Count {
    std::uint64_t connections = 0;
    std::uint64_t generation = 0;
  };
  // nullopt: the cluster could not be reached (nothing is known).
  using CountDone = std::function<void(std::optional<Count>)>;
  using ClaimDone = std::function<void(std::optional<bool>)>;

  virtual ~OnlineUsers() = default;

  // This node now has `connections` of `user_id`'s connections; `opened`: one more than
  // before (bumps the generation). `done` (may be empty) gets the cluster's count after it.
  virtual void set_connections(std::string_view user_id, std::size_t connections, bool opened,
                               CountDone done) = 0;
  // `user_id` still has no connection on any live node and no connection opened since
  // `generation`: claims the user's offline report for that generation. true for the one
  // claim that wins, false if the user is online (or came back) or another node claimed it.
  virtual void claim_offline(std::string_view user_id, std::uint64_t generation,
                             ClaimDone done) = 0;
};

}  // namespace roomcast::chat
