// History pages for the HTTP API (GET /api/rooms/{room}/messages), read from the store: the
// store has every message any member was ever shown (delivery follows the durable commit), so
// a page needs no Hub and no worker.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/clock.h"
#include "chat/history_store.h"
#include "chat/protocol.h"
#include "chat/retention.h"

namespace roomcast::chat {

struct HistoryPage {
  std::string room;  // the name, as the rules trimmed it
  std::uint64_t last_seq = 0;  // the room's newest seq (0: nothing was ever said)
  std::vector<std::string> messages;  // chat_message JSON documents, oldest first
};
using HistoryResult = std::variant<HistoryPage, ProtocolError>;
using HistoryDone = std::function<void(HistoryResult)>;

// A room's history: with `since`, the oldest `limit` messages after it (page forward by passing
// the last seq seen); without, the newest `limit`. An invalid room name gets the error a join
// would; a store that cannot be reached, `cluster_unavailable`. Calls `done` once: before
// returning, or later from the store's thread (a network store). Messages past `retention` are
// not served even if the store still holds them. Thread-safe if the store is; the clock must
// outlive the read.
void read_history_page(HistoryStore& store, const base::Clock& clock, Retention retention,
                       const ProtocolLimits& limits, std::string_view room,
                       std::optional<std::uint64_t> since, std::size_t limit, HistoryDone done);

}  // namespace roomcast::chat
