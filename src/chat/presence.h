// Presence: who is in a room on the other nodes of a cluster. A single node needs none of
// this; with a cluster store (cluster::RedisCluster) the Hub tells the cluster about its
// local members and typing signals, and hears about everyone else's, so `user_list`,
// "NAME joined the chat" and typing indicators span every node.
#pragma once

#include <string>
#include <string_view>

#include "chat/sink.h"

namespace roomcast::chat {

// A member of a room connected to another node.
struct RemoteMember {
  // Unique in the cluster and stable for the member's stay: the node's instance id and its
  // connection id.
  std::string id;
  std::string user_id;
  std::string username;
  // Holds a verified token (user_id is then the token's subject): nobody anonymous passes
  // for such a member by taking the name.
  bool authenticated = false;
};

class Presence {
 public:
  // How the cluster reports other nodes' members. Called from the cluster's thread for
  // rooms this node follows (HistoryStore::load), never while it holds a lock its other
  // methods take. Each member is reported joined once and left once; a node that dies has
  // its members reported left once its liveness entry expires.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void on_member_joined(std::string_view room, const RemoteMember& member) = 0;
    virtual void on_member_left(std::string_view room, std::string_view member_id) = 0;
    virtual void on_typing(std::string_view room, std::string_view user_id,
                           std::string_view username, bool started) = 0;
  };

  virtual ~Presence() = default;

  // Sets (or, with nullptr, clears) the listener.
  virtual void set_presence_listener(Listener* listener) = 0;

  // A local connection joined or left a loaded room; a typing signal changed state. Return
  // at once (never wait for the network). Thread-safe.
  virtual void member_joined(std::string_view room, ConnectionId who, std::string_view user_id,
                             std::string_view username, bool authenticated) = 0;
  virtual void member_left(std::string_view room, ConnectionId who) = 0;
  virtual void typing(std::string_view room, std::string_view user_id, std::string_view username,
                      bool started) = 0;
};

}  // namespace roomcast::chat
