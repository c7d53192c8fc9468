// Specification of SendQueue (net/send_queue.h): frames leave in order and whole, gathered into
// few writes; a write that stops anywhere inside a frame resumes at that byte; "would block"
// keeps everything; the slow-consumer verdict falls exactly past the byte bound, once, and the
// close it calls for happens after the loop. The transport is a fake that takes what the test
// says, so no socket is involved.
#include "net/send_queue.h"

#include <gtest/gtest.h>

#include <array>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace roomcast::net {
namespace {

base::SharedFrame frame_of(std::string bytes) {
  return base::make_shared_frame(std::move(bytes));
}

// A transport that records every write. It takes at most `per_write` bytes per write and
// `room` bytes in all; taking less than offered answers kWantWrite, as a full socket does
// (`short_is_full`), or kDone, as TLS's partial writes do. `failure` makes every write fail.
class FakeTransport {
 public:
  static constexpr bool kMayHoldInput = false;

  IoResult write(std::span<const iovec> pieces) {
    pieces_per_write.push_back(pieces.size());
    if (failure) return {*failure};
    std::size_t offered = 0;
    for (const iovec& piece : pieces) offered += piece.iov_len;
    const std::size_t take = std::min({offered, per_write, room});
    std::size_t left = take;
    for (const iovec& piece : pieces) {
      const std::size_t n = std::min(left, piece.iov_len);
      wire.append(static_cast<const char*>(piece.iov_base), n);
      left -= n;
    }
    room -= take;
    if (take < offered && short_is_full) return {IoStatus::kWantWrite, take};
    return {IoStatus::kDone, take};
  }

  std::string wire;  // every byte taken, in order
  std::vector<std::size_t> pieces_per_write;
  std::size_t per_write = std::numeric_limits<std::size_t>::max();
  std::size_t room = std::numeric_limits<std::size_t>::max();
  bool short_is_full = true;
  std::optional<IoStatus> failure;
};

constexpr std::size_t kNoBound = std::numeric_limits<std::size_t>::max() / 4;
constexpr SendQueue::Limits kUnbounded{.max_queued_bytes = kNoBound,
                                       .max_bytes_per_turn = kNoBound};

// A SendQueue with a scratch array and a record of the frames reported written.
class Queue {
 public:
  SendQueue::Push push(const base::SharedFrame& frame, std::size_t bound = kNoBound,
                       bool full = false) {
    return queue.push(frame, bound, full);
  }
  SendQueue::FlushResult flush(FakeTransport& transport, SendQueue::Limits limits = kUnbounded) {
    return queue.flush(transport, scratch, limits,
                       [this](const base::SharedFrame& frame) { written.push_back(frame); });
  }

  SendQueue queue;
  std::array<iovec, 64> scratch{};
  std::vector<base::SharedFrame> written;
};

TEST(SendQueue, GathersManySmallFramesIntoOneWrite) {
  Queue q;
  std::string expected;
  std::vector<base::SharedFrame> frames;
  for (int i = 0; i < 40; ++i) {
    frames.push_back(frame_of("message " + std::to_string(i) + ";"));
    expected += *frames.back();
    EXPECT_EQ(q.push(frames.back()), i == 0 ? SendQueue::Push::kFirst : SendQueue::Push::kQueued);
  }
  FakeTransport transport;
  const auto result = q.flush(transport);
  EXPECT_EQ(result.outcome, SendQueue::Flushed::kEmptied);
  EXPECT_EQ(result.bytes, expected.size());
  EXPECT_EQ(transport.pieces_per_write, std::vector<std::size_t>{40});
  EXPECT_EQ(transport.wire, expected);
  EXPECT_EQ(q.written, frames);  // each reported once, in order
  EXPECT_TRUE(q.queue.empty());
  EXPECT_EQ(q.queue.bytes(), 0u);
}

TEST(SendQueue, AnUnsentFrameCanBeDroppedButNeverOnePartlyWrittenOrBeyondTheScan) {
  const auto first = frame_of("first frame");
  const auto second = frame_of("the second one");
  const auto third = frame_of("third");
  Queue q;
  q.push(first);
  q.push(second);
  q.push(third);
  FakeTransport transport;
  transport.room = 3;  // the first frame is partly written
  q.flush(transport);
  EXPECT_FALSE(q.queue.drop_unsent(first.get(), 0, 16));  // cutting it would corrupt framing
  EXPECT_FALSE(q.queue.drop_unsent(second.get(), 0, 1));  // not among the last one
  EXPECT_FALSE(q.queue.drop_unsent(second.get(), first->size(), 16));  // a retry repeats it
  EXPECT_TRUE(q.queue.drop_unsent(second.get(), 0, 16));
  EXPECT_FALSE(q.queue.drop_unsent(second.get(), 0, 16));  // once
  EXPECT_EQ(q.queue.bytes(), first->size() - 3 + third->size());
  transport.room = std::numeric_limits<std::size_t>::max();
  EXPECT_EQ(q.flush(transport).outcome, SendQueue::Flushed::kEmptied);
  EXPECT_EQ(transport.wire, *first + *third);
  EXPECT_EQ(q.written, (std::vector<base::SharedFrame>{first, third}));
}

TEST(SendQueue, MoreFramesThanTheScratchHoldsTakeOneWritePerScratchful) {
  Queue q;
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    q.push(frame_of(std::string(3, static_cast<char>('a' + i % 26))));
    expected += std::string(3, static_cast<char>('a' + i % 26));
  }
  FakeTransport transport;
  EXPECT_EQ(q.flush(transport).outcome, SendQueue::Flushed::kEmptied);
  EXPECT_EQ(transport.pieces_per_write, (std::vector<std::size_t>{64, 36}));
  EXPECT_EQ(transport.wire, expected);
}

// The socket fills at every possible byte of the first frame, and of the second: the next
// flush goes on from exactly that byte, and the peer sees both frames whole and in order.
TEST(SendQueue, APartialWriteResumesAtEveryByteOffset) {
  const auto first = frame_of("first frame");
  const auto second = frame_of("the second one");
  const std::string both = *first + *second;
  for (std::size_t taken = 1; taken < both.size(); ++taken) {
    SCOPED_TRACE(taken);
    Queue q;
    q.push(first);
    q.push(second);
    FakeTransport transport;
    transport.room = taken;
    const auto blocked = q.flush(transport);
    EXPECT_EQ(blocked.outcome, SendQueue::Flushed::kBlocked);
    EXPECT_EQ(blocked.bytes, taken);
    EXPECT_EQ(q.queue.bytes(), both.size() - taken);
    const std::size_t completed = taken >= first->size() ? 1 : 0;
    EXPECT_EQ(q.written.size(), completed);
    EXPECT_EQ(q.queue.frames(), 2 - completed);

    transport.room = std::numeric_limits<std::size_t>::max();  // writable again
    const auto rest = q.flush(transport);
    EXPECT_EQ(rest.outcome, SendQueue::Flushed::kEmptied);
    EXPECT_EQ(rest.bytes, both.size() - taken);
    EXPECT_EQ(transport.wire, both);
    EXPECT_EQ(q.written, (std::vector<base::SharedFrame>{first, second}));
  }
}

// TLS with partial writes: a write may move less than offered and still say kDone; the flush
// goes on writing until everything is out.
TEST(SendQueue, ATransportThatTakesAFewBytesPerWriteIsCalledUntilTheQueueIsEmpty) {
  Queue q;
  q.push(frame_of("abcdefg"));
  q.push(frame_of("hij"));
  FakeTransport transport;
  transport.per_write = 3;
  transport.short_is_full = false;
  const auto result = q.flush(transport);
  EXPECT_EQ(result.outcome, SendQueue::Flushed::kEmptied);
  EXPECT_EQ(result.bytes, 10u);
  EXPECT_EQ(transport.wire, "abcdefghij");
  EXPECT_EQ(transport.pieces_per_write.size(), 4u);  // 3 + 3 + 3 + 1
}

TEST(SendQueue, WouldBlockKeepsEverything) {
  Queue q;
  const auto a = frame_of("alpha");
  const auto b = frame_of("beta");
  q.push(a);
  q.push(b);
  FakeTransport transport;
  transport.room = 0;
  const auto result = q.flush(transport);
  EXPECT_EQ(result.outcome, SendQueue::Flushed::kBlocked);
  EXPECT_EQ(result.bytes, 0u);
  EXPECT_EQ(q.queue.bytes(), 9u);
  EXPECT_EQ(q.queue.frames(), 2u);
  EXPECT_TRUE(q.written.empty());
  EXPECT_TRUE(transport.wire.empty());

  transport.room = 100;
  EXPECT_EQ(q.flush(transport).outcome, SendQueue::Flushed::kEmptied);
  EXPECT_EQ(transport.wire, "alphabeta");
}

TEST(SendQueue, ATlsWantReadAlsoWaits) {
  Queue q;
  q.push(frame_of("x"));
  FakeTransport transport;
  transport.failure = IoStatus::kWantRead;
  EXPECT_EQ(q.flush(transport).outcome, SendQueue::Flushed::kBlocked);
  EXPECT_EQ(q.queue.bytes(), 1u);
}

TEST(SendQueue, AFailedOrClosedTransportEndsTheFlush) {
  for (const IoStatus failure : {IoStatus::kFailed, IoStatus::kClosed}) {
    Queue q;
    q.push(frame_of("lost"));
    FakeTransport transport;
    transport.failure = failure;
    const auto result = q.flush(transport);
    EXPECT_EQ(result.outcome, SendQueue::Flushed::kFailed);
    EXPECT_EQ(result.bytes, 0u);
  }
}

TEST(SendQueue, AFlushStopsOnceItHasWrittenItsTurnsBudget) {
  Queue q;
  for (int i = 0; i < 10; ++i) q.push(frame_of("0123456789"));
  FakeTransport transport;
  transport.per_write = 25;
  transport.short_is_full = false;
  const auto result = q.flush(transport, {.max_queued_bytes = kNoBound, .max_bytes_per_turn = 40});
  // It stops at the first write that reaches the budget: 25, 50.
  EXPECT_EQ(result.outcome, SendQueue::Flushed::kTurnOver);
  EXPECT_EQ(result.bytes, 50u);
  EXPECT_EQ(q.queue.bytes(), 50u);
  EXPECT_EQ(q.written.size(), 5u);
  EXPECT_EQ(q.flush(transport).outcome, SendQueue::Flushed::kEmptied);
  EXPECT_EQ(transport.wire.size(), 100u);
}

TEST(SendQueue, WhileTheTransportIsFullTheVerdictFallsOneBytePastTheBound) {
  constexpr std::size_t kBound = 100;
  Queue q;
  EXPECT_EQ(q.push(frame_of(std::string(60, 'a')), kBound, true), SendQueue::Push::kFirst);
  EXPECT_EQ(q.push(frame_of(std::string(40, 'b')), kBound, true), SendQueue::Push::kQueued);
  EXPECT_EQ(q.queue.bytes(), kBound);  // at the bound: still fine
  EXPECT_FALSE(q.queue.slow_consumer());
  EXPECT_EQ(q.push(frame_of("c"), kBound, true), SendQueue::Push::kSlowConsumer);
  EXPECT_TRUE(q.queue.slow_consumer());
  EXPECT_EQ(q.queue.bytes(), kBound + 1);  // the frame that passed the bound is queued
  // The verdict is given once; what follows is refused and not counted.
  EXPECT_EQ(q.push(frame_of("d"), kBound, true), SendQueue::Push::kRefused);
  EXPECT_EQ(q.push(frame_of("e"), kBound, false), SendQueue::Push::kRefused);
  EXPECT_EQ(q.queue.bytes(), kBound + 1);
  EXPECT_EQ(q.queue.frames(), 3u);
}

// Before a flush has had its chance, a burst may reach twice the bound.
TEST(SendQueue, WhileTheTransportTakesBytesABurstMayReachTwiceTheBound) {
  constexpr std::size_t kBound = 100;
  Queue q;
  EXPECT_EQ(q.push(frame_of(std::string(150, 'a')), kBound, false), SendQueue::Push::kFirst);
  EXPECT_EQ(q.push(frame_of(std::string(50, 'b')), kBound, false), SendQueue::Push::kQueued);
  EXPECT_EQ(q.queue.bytes(), 2 * kBound);
  EXPECT_EQ(q.push(frame_of("c"), kBound, false), SendQueue::Push::kSlowConsumer);
}

// The flush judges again once it has written: over the bound with the transport full.
TEST(SendQueue, AFlushThatLeavesMoreThanTheBoundGivesTheVerdictOnce) {
  constexpr std::size_t kBound = 100;
  const SendQueue::Limits limits{.max_queued_bytes = kBound, .max_bytes_per_turn = kNoBound};
  Queue q;
  q.push(frame_of(std::string(150, 'a')), kBound, false);
  FakeTransport transport;
  transport.room = 49;  // leaves 101
  EXPECT_EQ(q.flush(transport, limits).outcome, SendQueue::Flushed::kSlowConsumer);
  EXPECT_TRUE(q.queue.slow_consumer());
  transport.room = 0;
  EXPECT_EQ(q.flush(transport, limits).outcome, SendQueue::Flushed::kBlocked);  // not again
}

TEST(SendQueue, AFlushThatLeavesExactlyTheBoundIsNoVerdict) {
  constexpr std::size_t kBound = 100;
  const SendQueue::Limits limits{.max_queued_bytes = kBound, .max_bytes_per_turn = kNoBound};
  Queue q;
  q.push(frame_of(std::string(150, 'a')), kBound, false);
  FakeTransport transport;
  transport.room = 50;  // leaves 100
  EXPECT_EQ(q.flush(transport, limits).outcome, SendQueue::Flushed::kBlocked);
  EXPECT_FALSE(q.queue.slow_consumer());
}

// A fan-out loop meets the bound at one recipient: the verdict is given there, the rest of the
// loop's frames are refused, and only after the loop is the backlog dropped for the close
// frame — except the frame already partly on the wire, whose rest must go first.
TEST(SendQueue, TheCloseHappensAfterTheLoopBehindAPartlyWrittenFrame) {
  constexpr std::size_t kBound = 20;
  Queue q;
  const auto started = frame_of("0123456789");
  q.push(started, kBound, false);
  FakeTransport transport;
  transport.room = 4;
  ASSERT_EQ(q.flush(transport).outcome, SendQueue::Flushed::kBlocked);  // 6 bytes left

  std::vector<SendQueue::Push> verdicts;
  for (int i = 0; i < 5; ++i) verdicts.push_back(q.push(frame_of("abcdefg"), kBound, true));
  EXPECT_EQ(verdicts,
            (std::vector<SendQueue::Push>{SendQueue::Push::kQueued, SendQueue::Push::kQueued,
                                          SendQueue::Push::kSlowConsumer, SendQueue::Push::kRefused,
                                          SendQueue::Push::kRefused}));
  EXPECT_EQ(q.queue.bytes(), 6u + 3 * 7);

  const auto close = frame_of("CLOSE");
  q.queue.close_after_loop(close);
  EXPECT_EQ(q.queue.bytes(), 6u + 5);
  EXPECT_EQ(q.queue.frames(), 2u);
  EXPECT_TRUE(q.queue.slow_consumer());
  EXPECT_EQ(q.push(frame_of("late"), kBound, false), SendQueue::Push::kRefused);

  transport.room = 100;
  EXPECT_EQ(q.flush(transport).outcome, SendQueue::Flushed::kEmptied);
  EXPECT_EQ(transport.wire, "0123456789CLOSE");
  EXPECT_EQ(q.written, (std::vector<base::SharedFrame>{started, close}));
}

TEST(SendQueue, TheCloseAfterTheLoopDropsEveryFrameNotYetStarted) {
  Queue q;
  q.push(frame_of("one"), 4, true);
  ASSERT_EQ(q.push(frame_of("two"), 4, true), SendQueue::Push::kSlowConsumer);
  q.queue.close_after_loop(frame_of("CLOSE"));
  EXPECT_EQ(q.queue.bytes(), 5u);
  FakeTransport transport;
  EXPECT_EQ(q.flush(transport).outcome, SendQueue::Flushed::kEmptied);
  EXPECT_EQ(transport.wire, "CLOSE");
}

TEST(SendQueue, APingGoesAheadOfEveryFrameNotYetStarted) {
  Queue q;
  q.push(frame_of("aaaa"));
  q.push(frame_of("bbbb"));
  FakeTransport transport;
  transport.room = 2;
  q.flush(transport);  // "aa" written, "aa" left of the first frame
  EXPECT_EQ(q.queue.push_ahead(frame_of("P"), 0), SendQueue::Push::kQueued);
  EXPECT_EQ(q.queue.bytes(), 2u + 4 + 1);
  transport.room = 100;
  q.flush(transport);
  EXPECT_EQ(transport.wire, "aaaaPbbbb");
}

TEST(SendQueue, APingKeepsOutOfTheBytesARetryMustRepeat) {
  Queue q;
  q.push(frame_of("aaaa"));
  q.push(frame_of("bbbb"));
  q.push(frame_of("cccc"));
  q.queue.push_ahead(frame_of("P"), 5);  // the first 5 bytes reach into "bbbb"
  FakeTransport transport;
  q.flush(transport);
  EXPECT_EQ(transport.wire, "aaaabbbbPcccc");
}

TEST(SendQueue, APingIntoAnEmptyQueueIsItsFirstFrame) {
  Queue q;
  EXPECT_EQ(q.queue.push_ahead(frame_of("P"), 0), SendQueue::Push::kFirst);
  EXPECT_EQ(q.queue.frames(), 1u);
}

TEST(SendQueue, ClearDropsEverything) {
  Queue q;
  q.push(frame_of("abc"));
  q.push(frame_of("def"));
  q.queue.clear();
  EXPECT_TRUE(q.queue.empty());
  EXPECT_EQ(q.queue.bytes(), 0u);
  FakeTransport transport;
  EXPECT_EQ(q.flush(transport).outcome, SendQueue::Flushed::kEmptied);
  EXPECT_TRUE(transport.pieces_per_write.empty());
}

}  // namespace
}  // namespace roomcast::net
