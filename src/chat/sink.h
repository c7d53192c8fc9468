// Sink: how the chat domain hands messages to connections, without knowing sockets.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"

namespace roomcast::chat {

// Identifies one client connection for its whole life. Never reused while the Hub may
// still name it; zero means "no connection". The transport chooses the values.
using ConnectionId = std::uint64_t;
inline constexpr ConnectionId kNoConnection = 0;

// An immutable snapshot of a room's members, in join order. Shared, never mutated: a
// membership change makes a new snapshot, so a broadcast in flight keeps the one it had.
using MemberSnapshot = std::shared_ptr<const std::vector<ConnectionId>>;

// What the transport measures of a chat message it delivers (delivery latency, fan-out).
struct Delivery {
  // When a Hub of this node accepted the message from its sender; default: another node's
  // message, which this node's clock cannot date.
  base::SteadyTime accepted_at{};
  // Recipients on every worker and node, given by the sender's worker only (0 elsewhere),
  // so that each message is counted once.
  std::size_t fan_out = 0;
};

// Implemented by the transport (net/) and by test doubles.
//
// Ordering contract: calls naming the same recipient must reach it in call order, whether
// they were send() or broadcast(). The Hub relies on this for per-room order.
// Thread: the Hub calls these while holding its lock, possibly from any worker thread,
// so implementations must be quick and must not call back into the Hub.
class Sink {
 public:
  virtual ~Sink() = default;

  // Queues one text message (a complete JSON document) for one connection.
  virtual void send(ConnectionId to, std::string payload) = 0;

  // Queues one text message for every member of `members` except `except`
  // (kNoConnection for none). The payload is encoded once for all recipients.
  virtual void broadcast(const MemberSnapshot& members, std::string payload,
                         ConnectionId except) = 0;

  // broadcast() of a chat message to every member, with what the transport measures of it.
  // A transport that measures nothing (a test double) need not override it.
  virtual void broadcast_message(const MemberSnapshot& members, std::string payload,
                                 ConnectionId except, const Delivery& delivery) {
    static_cast<void>(delivery);
    broadcast(members, std::move(payload), except);
  }

  // As broadcast, for a message that only matters until the next one of the same `key` (an
  // ephemeral app event of a conflating type: a player's position): a recipient that has not
  // been sent the previous one yet (a slow reader) may get only the newer one. By default, a
  // plain broadcast.
  virtual void broadcast_latest(const MemberSnapshot& members, std::string payload,
                                ConnectionId except, std::uint64_t key) {
    static_cast<void>(key);
    broadcast(members, std::move(payload), except);
  }

  // Queues one binary message, unchanged, for every member of `members` except `except`;
  // framed once for all recipients.
  virtual void broadcast_binary(const MemberSnapshot& members, std::string_view payload,
                                ConnectionId except) = 0;

  // Asks the transport to close a connection with a WebSocket close code.
  virtual void close(ConnectionId who, std::uint16_t close_code, std::string reason) = 0;

  // Backpressure on a sender. hold true: read nothing more of `who` from the message being
  // handled on (the rest of its input waits unparsed, then in its socket, so TCP pushes back
  // on the sender); in effect before the call returns. hold false: read it again, after the
  // current batch of work (what was held is then handled in order, never inside a Hub call);
  // a hold asked meanwhile cancels it. Writes, pings and closes go on while reading is held.
  virtual void hold_reading(ConnectionId who, bool hold) = 0;
};

}  // namespace roomcast::chat
