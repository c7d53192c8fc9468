// PublishHookOptions: where roomcast asks whether a message may be published, and what it does
// when the backend cannot say (--publish-hook*). A header of its own so that config/ sets them
// without building the hook's thread.
#pragma once

#include <chrono>
#include <string>

#include "chat/protocol.h"

namespace roomcast::hooks {

// When the backend does not give a verdict in time (down, slow, 5xx, an answer that is not a
// verdict, a rewrite that breaks the message rules):
enum class FailurePolicy {
  kFailOpen,  // the message is published as sent
  kFailClosed,  // it is refused with `unavailable` (the sender may resend it later)
};

struct PublishHookOptions {
  // http[s]://HOST[:PORT][/PATH]; empty: no publish hook.
  std::string url;
  // https://: the PEM file of the CA certificates the backend's must chain to; empty: the
  // system's (--backend-ca-file, shared with the webhooks).
  std::string ca_file;
  // Signs every question (X-Roomcast-Signature, as webhooks do); empty: unsigned.
  std::string secret;
  // From the question's start to its verdict; beyond, the failure policy decides. Messages
  // of the room wait behind the question meanwhile, so it stays short.
  std::chrono::milliseconds timeout{2000};
  // Closed by default: a hook exists to keep some messages out (moderation, permissions),
  // and a backend that cannot answer must not open the door to what it would refuse.
  FailurePolicy policy = FailurePolicy::kFailClosed;
  // The rules a rewritten text must pass (a client's chat_message's).
  chat::ProtocolLimits limits{};
};

}  // namespace roomcast::hooks
