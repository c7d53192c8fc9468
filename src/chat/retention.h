// Retention: which of a room's messages history keeps. One rule for every store and for the
// Hub's in-memory window: the newest `max_messages` of the room, none older than `max_age`.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace roomcast::chat {

struct Retention {
  std::size_t max_messages = 1000;
  std::chrono::milliseconds max_age{0};  // zero: no age limit

  // The oldest timestamp (Unix ms) still kept at `now_ms`; the lowest int64 without an age
  // limit, so that every comparison with it keeps the message.
  std::int64_t oldest_kept_ms(std::int64_t now_ms) const {
    if (max_age.count() <= 0) return std::numeric_limits<std::int64_t>::min();
    return now_ms - max_age.count();
  }
  bool keeps(std::int64_t timestamp_ms, std::int64_t now_ms) const {
    return timestamp_ms >= oldest_kept_ms(now_ms);
  }
};

}  // namespace roomcast::chat
