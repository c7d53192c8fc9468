// SweepSchedule: which connections a worker's sweep looks at on each tick of its timer, and
// whether that tick may judge silence.
//
// The sweep looks at every connection once per sweep interval (heartbeats, handshake and
// close deadlines), in slices: one slice of the connection table per tick of a timer that
// runs `slices` times as often. Done in one turn of the loop, the walk and the pings it
// queues (a fifteenth of the connections per sweep at the default heartbeat, with pings
// spread as net/heartbeat.h spreads them) hold every room's delivery for as long as they
// take; in slices that wait is a tenth as long (bench/OPTIMIZATIONS.md, "The sweep in
// slices").
//
// Judging after a stall (net/heartbeat.h): a tick more than a whole sweep interval late means
// the worker was stalled, and answers to its pings may sit unread in sockets it has not
// reached. Then a whole round of slices (every connection once) pings but judges no one, and
// the round after it judges every connection once even if late too, so a worker that stays
// overloaded still drops dead peers, one interval later.
//
// Pure: it keeps a cursor and counters and is given the time and the table's size, so it is
// unit-tested with plain time points (tests/unit/net/sweep_schedule_test.cpp).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>

#include "base/clock.h"

namespace roomcast::net {

class SweepSchedule {
 public:
  // No tick shorter than this: a short interval (a test's 200 ms heartbeat) gets fewer slices.
  static constexpr std::chrono::milliseconds kMinTick{10};
  static constexpr std::size_t kMaxSlices = 10;

  explicit SweepSchedule(std::chrono::milliseconds interval)
      : interval_(interval),
        slices_(
            std::clamp<std::size_t>(static_cast<std::size_t>(interval / kMinTick), 1, kMaxSlices)),
        tick_(interval / static_cast<std::chrono::milliseconds::rep>(slices_)) {}

  std::chrono::milliseconds tick() const { return tick_; }
  std::size_t slices() const { return slices_; }

  // What one tick does: look at slots [begin, end), judging silence or not; `round_done`: this
  // was the last slice of a round (every slot looked at once since the last round_done).
  struct Tick {
    std::size_t begin;
    std::size_t end;
    bool judge;
    bool round_done;
  };

  // The tick running at `now`, over a table of `slots` slots (it may have grown since the last
  // tick: the round then ends a little later than planned, never skipping a slot it has).
  Tick next(base::SteadyTime now, std::size_t slots) {
    const bool late =
        last_tick_at_ != base::SteadyTime{} && now - last_tick_at_ > tick_ + interval_;
    last_tick_at_ = now;
    if (late && unjudged_left_ == 0 && judged_owed_ == 0) {
      unjudged_left_ = slices_;
      judged_owed_ = slices_;
    }
    const bool judge = unjudged_left_ == 0;
    if (unjudged_left_ > 0) {
      --unjudged_left_;
    } else if (judged_owed_ > 0) {
      --judged_owed_;
    }
    const std::size_t per_slice = (slots + slices_ - 1) / slices_;
    const std::size_t begin = std::min(cursor_, slots);
    const std::size_t end = std::min(begin + per_slice, slots);
    cursor_ = end >= slots ? 0 : end;
    return Tick{begin, end, judge, cursor_ == 0};
  }

 private:
  const std::chrono::milliseconds interval_;
  const std::size_t slices_;
  const std::chrono::milliseconds tick_;
  base::SteadyTime last_tick_at_{};  // none yet: the epoch
  std::size_t cursor_ = 0;  // the first slot of the next slice
  std::size_t unjudged_left_ = 0;  // ticks that still ping but judge no one (after a stall)
  std::size_t judged_owed_ = 0;  // then ticks that judge even if late
};

}  // namespace roomcast::net
