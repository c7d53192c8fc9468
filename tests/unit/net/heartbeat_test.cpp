// Specification of the heartbeat rule (net/heartbeat.h): a connection is pinged on the
// server's schedule and terminated only for silence after a ping that really left, judged
// against the times the ping was queued and written, however late the sweep runs.
#include "net/heartbeat.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>

namespace roomcast::net {
namespace {

using std::chrono::milliseconds;

// --ping-interval 2s --idle-timeout 4s, as in the report of issue 21: a 2 s pong wait.
constexpr HeartbeatLimits kLimits{milliseconds(2000), milliseconds(4000)};

// What a Connection records, moved by hand: the upgrade, bytes received, pings queued by a
// sweep and written by a flush.
class Peer {
 public:
  // Opened at 0; its first ping comes `first_ping_lead` ms sooner than a whole interval, as
  // the Connection records it (net/heartbeat.h, first_ping_lead).
  explicit Peer(int first_ping_lead = 0) {
    times_.last_received = at(0);
    times_.ping_at = at(-first_ping_lead);
  }

  static base::SteadyTime at(int ms) { return base::SteadyTime{} + milliseconds(ms); }

  HeartbeatAction sweep(int ms, bool judge = true) {
    const HeartbeatAction action = judge_heartbeat(times_, at(ms), kLimits, judge);
    if (action == HeartbeatAction::kPing) {
      times_.ping = PingState::kQueued;
      times_.ping_at = at(ms);
    }
    return action;
  }
  void ping_written(int ms) {
    ASSERT_EQ(times_.ping, PingState::kQueued);
    times_.ping = PingState::kSent;
    times_.ping_at = at(ms);
  }
  void received(int ms) { times_.last_received = at(ms); }

 private:
  HeartbeatTimes times_;
};

TEST(Heartbeat, PingsOncePingIntervalHasPassedSinceTheUpgrade) {
  Peer peer;
  EXPECT_EQ(peer.sweep(1999), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(2000), HeartbeatAction::kPing);
}

TEST(Heartbeat, OnScheduleASilentPeerIsTerminatedAfterExactlyTheIdleTimeout) {
  Peer peer;
  ASSERT_EQ(peer.sweep(2000), HeartbeatAction::kPing);
  peer.ping_written(2000);
  EXPECT_EQ(peer.sweep(3999), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(4000), HeartbeatAction::kTerminate);
}

TEST(Heartbeat, APeerThatAnswersEveryPingIsPingedEveryIntervalAndNeverTerminated) {
  Peer peer;
  for (int t = 2000; t <= 60'000; t += 2000) {
    ASSERT_EQ(peer.sweep(t), HeartbeatAction::kPing) << t;
    peer.ping_written(t);
    peer.received(t + 50);  // the pong
    EXPECT_EQ(peer.sweep(t + 1000), HeartbeatAction::kNothing) << t;
  }
}

// The defect of issue 21: the sweep that should ping at 2 s runs at 2.5 s and the ping
// leaves at 3.5 s, behind the worker's fan-out. The old rule saw 4.1 s of silence at the
// 4.2 s sweep and terminated a peer that had been asked only 0.7 s before.
TEST(Heartbeat, ALateSweepAndALateWriteGiveThePingItsWholeWait) {
  Peer peer;
  peer.received(100);
  ASSERT_EQ(peer.sweep(2500), HeartbeatAction::kPing);
  peer.ping_written(3500);
  EXPECT_EQ(peer.sweep(4200), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(5400), HeartbeatAction::kNothing);
  peer.received(5450);  // its pong
  // The next is due an interval after the last one really left.
  EXPECT_EQ(peer.sweep(5499), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(5500), HeartbeatAction::kPing);
}

TEST(Heartbeat, ASilentPeerIsTerminatedAPongWaitAfterALatePingReallyLeft) {
  Peer peer;
  peer.received(100);
  ASSERT_EQ(peer.sweep(2500), HeartbeatAction::kPing);
  peer.ping_written(3500);
  EXPECT_EQ(peer.sweep(5499), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(5500), HeartbeatAction::kTerminate);
}

TEST(Heartbeat, AnUnansweredPingIsNotRepeatedSoItsWaitIsNeverRestarted) {
  Peer peer;
  ASSERT_EQ(peer.sweep(2000), HeartbeatAction::kPing);
  peer.ping_written(2000);
  EXPECT_EQ(peer.sweep(3000), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(3999), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(4000), HeartbeatAction::kTerminate);
}

TEST(Heartbeat, AnythingReceivedAfterThePingAnswersIt) {
  Peer peer;
  ASSERT_EQ(peer.sweep(2000), HeartbeatAction::kPing);
  peer.ping_written(2000);
  peer.received(3900);  // a chat message, not a pong: still a sign of life
  EXPECT_EQ(peer.sweep(4000), HeartbeatAction::kPing);  // the next one is due
}

TEST(Heartbeat, SilenceShorterThanTheIdleTimeoutNeverTerminates) {
  Peer peer;
  ASSERT_EQ(peer.sweep(2000), HeartbeatAction::kPing);
  peer.received(2001);  // just before the ping left
  peer.ping_written(2002);
  EXPECT_EQ(peer.sweep(4002), HeartbeatAction::kNothing);  // pong wait over, 4.001 s silent
  EXPECT_EQ(peer.sweep(6000), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(6001), HeartbeatAction::kTerminate);
}

// A peer that reads nothing: its socket is full and the ping never leaves. It cannot hold the
// verdict off: silence since the ping was queued counts.
TEST(Heartbeat, APingThatCannotBeWrittenStillEndsAPeerThatNeitherReadsNorSends) {
  Peer peer;
  ASSERT_EQ(peer.sweep(2000), HeartbeatAction::kPing);
  EXPECT_EQ(peer.sweep(3999), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(4000), HeartbeatAction::kTerminate);
}

TEST(Heartbeat, APeerThatSendsWhileItsPingWaitsToBeWrittenIsAlive) {
  Peer peer;
  ASSERT_EQ(peer.sweep(2000), HeartbeatAction::kPing);
  peer.received(2500);
  EXPECT_EQ(peer.sweep(7000), HeartbeatAction::kNothing);
}

TEST(Heartbeat, ASweepThatMayNotJudgeStillPingsButTerminatesNoOne) {
  Peer peer;
  ASSERT_EQ(peer.sweep(2000, /*judge=*/false), HeartbeatAction::kPing);
  peer.ping_written(2000);
  EXPECT_EQ(peer.sweep(9000, /*judge=*/false), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(9500), HeartbeatAction::kTerminate);
}

// A peer taking the backlog in front of its ping (the caller sees that on the socket) is
// forgiven and asked again, but not once its silence reaches kBacklogGraceTimeouts idle
// timeouts: then it is ended like any silent peer.
TEST(Heartbeat, APeerBehindABacklogIsForgivenForAtMostTheGrace) {
  const HeartbeatTimes times{Peer::at(0), Peer::at(2000), PingState::kSent};
  EXPECT_TRUE(may_forgive_behind_backlog(times, Peer::at(4000), kLimits));
  EXPECT_TRUE(may_forgive_behind_backlog(times, Peer::at(15'999), kLimits));
  EXPECT_FALSE(may_forgive_behind_backlog(times, Peer::at(16'000), kLimits));
}

// Connections opened together must not share a ping schedule: one sweep would ping them all
// at once. Any run of consecutive connections, from the first or from any later one, has its
// first pings spread evenly over the interval.
TEST(Heartbeat, FirstPingsOfConsecutiveConnectionsSpreadEvenlyOverTheInterval) {
  const milliseconds interval(15'000);
  for (const std::uint64_t first : {std::uint64_t{0}, std::uint64_t{12'345}}) {
    std::array<int, 10> per_tenth{};  // how many leads fall in each tenth of the interval
    for (std::uint64_t n = first; n < first + 1000; ++n) {
      const milliseconds lead = first_ping_lead(n, interval);
      ASSERT_GE(lead.count(), 0) << n;
      ASSERT_LT(lead, interval) << n;
      ++per_tenth[static_cast<std::size_t>(lead * 10 / interval)];
    }
    for (const int count : per_tenth) {
      EXPECT_GE(count, 95) << first;
      EXPECT_LE(count, 105) << first;
    }
  }
}

// A lead only brings the first ping forward: a silent peer still has the whole idle timeout,
// counted from the upgrade, before it is ended.
TEST(Heartbeat, AnEarlyFirstPingStillGivesASilentPeerTheWholeIdleTimeout) {
  Peer peer(/*first_ping_lead=*/1500);
  EXPECT_EQ(peer.sweep(499), HeartbeatAction::kNothing);
  ASSERT_EQ(peer.sweep(500), HeartbeatAction::kPing);
  peer.ping_written(500);
  EXPECT_EQ(peer.sweep(3999), HeartbeatAction::kNothing);
  EXPECT_EQ(peer.sweep(4000), HeartbeatAction::kTerminate);
}

}  // namespace
}  // namespace roomcast::net
