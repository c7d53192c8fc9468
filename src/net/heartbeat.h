// The heartbeat rule: when a WebSocket gets a ping, and when its silence ends it.
//
// Pure: it reads the times a connection records and the time of the sweep, and says what to
// do, so the rule is unit-tested with plain time points (tests/unit/net/heartbeat_test.cpp).
// The Connection owns the state; the worker's sweep asks judge_heartbeat() about each open
// connection.
//
// The rule judges what the server actually asked, not when its sweep happened to run. A
// saturated worker runs its sweep late and writes late; judging silence against the sweep's
// schedule would end clients whose ping left late or whose answer is still unread. So:
//  - A ping goes out ping_interval after the previous ping was written to the socket (or
//    after the upgrade), and only once the previous one is answered: a silent peer gets one
//    ping, and its wait is not restarted by more.
//  - A ping is "sent" when its last byte is handed to the kernel. It is queued ahead of
//    everything not yet started, so bulk fan-out does not delay it; a peer that reads
//    nothing still cannot hold it off forever (see kQueued below).
//  - Anything received (a pong, a frame, any byte) answers it.
//  - A connection is terminated only when (1) nothing was received for idle_timeout, and
//    (2) a ping was sent at least idle_timeout - ping_interval ago (the pong wait) and
//    nothing was received since, or a ping has waited that long for a peer that reads
//    nothing. The caller then also checks the socket: bytes the kernel holds unread are
//    activity (the worker has not got to them yet), and save the connection.
//  - A ping is ahead of our queue, not of what our send buffer and the peer's receive buffer
//    already hold (megabytes on a fast link): a peer working through that reaches the ping
//    late, and is alive. So when the peer's kernel has taken more of our stream since the
//    ping was queued than the ping itself, the caller forgives the ping and asks again
//    (may_forgive_behind_backlog), for at most kBacklogGraceTimeouts idle timeouts of
//    silence: a client that far behind is better reconnected and caught up from history,
//    and one that reads but never answers is ended too. A dead peer, or one whose
//    application reads nothing, takes nothing once its receive buffer is full: that delays
//    its end by at most one buffer's worth of our traffic.
// When the server keeps its schedule, (1) decides, exactly as "silent for idle_timeout";
// when it runs late, (2) gives each ping its full wait from the moment it really left.
#pragma once

#include <chrono>
#include <cstdint>

#include "base/clock.h"

namespace roomcast::net {

enum class PingState : std::uint8_t {
  kNone,  // no ping waiting for an answer: `ping_at` is when the last one was sent
  kQueued,  // a ping is queued but not yet written: `ping_at` is when it was queued
  kSent,  // a ping was written at `ping_at`; answered once something arrives after that
};

enum class HeartbeatAction : std::uint8_t {
  kNothing,
  kPing,  // queue a ping (ahead of unsent data) and record kQueued at `now`
  kTerminate,  // silent past the rule, unless the socket holds unread bytes
};

struct HeartbeatTimes {
  base::SteadyTime last_received;  // last byte received (or the upgrade)
  base::SteadyTime ping_at;  // see PingState
  PingState ping = PingState::kNone;
};

struct HeartbeatLimits {
  std::chrono::milliseconds ping_interval;
  std::chrono::milliseconds idle_timeout;  // more than ping_interval (checked at start)
};

// `judge`: false when the worker's sweep ran late (Worker::do_sweep): this turn only pings,
// so a stalled loop does not judge clients by answers it has not yet read.
inline HeartbeatAction judge_heartbeat(const HeartbeatTimes& t, base::SteadyTime now,
                                       const HeartbeatLimits& limits, bool judge) {
  const bool answered =
      t.ping == PingState::kNone || (t.ping == PingState::kSent && t.last_received >= t.ping_at);
  if (answered) {
    return now - t.ping_at >= limits.ping_interval ? HeartbeatAction::kPing
                                                   : HeartbeatAction::kNothing;
  }
  const auto pong_wait = limits.idle_timeout - limits.ping_interval;
  const bool silent_since_ping = t.last_received < t.ping_at && now - t.ping_at >= pong_wait;
  if (judge && silent_since_ping && now - t.last_received >= limits.idle_timeout) {
    return HeartbeatAction::kTerminate;
  }
  return HeartbeatAction::kNothing;
}

// How much sooner than a whole ping_interval the `nth` connection a worker opens gets its
// first ping: a lead in [0, ping_interval). Connections opened together (clients reconnecting
// after a restart, a load test) would otherwise share one ping schedule for as long as they
// live: one sweep queuing a ping to every one of them, and their pongs arriving together, a
// stall of every room's delivery (2,000 connections: up to 20 ms; bench/OPTIMIZATIONS.md,
// "Pings spread over the interval"). The lead is n times the golden ratio, modulo 1, of the
// interval: any run of consecutive connections spreads evenly over it, and so do their later
// pings, each an interval after the one before was written.
inline std::chrono::milliseconds first_ping_lead(std::uint64_t nth,
                                                 std::chrono::milliseconds ping_interval) {
  constexpr std::uint64_t kGoldenFraction = 0x9E3779B97F4A7C15;  // 2^64 / golden ratio
  const double fraction = static_cast<double>(nth * kGoldenFraction) * 0x1p-64;
  return std::chrono::duration_cast<std::chrono::milliseconds>(ping_interval * fraction);
}

// How many idle timeouts of silence a peer that keeps taking our data may have before it is
// ended anyway (2 minutes at the default 30 s).
inline constexpr int kBacklogGraceTimeouts = 4;

// Whether a kTerminate may be forgiven because the peer is taking our backlog (the caller
// knows that from the socket); false once the silence reaches kBacklogGraceTimeouts.
inline bool may_forgive_behind_backlog(const HeartbeatTimes& t, base::SteadyTime now,
                                       const HeartbeatLimits& limits) {
  return now - t.last_received < kBacklogGraceTimeouts * limits.idle_timeout;
}

}  // namespace roomcast::net
