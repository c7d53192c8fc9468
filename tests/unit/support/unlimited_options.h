// Hub options for tests that send more than a user may: every rate limit off.
#pragma once

#include "chat/hub.h"

namespace roomcast::test_support {

inline chat::HubOptions unlimited_options() {
  chat::HubOptions o;
  o.message_rate.max_events = 0;
  o.signal_rate.max_events = 0;
  o.address_message_rate.max_events = 0;
  o.address_signal_rate.max_events = 0;
  return o;
}

}  // namespace roomcast::test_support
