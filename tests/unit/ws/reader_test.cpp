// Specification of the receiving side (RFC 6455 sections 5 and 8): what the Reader
// delivers, and which close code each protocol violation earns.
#include "ws/reader.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "recording_handler.h"
#include "ws/frame.h"

// Counts heap allocations, to hold the Reader to its promise that whole frames cost none.
namespace {
std::size_t g_allocations = 0;
}  // namespace

// Kept out of line, new and delete alike: once either is inlined, GCC -O3 pairs the malloc()
// or the free() with the other's call site and reports a false -Wmismatched-new-delete.
[[gnu::noinline]] void* operator new(std::size_t size) {
  ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace roomcast::ws {
namespace {

using testing::client_frame;
using testing::feed;
using testing::kTestMask;
using testing::RecordingHandler;
using testing::to_bytes;
using Events = std::vector<std::string>;

constexpr std::size_t kMaxMessage = 1 << 20;

// The events a server-role Reader reports for `wire`, fed in the pieces `cut_points` make.
// Fails the test if the Reader reports an error.
Events events_when_split(const std::string& wire, const std::vector<std::size_t>& cut_points) {
  Reader reader(Role::kServer, kMaxMessage);
  RecordingHandler handler;
  std::vector<std::uint8_t> buffer = to_bytes(wire);
  std::size_t start = 0;
  std::vector<std::size_t> ends = cut_points;
  ends.push_back(buffer.size());
  for (std::size_t end : ends) {
    // Each piece goes through its own buffer, as separate socket reads would.
    std::vector<std::uint8_t> piece(buffer.begin() + static_cast<std::ptrdiff_t>(start),
                                    buffer.begin() + static_cast<std::ptrdiff_t>(end));
    const ReadResult result = reader.feed(piece, handler);
    EXPECT_TRUE(result.ok) << result.reason;
    start = end;
  }
  EXPECT_FALSE(reader.holds_partial_data());
  return handler.events;
}

struct Outcome {
  ReadResult result;
  Events events;
};

Outcome read_all(const std::string& wire, Role role = Role::kServer,
                 std::size_t max_message_size = kMaxMessage) {
  Reader reader(role, max_message_size);
  RecordingHandler handler;
  const ReadResult result = feed(reader, wire, handler);
  return {result, handler.events};
}

void expect_failure(const std::string& wire, CloseCode expected, Role role = Role::kServer,
                    std::size_t max_message_size = kMaxMessage) {
  const Outcome outcome = read_all(wire, role, max_message_size);
  EXPECT_FALSE(outcome.result.ok);
  EXPECT_EQ(outcome.result.close_code, expected) << outcome.result.reason;
  EXPECT_FALSE(outcome.result.reason.empty());
}

// A masked frame whose header is written by hand, for header forms make_frame never uses.
std::string hand_made_frame(std::vector<std::uint8_t> header, std::string payload) {
  header.insert(header.end(), kTestMask.begin(), kTestMask.end());
  apply_mask(reinterpret_cast<std::uint8_t*>(payload.data()), payload.size(), kTestMask);
  return std::string(header.begin(), header.end()) + payload;
}

std::string with_first_byte(std::string frame, std::uint8_t first_byte) {
  frame[0] = static_cast<char>(first_byte);
  return frame;
}

// Just the header of a masked frame, without its payload.
std::string masked_header(Opcode opcode, bool fin, std::uint64_t payload_length) {
  std::vector<std::uint8_t> out(kMaxHeaderSize);
  out.resize(write_frame_header(out.data(), opcode, fin, payload_length, &kTestMask));
  return {out.begin(), out.end()};
}

std::string close_frame(std::uint16_t code, std::string_view reason = "") {
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return client_frame(Opcode::kClose, payload + std::string(reason));
}

// ---------------------------------------------------------------------------------------
// Delivering messages and control frames
// ---------------------------------------------------------------------------------------

TEST(Reader, DeliversATextFrameAsATextMessage) {
  EXPECT_EQ(read_all(client_frame(Opcode::kText, "Hello")).events, Events{"text:Hello"});
}

TEST(Reader, DeliversABinaryFrameAsABinaryMessage) {
  const std::string payload("\x00\xFF\x80 bytes", 9);
  EXPECT_EQ(read_all(client_frame(Opcode::kBinary, payload)).events, Events{"binary:" + payload});
}

TEST(Reader, DeliversEmptyMessagesAndControlFrames) {
  const std::string wire = client_frame(Opcode::kText, "") + client_frame(Opcode::kBinary, "") +
                           client_frame(Opcode::kPing, "") + client_frame(Opcode::kPong, "");
  EXPECT_EQ(read_all(wire).events, (Events{"text:", "binary:", "ping:", "pong:"}));
}

TEST(Reader, DeliversEveryFrameOfOneRead) {
  const std::string wire = client_frame(Opcode::kText, "one") + client_frame(Opcode::kPing, "p") +
                           client_frame(Opcode::kBinary, "two") + client_frame(Opcode::kPong, "q");
  EXPECT_EQ(read_all(wire).events, (Events{"text:one", "ping:p", "binary:two", "pong:q"}));
}

TEST(Reader, InClientRoleReadsUnmaskedServerFrames) {
  const std::string wire =
      make_frame(Opcode::kText, "hi") + make_frame(Opcode::kPing, "p") +
      make_frame(Opcode::kClose, make_close_payload(CloseCode::kGoingAway, "bye"));
  EXPECT_EQ(read_all(wire, Role::kClient).events, (Events{"text:hi", "ping:p", "close:1001:bye"}));
}

TEST(Reader, ReadsAllThreeLengthFormsAtTheirBoundaries) {
  for (std::size_t length : {0, 125, 126, 127, 65535, 65536, 100000}) {
    const std::string payload(length, 'z');
    EXPECT_EQ(read_all(client_frame(Opcode::kBinary, payload)).events, Events{"binary:" + payload})
        << length;
    EXPECT_EQ(read_all(make_frame(Opcode::kBinary, payload), Role::kClient).events,
              Events{"binary:" + payload})
        << length;
  }
}

TEST(Reader, AcceptsLengthsInALongerFormThanNeeded) {
  // RFC 6455 asks senders for the minimal form; receivers need not enforce it.
  const std::string in_16_bits = hand_made_frame({0x81, 0xFE, 0x00, 0x05}, "Hello");
  const std::string in_64_bits = hand_made_frame({0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5}, "Hello");
  EXPECT_EQ(read_all(in_16_bits).events, Events{"text:Hello"});
  EXPECT_EQ(read_all(in_64_bits).events, Events{"text:Hello"});
}

TEST(Reader, WholeFramesAreUnmaskedInPlaceAndDeliveredWithoutACopy) {
  struct PointerCheckingHandler : RecordingHandler {
    const char* begin = nullptr;
    const char* end = nullptr;
    int views_inside_input = 0;
    void on_message(std::string_view payload, bool binary) override {
      if (payload.data() >= begin && payload.data() + payload.size() <= end) ++views_inside_input;
      RecordingHandler::on_message(payload, binary);
    }
  };
  std::vector<std::uint8_t> input =
      to_bytes(client_frame(Opcode::kText, "first") + client_frame(Opcode::kText, "second"));
  PointerCheckingHandler handler;
  handler.begin = reinterpret_cast<const char*>(input.data());
  handler.end = handler.begin + input.size();
  Reader reader(Role::kServer, kMaxMessage);
  ASSERT_TRUE(reader.feed(input, handler).ok);
  EXPECT_EQ(handler.events, (Events{"text:first", "text:second"}));
  EXPECT_EQ(handler.views_inside_input, 2);
}

TEST(Reader, DecodingWholeFramesAllocatesNothing) {
  struct CountingHandler : ReaderHandler {
    int calls = 0;
    void on_message(std::string_view, bool) override { ++calls; }
    void on_ping(std::string_view) override { ++calls; }
    void on_pong(std::string_view) override { ++calls; }
    void on_close(std::uint16_t, std::string_view) override { ++calls; }
  };
  std::vector<std::uint8_t> input = to_bytes(
      client_frame(Opcode::kText, "hello \xE2\x82\xAC") + client_frame(Opcode::kPing, "p") +
      client_frame(Opcode::kBinary, std::string(70000, 'b')) + client_frame(Opcode::kPong, ""));
  CountingHandler handler;
  Reader reader(Role::kServer, kMaxMessage);
  const std::size_t allocations_before = g_allocations;
  const ReadResult result = reader.feed(input, handler);
  EXPECT_EQ(g_allocations, allocations_before);
  EXPECT_TRUE(result.ok);
  EXPECT_EQ(handler.calls, 4);
}

// ---------------------------------------------------------------------------------------
// Fragmentation
// ---------------------------------------------------------------------------------------

TEST(Reader, JoinsFragmentsIntoOneMessage) {
  const std::string wire = client_frame(Opcode::kText, "Hel", false) +
                           client_frame(Opcode::kContinuation, "l", false) +
                           client_frame(Opcode::kContinuation, "o");
  EXPECT_EQ(read_all(wire).events, Events{"text:Hello"});
}

TEST(Reader, JoinsBinaryFragmentsIncludingEmptyOnes) {
  const std::string wire =
      client_frame(Opcode::kBinary, "", false) + client_frame(Opcode::kContinuation, "ab", false) +
      client_frame(Opcode::kContinuation, "", false) + client_frame(Opcode::kContinuation, "");
  EXPECT_EQ(read_all(wire).events, Events{"binary:ab"});
}

TEST(Reader, DeliversControlFramesInterleavedWithFragmentsImmediately) {
  const std::string wire =
      client_frame(Opcode::kText, "Hel", false) + client_frame(Opcode::kPing, "ping") +
      client_frame(Opcode::kContinuation, "l", false) + client_frame(Opcode::kPong, "pong") +
      client_frame(Opcode::kContinuation, "o");
  EXPECT_EQ(read_all(wire).events, (Events{"ping:ping", "pong:pong", "text:Hello"}));
}

TEST(Reader, CloseInTheMiddleOfAFragmentedMessageEndsItUndelivered) {
  const std::string wire = client_frame(Opcode::kText, "Hel", false) + close_frame(1000, "bye");
  EXPECT_EQ(read_all(wire).events, Events{"close:1000:bye"});
}

TEST(Reader, AcceptsAMessageAfterAFragmentedOne) {
  const std::string wire = client_frame(Opcode::kText, "a", false) +
                           client_frame(Opcode::kContinuation, "b") +
                           client_frame(Opcode::kBinary, "c");
  EXPECT_EQ(read_all(wire).events, (Events{"text:ab", "binary:c"}));
}

TEST(Reader, HoldsPartialDataOnlyWhileAFrameOrMessageIsUnfinished) {
  Reader reader(Role::kServer, kMaxMessage);
  RecordingHandler handler;
  EXPECT_FALSE(reader.holds_partial_data());

  const std::string whole = client_frame(Opcode::kText, "Hello");
  ASSERT_TRUE(feed(reader, whole.substr(0, 4), handler).ok);
  EXPECT_TRUE(reader.holds_partial_data());
  ASSERT_TRUE(feed(reader, whole.substr(4), handler).ok);
  EXPECT_FALSE(reader.holds_partial_data());

  ASSERT_TRUE(feed(reader, client_frame(Opcode::kText, "a", false), handler).ok);
  EXPECT_TRUE(reader.holds_partial_data());
  ASSERT_TRUE(feed(reader, client_frame(Opcode::kContinuation, "b"), handler).ok);
  EXPECT_FALSE(reader.holds_partial_data());
  EXPECT_EQ(handler.events, (Events{"text:Hello", "text:ab"}));
}

// ---------------------------------------------------------------------------------------
// Arbitrary read boundaries
// ---------------------------------------------------------------------------------------

// A conversation exercising every frame type and the 7- and 16-bit length forms.
std::string sample_conversation() {
  return client_frame(Opcode::kText, "Hello") + client_frame(Opcode::kText, "Hel", false) +
         client_frame(Opcode::kPing, "p") +
         client_frame(Opcode::kContinuation, "lo \xE2\x82", false) +
         client_frame(Opcode::kContinuation, "\xAC") +
         client_frame(Opcode::kBinary, std::string(300, 'b')) + client_frame(Opcode::kPong, "") +
         client_frame(Opcode::kText, "") +
         client_frame(Opcode::kClose, make_close_payload(CloseCode::kNormal, "bye"));
}

Events sample_conversation_events() {
  return {"text:Hello", "ping:p", "text:Hello \xE2\x82\xAC", "binary:" + std::string(300, 'b'),
          "pong:",      "text:",  "close:1000:bye"};
}

TEST(Reader, GivesTheSameResultWhenFedInOnePiece) {
  EXPECT_EQ(events_when_split(sample_conversation(), {}), sample_conversation_events());
}

TEST(Reader, GivesTheSameResultWhenSplitAtEveryPosition) {
  const std::string wire = sample_conversation();
  for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
    EXPECT_EQ(events_when_split(wire, {cut}), sample_conversation_events()) << "cut at " << cut;
  }
}

TEST(Reader, GivesTheSameResultWhenFedByteByByte) {
  const std::string wire = sample_conversation();
  std::vector<std::size_t> cuts;
  for (std::size_t cut = 1; cut < wire.size(); ++cut) cuts.push_back(cut);
  EXPECT_EQ(events_when_split(wire, cuts), sample_conversation_events());
}

TEST(Reader, GivesTheSameResultWhenSplitAtEveryPairOfPositions) {
  const std::string wire = client_frame(Opcode::kText, "ab", false) +
                           client_frame(Opcode::kPing, "p") +
                           client_frame(Opcode::kContinuation, "\xC3\xA9") +
                           client_frame(Opcode::kBinary, std::string(130, 'x'));
  const Events expected{"ping:p", "text:ab\xC3\xA9", "binary:" + std::string(130, 'x')};
  for (std::size_t first = 0; first <= wire.size(); ++first) {
    for (std::size_t second = first; second <= wire.size(); ++second) {
      ASSERT_EQ(events_when_split(wire, {first, second}), expected) << first << ", " << second;
    }
  }
}

TEST(Reader, ReadsA64BitLengthFrameArrivingInManyReads) {
  const std::string payload(200000, 'q');
  const std::string wire = client_frame(Opcode::kBinary, payload) + client_frame(Opcode::kPing, "");
  for (std::size_t chunk : {1000, 4096, 65536, 7}) {
    std::vector<std::size_t> cuts;
    for (std::size_t cut = chunk; cut < wire.size(); cut += chunk) cuts.push_back(cut);
    EXPECT_EQ(events_when_split(wire, cuts), (Events{"binary:" + payload, "ping:"})) << chunk;
  }
}

// ---------------------------------------------------------------------------------------
// Protocol errors: 1002
// ---------------------------------------------------------------------------------------

TEST(Reader, RejectsEachReservedBitWithProtocolError) {
  for (std::uint8_t rsv_bit : {0x40, 0x20, 0x10}) {
    const std::uint8_t first = static_cast<std::uint8_t>(0x81 | rsv_bit);
    expect_failure(with_first_byte(client_frame(Opcode::kText, "x"), first),
                   CloseCode::kProtocolError);
  }
}

TEST(Reader, RejectsReservedOpcodesWithProtocolError) {
  for (std::uint8_t opcode : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    const std::uint8_t first = static_cast<std::uint8_t>(0x80 | opcode);
    expect_failure(with_first_byte(client_frame(Opcode::kText, "x"), first),
                   CloseCode::kProtocolError);
  }
}

TEST(Reader, InServerRoleRejectsAnUnmaskedFrame) {
  expect_failure(make_frame(Opcode::kText, "x"), CloseCode::kProtocolError, Role::kServer);
}

TEST(Reader, InClientRoleRejectsAMaskedFrame) {
  expect_failure(client_frame(Opcode::kText, "x"), CloseCode::kProtocolError, Role::kClient);
}

TEST(Reader, RejectsA64BitLengthWithTheMostSignificantBitSet) {
  const std::string header_only{'\x82', '\xFF', '\x80', 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  expect_failure(header_only, CloseCode::kProtocolError);
}

TEST(Reader, RejectsControlFramesLongerThan125Bytes) {
  EXPECT_EQ(read_all(client_frame(Opcode::kPing, std::string(125, 'p'))).events,
            Events{"ping:" + std::string(125, 'p')});
  expect_failure(client_frame(Opcode::kPing, std::string(126, 'p')), CloseCode::kProtocolError);
  expect_failure(client_frame(Opcode::kPong, std::string(126, 'p')), CloseCode::kProtocolError);
  expect_failure(client_frame(Opcode::kClose, std::string(126, 'p')), CloseCode::kProtocolError);
}

TEST(Reader, RejectsAnOversizedControlFrameFromItsHeaderAlone) {
  expect_failure(masked_header(Opcode::kPing, true, 126), CloseCode::kProtocolError);
}

TEST(Reader, RejectsFragmentedControlFrames) {
  expect_failure(client_frame(Opcode::kPing, "p", false), CloseCode::kProtocolError);
  expect_failure(client_frame(Opcode::kPong, "p", false), CloseCode::kProtocolError);
  expect_failure(client_frame(Opcode::kClose, "", false), CloseCode::kProtocolError);
}

TEST(Reader, RejectsAContinuationWithoutAStartedMessage) {
  expect_failure(client_frame(Opcode::kContinuation, "x"), CloseCode::kProtocolError);
  expect_failure(client_frame(Opcode::kText, "done") + client_frame(Opcode::kContinuation, "x"),
                 CloseCode::kProtocolError);
}

TEST(Reader, RejectsANewMessageWhileAFragmentedOneIsUnfinished) {
  expect_failure(client_frame(Opcode::kText, "a", false) + client_frame(Opcode::kText, "b"),
                 CloseCode::kProtocolError);
  expect_failure(client_frame(Opcode::kBinary, "a", false) + client_frame(Opcode::kBinary, "b"),
                 CloseCode::kProtocolError);
  expect_failure(client_frame(Opcode::kText, "a", false) + client_frame(Opcode::kBinary, "b"),
                 CloseCode::kProtocolError);
}

TEST(Reader, RejectsABadHeaderBeforeItsFrameIsComplete) {
  Reader reader(Role::kServer, kMaxMessage);
  RecordingHandler handler;
  const std::string frame = with_first_byte(client_frame(Opcode::kText, "Hello"), 0xC1);
  const ReadResult result = feed(reader, frame.substr(0, 6), handler);  // header, no payload
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.close_code, CloseCode::kProtocolError);
}

// ---------------------------------------------------------------------------------------
// Message size: 1009
// ---------------------------------------------------------------------------------------

TEST(Reader, AcceptsAMessageOfExactlyTheMaximumSize) {
  EXPECT_EQ(read_all(client_frame(Opcode::kBinary, std::string(100, 'm')), Role::kServer, 100)
                .events.size(),
            1u);
}

TEST(Reader, RejectsAFrameOverTheMaximumSizeWithMessageTooBig) {
  expect_failure(client_frame(Opcode::kBinary, std::string(101, 'm')), CloseCode::kMessageTooBig,
                 Role::kServer, 100);
}

TEST(Reader, RejectsAnOversizedFrameFromItsHeaderBeforeThePayloadArrives) {
  expect_failure(masked_header(Opcode::kText, true, 101), CloseCode::kMessageTooBig, Role::kServer,
                 100);
  expect_failure(masked_header(Opcode::kBinary, true, 1ULL << 40), CloseCode::kMessageTooBig,
                 Role::kServer, 100);
}

TEST(Reader, CountsAllFragmentsAgainstTheMaximumSize) {
  const std::string sixty(60, 'f');
  const std::string forty(40, 'f');
  EXPECT_EQ(read_all(client_frame(Opcode::kText, sixty, false) +
                         client_frame(Opcode::kContinuation, forty),
                     Role::kServer, 100)
                .events,
            Events{"text:" + sixty + forty});
  expect_failure(client_frame(Opcode::kText, sixty, false) +
                     client_frame(Opcode::kContinuation, forty, false) +
                     masked_header(Opcode::kContinuation, true, 1),
                 CloseCode::kMessageTooBig, Role::kServer, 100);
}

TEST(Reader, BoundsAMessagesFramesTogetherOnTheWire) {
  // Empty fragments add nothing to the payload, but each costs a header: a message may not go
  // on for ever in them. With a limit of 100 the bound is 2 x 100 + 1024 = 1224 wire bytes.
  ASSERT_EQ(max_message_wire_bytes(100), 1224u);
  const std::string empty = client_frame(Opcode::kContinuation, "", false);  // 6 bytes
  const std::string first = client_frame(Opcode::kText, "a", false);  // 7 bytes
  const std::string last = client_frame(Opcode::kContinuation, "z");  // 7 bytes
  // 7 + 201 x 6 + 7 = 1220: fits.
  std::string fits = first;
  for (int i = 0; i < 201; ++i) fits += empty;
  const Outcome outcome = read_all(fits + last, Role::kServer, 100);
  EXPECT_TRUE(outcome.result.ok) << outcome.result.reason;
  EXPECT_EQ(outcome.events, Events{"text:az"});
  // One empty fragment more: 1226, refused with 1009 at the last frame's header.
  const Outcome refused = read_all(fits + empty + last, Role::kServer, 100);
  EXPECT_FALSE(refused.result.ok);
  EXPECT_EQ(refused.result.close_code, CloseCode::kMessageTooBig);
  EXPECT_TRUE(refused.events.empty());
}

TEST(Reader, TheWireBoundIsPerMessage) {
  // 150 empty fragments (906 wire bytes) per message, twice: each message alone is in bound.
  std::string message = client_frame(Opcode::kBinary, "", false);
  for (int i = 0; i < 150; ++i) message += client_frame(Opcode::kContinuation, "", false);
  message += client_frame(Opcode::kContinuation, "", true);
  const Outcome outcome = read_all(message + message, Role::kServer, 100);
  EXPECT_TRUE(outcome.result.ok) << outcome.result.reason;
  EXPECT_EQ(outcome.events.size(), 2u);
}

TEST(Reader, TheWireBoundDoesNotOverflowForHugeLimits) {
  EXPECT_EQ(max_message_wire_bytes(SIZE_MAX / 2), SIZE_MAX);
  EXPECT_EQ(max_message_wire_bytes(1 << 20), (2u << 20) + 1024u);
}

TEST(Reader, ControlFramesDoNotCountTowardsTheMessageSize) {
  const std::string wire = client_frame(Opcode::kText, std::string(90, 't'), false) +
                           client_frame(Opcode::kPing, std::string(50, 'p')) +
                           client_frame(Opcode::kContinuation, std::string(10, 't'));
  EXPECT_EQ(read_all(wire, Role::kServer, 100).events.size(), 2u);
}

// ---------------------------------------------------------------------------------------
// UTF-8 in text messages: 1007
// ---------------------------------------------------------------------------------------

TEST(Reader, RejectsATextFrameThatIsNotUtf8WithInvalidPayload) {
  expect_failure(client_frame(Opcode::kText, "bad \xC0\xAF"), CloseCode::kInvalidPayload);
  expect_failure(client_frame(Opcode::kText, "\xED\xA0\x80"), CloseCode::kInvalidPayload);
  expect_failure(client_frame(Opcode::kText, "\xF4\x90\x80\x80"), CloseCode::kInvalidPayload);
  expect_failure(client_frame(Opcode::kText, "cut \xE2\x82"), CloseCode::kInvalidPayload);
}

TEST(Reader, DoesNotValidateBinaryMessages) {
  const std::string not_utf8 = "\xC0\xAF\xFF";
  EXPECT_EQ(read_all(client_frame(Opcode::kBinary, not_utf8)).events, Events{"binary:" + not_utf8});
}

TEST(Reader, AcceptsACodePointSplitAcrossFragments) {
  const std::string wire = client_frame(Opcode::kText, "\xF0\x9F", false) +
                           client_frame(Opcode::kContinuation, "\x98", false) +
                           client_frame(Opcode::kContinuation, "\x80!");
  EXPECT_EQ(read_all(wire).events, Events{"text:\xF0\x9F\x98\x80!"});
}

TEST(Reader, RejectsAnInvalidCodePointSplitAcrossFragments) {
  expect_failure(
      client_frame(Opcode::kText, "\xE2\x82", false) + client_frame(Opcode::kContinuation, "A"),
      CloseCode::kInvalidPayload);
  expect_failure(
      client_frame(Opcode::kText, "\xED", false) + client_frame(Opcode::kContinuation, "\xA0\x80"),
      CloseCode::kInvalidPayload);
}

TEST(Reader, RejectsAFragmentedTextMessageEndingInsideACodePoint) {
  expect_failure(
      client_frame(Opcode::kText, "ok", false) + client_frame(Opcode::kContinuation, "\xE2\x82"),
      CloseCode::kInvalidPayload);
}

TEST(Reader, RejectsInvalidTextInTheFirstFragmentWithoutWaitingForTheLast) {
  Reader reader(Role::kServer, kMaxMessage);
  RecordingHandler handler;
  const ReadResult result =
      feed(reader, client_frame(Opcode::kText, "\xCE\xBA\xE1\xBD\xB9\xED\xA0\x80", false), handler);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.close_code, CloseCode::kInvalidPayload);
}

TEST(Reader, ValidatesEachTextMessageOnItsOwn) {
  // An unfinished code point cannot leak from one message into the next.
  const std::string wire = client_frame(Opcode::kBinary, "\xE2", false) +
                           client_frame(Opcode::kContinuation, "") +
                           client_frame(Opcode::kText, "\x82\xAC");
  expect_failure(wire, CloseCode::kInvalidPayload);
}

// ---------------------------------------------------------------------------------------
// Close frames
// ---------------------------------------------------------------------------------------

TEST(Reader, ReportsTheCloseCodeAndReason) {
  EXPECT_EQ(read_all(close_frame(1000, "bye")).events, Events{"close:1000:bye"});
  EXPECT_EQ(read_all(close_frame(4001, "")).events, Events{"close:4001:"});
  EXPECT_EQ(read_all(close_frame(1001, "caf\xC3\xA9")).events, Events{"close:1001:caf\xC3\xA9"});
}

TEST(Reader, ReportsNoStatusForAnEmptyClose) {
  EXPECT_EQ(read_all(client_frame(Opcode::kClose, "")).events, Events{"close:1005:"});
}

TEST(Reader, AcceptsEveryCloseCodeValidOnTheWire) {
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                             3000, 3999, 4000, 4999}) {
    EXPECT_EQ(read_all(close_frame(code)).events, Events{"close:" + std::to_string(code) + ":"});
  }
}

TEST(Reader, RejectsCloseCodesInvalidOnTheWireWithProtocolError) {
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535}) {
    expect_failure(close_frame(code), CloseCode::kProtocolError);
  }
}

TEST(Reader, RejectsACloseFrameWithAOneBytePayload) {
  expect_failure(client_frame(Opcode::kClose, "\x03"), CloseCode::kProtocolError);
}

TEST(Reader, RejectsACloseReasonThatIsNotUtf8WithInvalidPayload) {
  expect_failure(close_frame(1000, "\xFF"), CloseCode::kInvalidPayload);
  expect_failure(close_frame(1000, "cut \xE2\x82"), CloseCode::kInvalidPayload);
}

TEST(Reader, IgnoresEverythingAfterTheCloseFrame) {
  Reader reader(Role::kServer, kMaxMessage);
  RecordingHandler handler;
  const std::string wire = close_frame(1000, "bye") + client_frame(Opcode::kText, "late") +
                           "\xFF garbage that is not a frame";
  EXPECT_TRUE(feed(reader, wire, handler).ok);
  EXPECT_TRUE(reader.closed());
  EXPECT_TRUE(feed(reader, client_frame(Opcode::kText, "later"), handler).ok);
  EXPECT_EQ(handler.events, Events{"close:1000:bye"});
  EXPECT_FALSE(reader.holds_partial_data());
}

TEST(Reader, IsClosedOnlyAfterACloseFrame) {
  Reader reader(Role::kServer, kMaxMessage);
  RecordingHandler handler;
  ASSERT_TRUE(feed(reader, client_frame(Opcode::kPing, ""), handler).ok);
  EXPECT_FALSE(reader.closed());
  ASSERT_TRUE(feed(reader, close_frame(1000), handler).ok);
  EXPECT_TRUE(reader.closed());
}

// ---------------------------------------------------------------------------------------
// After an error
// ---------------------------------------------------------------------------------------

TEST(Reader, KeepsReturningTheSameErrorAndDeliversNothingMore) {
  Reader reader(Role::kServer, kMaxMessage);
  RecordingHandler handler;
  const std::string wire = client_frame(Opcode::kText, "before") +
                           client_frame(Opcode::kContinuation, "x") +
                           client_frame(Opcode::kText, "after");
  const ReadResult first = feed(reader, wire, handler);
  ASSERT_FALSE(first.ok);
  EXPECT_EQ(first.close_code, CloseCode::kProtocolError);

  const ReadResult again = feed(reader, client_frame(Opcode::kText, "fine"), handler);
  EXPECT_FALSE(again.ok);
  EXPECT_EQ(again.close_code, first.close_code);
  EXPECT_EQ(again.reason, first.reason);
  EXPECT_EQ(handler.events, Events{"text:before"});
  EXPECT_FALSE(reader.holds_partial_data());
}

TEST(Reader, ReportsAnErrorInAFrameCompletedFromAPreviousRead) {
  Reader reader(Role::kServer, kMaxMessage);
  RecordingHandler handler;
  const std::string bad = client_frame(Opcode::kText, "\xFF\xFE");
  ASSERT_TRUE(feed(reader, bad.substr(0, 7), handler).ok);
  const ReadResult result = feed(reader, bad.substr(7), handler);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.close_code, CloseCode::kInvalidPayload);
  EXPECT_FALSE(reader.holds_partial_data());
}

// Holds after the message named `hold_after` (ReaderHandler::holding), as a Connection does
// when the Hub pushes back on its sender.
class HoldingHandler : public RecordingHandler {
 public:
  void on_message(std::string_view payload, bool binary) override {
    RecordingHandler::on_message(payload, binary);
    if (payload == hold_after) held = true;
  }
  bool holding() const override { return held; }

  std::string hold_after;
  bool held = false;
};

TEST(Reader, StopsAtTheHoldAndResumesWithTheRestInOrder) {
  Reader reader(Role::kServer, kMaxMessage);
  HoldingHandler handler;
  handler.hold_after = "b";
  const std::string wire = client_frame(Opcode::kText, "a") + client_frame(Opcode::kText, "b") +
                           client_frame(Opcode::kText, "c") + client_frame(Opcode::kPing, "p") +
                           client_frame(Opcode::kText, "d");
  // The last frame is cut: what is held ends in an incomplete frame.
  ASSERT_TRUE(feed(reader, wire.substr(0, wire.size() - 2), handler).ok);
  EXPECT_EQ(handler.events, (Events{"text:a", "text:b"}));  // nothing parsed past the hold
  EXPECT_TRUE(reader.holds_input());
  // Fed while held (an owner should not): kept behind, in order.
  ASSERT_TRUE(feed(reader, wire.substr(wire.size() - 2), handler).ok);
  EXPECT_EQ(handler.events.size(), 2u);
  // Still holding: resume() parses nothing.
  handler.hold_after = "c";
  ASSERT_TRUE(reader.resume(handler).ok);
  EXPECT_EQ(handler.events, (Events{"text:a", "text:b"}));
  handler.held = false;
  ASSERT_TRUE(reader.resume(handler).ok);  // holds again after "c"
  EXPECT_EQ(handler.events, (Events{"text:a", "text:b", "text:c"}));
  EXPECT_TRUE(reader.holds_input());
  handler.held = false;
  ASSERT_TRUE(reader.resume(handler).ok);
  EXPECT_EQ(handler.events, (Events{"text:a", "text:b", "text:c", "ping:p", "text:d"}));
  EXPECT_FALSE(reader.holds_input());
  EXPECT_FALSE(reader.holds_partial_data());
}

TEST(Reader, AHoldInAFrameCompletedFromAPreviousReadKeepsTheRest) {
  Reader reader(Role::kServer, kMaxMessage);
  HoldingHandler handler;
  handler.hold_after = "first";
  const std::string first = client_frame(Opcode::kText, "first");
  const std::string rest = client_frame(Opcode::kText, "second") +
                           client_frame(Opcode::kText, std::string(300, 'x')).substr(0, 10);
  ASSERT_TRUE(feed(reader, first.substr(0, 4), handler).ok);
  ASSERT_TRUE(feed(reader, first.substr(4) + rest, handler).ok);
  EXPECT_EQ(handler.events, Events{"text:first"});
  EXPECT_TRUE(reader.holds_input());
  handler.held = false;
  ASSERT_TRUE(reader.resume(handler).ok);
  EXPECT_EQ(handler.events, (Events{"text:first", "text:second"}));
  // The incomplete frame waits as any partial frame does, and completes with the next read.
  EXPECT_FALSE(reader.holds_input());
  EXPECT_TRUE(reader.holds_partial_data());
  ASSERT_TRUE(
      feed(reader, client_frame(Opcode::kText, std::string(300, 'x')).substr(10), handler).ok);
  EXPECT_EQ(handler.events.back(), "text:" + std::string(300, 'x'));
}

TEST(Reader, HeldInputThatBreaksTheProtocolFailsWhenResumed) {
  Reader reader(Role::kServer, kMaxMessage);
  HoldingHandler handler;
  handler.hold_after = "ok";
  ASSERT_TRUE(feed(reader,
                   client_frame(Opcode::kText, "ok") + client_frame(Opcode::kText, "\xFF\xFE"),
                   handler)
                  .ok);
  handler.held = false;
  const ReadResult result = reader.resume(handler);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.close_code, CloseCode::kInvalidPayload);
}

}  // namespace
}  // namespace roomcast::ws
