// Presence: who is in a room on the other nodes of a cluster. A single node needs none of
// this; with a cluster store (cluster::RedisCluster) the Hub tells the cluster about its
// local members and typing signals, and hears about everyone else's, so `user_list`,
// "NAME joined the chat" and typing indicators span every node.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "chat/member.h"
#include "chat/sink.h"

namespace roomcast::chat {

class Presence {
 public:
  // How the cluster reports other nodes' members. Called from the cluster's thread for
  // rooms this node follows (HistoryStore::load), never while it holds a lock its other
  // methods take. Each member is reported joined once and left once; a node that dies has
  // its members reported left once its liveness entry expires.
  class Listener {
   public:
    virtual ~Listener() = default;
    // A member is its record: `on_member_left` names the record `on_member_joined` gave.
    virtual void on_member_joined(std::string_view room, const MemberRef& member) = 0;
    virtual void on_member_left(std::string_view room, const MemberRef& member) = 0;
    virtual void on_typing(std::string_view room, std::string_view user_id,
                           std::string_view username, bool started) = 0;
    // Something for the members of `room` that no store numbers or keeps: `payload` is what
    // they receive, one copy shared by every worker; an ephemeral app event's JSON text for
    // every member, or (`binary`) a binary message for the members that joined with binary.
    virtual void on_relayed(std::string_view room,
                            const std::shared_ptr<const std::string>& payload, bool binary) {
      static_cast<void>(room);
      static_cast<void>(payload);
      static_cast<void>(binary);
    }
  };

  virtual ~Presence() = default;

  // Sets (or, with nullptr, clears) the listener.
  virtual void set_presence_listener(Listener* listener) = 0;

  // A local connection joined or left a loaded room; a typing signal changed state. Return
  // at once (never wait for the network). Thread-safe.
  // `member` is the connection's record (the same for every room it joins).
  virtual void member_joined(std::string_view room, ConnectionId who, const MemberRef& member) = 0;
  virtual void member_left(std::string_view room, ConnectionId who, const MemberRef& member) = 0;
  virtual void typing(std::string_view room, std::string_view user_id, std::string_view username,
                      bool started) = 0;
  // An unstored event from local connection `who` for the members of `room` elsewhere (the
  // sender's Hub has delivered it to its own). Returns at once. Thread-safe. A Presence that
  // reaches nobody else (the default) drops it.
  virtual void relay(std::string_view room, ConnectionId who,
                     const std::shared_ptr<const std::string>& payload, bool binary) {
    static_cast<void>(room);
    static_cast<void>(who);
    static_cast<void>(payload);
    static_cast<void>(binary);
  }

  // Users: local connection `who` of user `user_id` opened or closed (each reported once).
  virtual void user_connected(ConnectionId who, std::string_view user_id) {
    static_cast<void>(who);
    static_cast<void>(user_id);
  }
  virtual void user_disconnected(ConnectionId who, std::string_view user_id) {
    static_cast<void>(who);
    static_cast<void>(user_id);
  }
  // Whether user `user_id` may have a connection elsewhere (other workers, other nodes): false
  // only when this Presence knows they have none. Returns at once. Thread-safe.
  virtual bool may_reach_user(std::string_view user_id) {
    static_cast<void>(user_id);
    return false;
  }
};

}  // namespace roomcast::chat
