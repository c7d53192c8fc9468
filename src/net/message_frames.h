// MessageFrames: the frames one outgoing data message may leave in, each built once (for an
// event stream, the server-sent event instead of a frame).
#pragma once

#include <cstddef>
#include <string_view>

#include "base/shared_frame.h"
#include "ws/frame.h"

namespace roomcast::net {

class Connection;
class Worker;

// A message (a chat event, an echo) on its way to one or more connections of one worker: the
// plain frame, and the compressed one (RSV1 set, permessage-deflate) for connections that
// negotiated it. Each is built at most once, on the first recipient that needs it, and shared
// by every recipient after it (STYLE.md: encode once, reference many). The compressed frame
// is compressed without context takeover, so it is valid on every such connection; only
// connections with a context of their own (--compression dedicated) get one each.
//
// Short-lived: made and dropped within one call on the worker's thread; `payload` must
// outlive it.
class MessageFrames {
 public:
  MessageFrames(Worker& worker, ws::Opcode opcode, std::string_view payload);
  MessageFrames(const MessageFrames&) = delete;
  MessageFrames& operator=(const MessageFrames&) = delete;

  // The frame `to` is sent: compressed if it negotiated deflate (with a window that covers
  // the message, RFC 7692 section 7.1.2.1) and the message is not below
  // --compression-min-bytes; plain otherwise. A connection with a compression context of its
  // own (--compression dedicated) gets a frame compressed for it alone, valid until the next
  // call: queue it before asking for another.
  const base::SharedFrame& for_connection(const Connection& to);
  // The shared frames made so far (null if no recipient needed that one).
  const base::SharedFrame& plain() const { return plain_; }
  const base::SharedFrame& compressed() const { return compressed_; }

 private:
  Worker& worker_;
  std::string_view payload_;
  ws::Opcode opcode_;
  bool compressible_;
  base::SharedFrame plain_;
  base::SharedFrame compressed_;
  base::SharedFrame dedicated_;
  base::SharedFrame event_;  // the server-sent event, for event streams (text, no framing)
};

}  // namespace roomcast::net
