// The one rule for a store that lost a room's numbering (Redis emptied by FLUSHALL, a
// restart without persistence or a failover to a lagging replica; an SQLite file deleted
// or replaced): seqs are never given twice. The room's numbering continues from a fresh
// epoch base above any seq the server could have issued before, so a client holding an old
// seq is told `recovered: false` (its `since` predates what the store retains) instead of
// getting other messages under numbers it already saw.
#pragma once

#include <algorithm>
#include <cstdint>

namespace roomcast::chat {

// The first seq of a new epoch: above `last_known_seq` (the newest seq this node knows of)
// and above any seq a room could have reached by `now_unix_ms` (a thousand messages per
// millisecond since 1970). It stays below 2^53 until about the year 2255, so JavaScript
// clients keep exact integers.
constexpr std::uint64_t epoch_seq_base(std::uint64_t last_known_seq, std::int64_t now_unix_ms) {
  const std::uint64_t by_time =
      now_unix_ms > 0 ? static_cast<std::uint64_t>(now_unix_ms) * 1000 : 0;
  return std::max(last_known_seq + 1, by_time);
}

}  // namespace roomcast::chat
