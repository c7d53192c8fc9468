// RatePolicy: how many events a budget allows per window, and what happens beyond.
#pragma once

#include <chrono>
#include <cstdint>

namespace roomcast::chat {

struct RatePolicy {
  std::uint32_t max_events = 10;  // per window; 0 disables the limit
  std::chrono::milliseconds window{60'000};
  // The chapter blocks an offender for twice the window. A budget that many people share
  // (an address's) blocks with 0: refused only until its window ends, so that one
  // offender does not lock everybody else on the address out for longer.
  std::uint32_t block_windows = 2;

  bool enabled() const { return max_events > 0 && window.count() > 0; }
  std::chrono::milliseconds block() const { return block_windows * window; }
};

}  // namespace roomcast::chat
