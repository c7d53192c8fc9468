// EventLog: where the Hub tells an operator what happens to a connection in the chat (it
// connected, joined or left a room, was refused with an error code), one line per event: the
// detail of a debug log. The Hub holds no address or log of its own: the transport that
// implements this knows each connection's peer and writes the line.
// Called on the Hub's thread; implementations belong to that thread too (one per worker).
#pragma once

#include <string_view>

#include "chat/sink.h"

namespace roomcast::chat {

class EventLog {
 public:
  virtual ~EventLog() = default;
  // Whether anyone reads the events now: the Hub builds no text otherwise.
  virtual bool enabled() const = 0;
  // `event` about connection `who` ("joined room 'general' as 'alice'").
  virtual void note(ConnectionId who, std::string_view event) = 0;
};

}  // namespace roomcast::chat
