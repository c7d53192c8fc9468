// PublishHook: the application's backend asked, before a message is published, whether it may
// be (--publish-hook; hooks/publish_hook.h sends the question over HTTP). Its verdict: allow,
// allow with a rewritten text (moderation), or refuse with an error code and a reason for the
// sender. What a failure to ask means (a timeout, a backend down, an answer that is not a
// verdict) is the implementation's policy: it answers with allow or a refusal all the same.
//
// Threads: every worker's Hub calls ask() on its own thread; ask() returns at once (it queues,
// never sends: the callers are I/O workers). `done` is called exactly once, on the
// implementation's own thread and never from inside ask(), unless the implementation is
// stopped first (then never): the Hub hands the verdict back to its own thread (see
// Hub::set_publish_hook).
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace roomcast::chat {

// What the backend is asked about: one chat message or durable app event, in one room.
struct PublishQuestion {
  std::string room;
  std::string user_id;
  std::string username;
  // Empty: a chat_message, `message` its text. Else a durable app event's type, `message`
  // its fields (a JSON object's text).
  std::string event_type;
  std::string message;
  std::string client_id;  // the sender's `id`; empty: none
};

struct PublishVerdict {
  // Empty: allowed. Else the error the sender gets (error_code::kDenied, kUnavailable) and
  // its reason.
  std::string error_code;
  std::string reason;
  // Allowed with this text instead of the sender's (a chat message only); already checked
  // by the rules a client's text is (check_message_text).
  std::optional<std::string> rewritten;
};

class PublishHook {
 public:
  virtual ~PublishHook() = default;
  virtual void ask(PublishQuestion question, std::function<void(PublishVerdict)> done) = 0;
};

}  // namespace roomcast::chat
