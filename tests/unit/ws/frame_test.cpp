// Specification of RFC 6455 section 5 framing: headers, masking, frame building, close
// payloads and which close codes may appear on the wire.
#include "ws/frame.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "recording_handler.h"
#include "ws/close_code.h"
#include "ws/reader.h"
#include "ws/utf8.h"

namespace roomcast::ws {
namespace {

using testing::client_frame;
using testing::kTestMask;
using testing::RecordingHandler;

std::vector<std::uint8_t> header_bytes(Opcode opcode, bool fin, std::uint64_t length,
                                       const std::array<std::uint8_t, 4>* mask = nullptr) {
  std::vector<std::uint8_t> out(kMaxHeaderSize, 0xEE);
  out.resize(write_frame_header(out.data(), opcode, fin, length, mask));
  return out;
}

std::string bytes_of(std::initializer_list<std::uint8_t> list) {
  return {list.begin(), list.end()};
}

// --- header length forms ---

TEST(FrameHeader, PayloadUpTo125UsesTheSevenBitLength) {
  EXPECT_EQ(header_bytes(Opcode::kText, true, 0), (std::vector<std::uint8_t>{0x81, 0x00}));
  EXPECT_EQ(header_bytes(Opcode::kText, true, 125), (std::vector<std::uint8_t>{0x81, 125}));
}

TEST(FrameHeader, PayloadFrom126To65535UsesThe16BitLength) {
  EXPECT_EQ(header_bytes(Opcode::kBinary, true, 126),
            (std::vector<std::uint8_t>{0x82, 126, 0x00, 0x7E}));
  EXPECT_EQ(header_bytes(Opcode::kBinary, true, 65535),
            (std::vector<std::uint8_t>{0x82, 126, 0xFF, 0xFF}));
}

TEST(FrameHeader, PayloadFrom65536UsesThe64BitLengthInNetworkOrder) {
  EXPECT_EQ(header_bytes(Opcode::kBinary, true, 65536),
            (std::vector<std::uint8_t>{0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
  EXPECT_EQ(header_bytes(Opcode::kBinary, true, 0x0102030405060708ULL),
            (std::vector<std::uint8_t>{0x82, 127, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(FrameHeader, FirstByteCarriesFinAndOpcode) {
  EXPECT_EQ(header_bytes(Opcode::kText, false, 0)[0], 0x01);
  EXPECT_EQ(header_bytes(Opcode::kContinuation, true, 0)[0], 0x80);
  EXPECT_EQ(header_bytes(Opcode::kClose, true, 0)[0], 0x88);
  EXPECT_EQ(header_bytes(Opcode::kPing, true, 0)[0], 0x89);
  EXPECT_EQ(header_bytes(Opcode::kPong, true, 0)[0], 0x8A);
}

TEST(FrameHeader, MaskSetsTheMaskBitAndAppendsTheKeyAfterTheLength) {
  EXPECT_EQ(header_bytes(Opcode::kText, true, 5, &kTestMask),
            (std::vector<std::uint8_t>{0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D}));
  EXPECT_EQ(header_bytes(Opcode::kText, true, 300, &kTestMask),
            (std::vector<std::uint8_t>{0x81, 0xFE, 0x01, 0x2C, 0x37, 0xFA, 0x21, 0x3D}));
  const auto largest = header_bytes(Opcode::kText, true, 1ULL << 32, &kTestMask);
  EXPECT_EQ(largest.size(), kMaxHeaderSize);
  EXPECT_EQ(largest[1], 0xFF);
}

// --- whole frames: the examples of RFC 6455 section 5.7 ---

TEST(MakeFrame, SingleFrameUnmaskedTextMatchesTheRfcExample) {
  EXPECT_EQ(make_frame(Opcode::kText, "Hello"),
            bytes_of({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
}

TEST(MakeFrame, SingleFrameMaskedTextMatchesTheRfcExample) {
  EXPECT_EQ(make_masked_frame(Opcode::kText, "Hello", kTestMask),
            bytes_of({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
}

TEST(MakeFrame, FragmentedTextMatchesTheRfcExample) {
  EXPECT_EQ(make_frame(Opcode::kText, "Hel", false), bytes_of({0x01, 0x03, 0x48, 0x65, 0x6c}));
  EXPECT_EQ(make_frame(Opcode::kContinuation, "lo"), bytes_of({0x80, 0x02, 0x6c, 0x6f}));
}

TEST(MakeFrame, PingMatchesTheRfcExample) {
  EXPECT_EQ(make_frame(Opcode::kPing, "Hello"),
            bytes_of({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
}

TEST(MakeFrame, LargeBinaryFramesMatchTheRfcExamples) {
  const std::string frame256 = make_frame(Opcode::kBinary, std::string(256, 'x'));
  EXPECT_EQ(frame256.substr(0, 4), bytes_of({0x82, 0x7E, 0x01, 0x00}));
  EXPECT_EQ(frame256.size(), 4u + 256u);
  const std::string frame64k = make_frame(Opcode::kBinary, std::string(65536, 'x'));
  EXPECT_EQ(frame64k.substr(0, 10), bytes_of({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
  EXPECT_EQ(frame64k.size(), 10u + 65536u);
}

// --- masking ---

std::vector<std::uint8_t> mask_byte_by_byte(std::vector<std::uint8_t> data, std::size_t offset) {
  for (std::size_t i = 0; i < data.size(); ++i) data[i] ^= kTestMask[(offset + i) % 4];
  return data;
}

std::vector<std::uint8_t> sample_payload(std::size_t length) {
  std::vector<std::uint8_t> data(length);
  for (std::size_t i = 0; i < length; ++i) data[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return data;
}

TEST(ApplyMask, XorsEachByteWithTheKeyByteAtItsPositionModuloFour) {
  for (std::size_t length = 0; length <= 40; ++length) {
    for (std::size_t offset = 0; offset < 8; ++offset) {
      std::vector<std::uint8_t> data = sample_payload(length);
      apply_mask(data.data(), data.size(), kTestMask, offset);
      EXPECT_EQ(data, mask_byte_by_byte(sample_payload(length), offset))
          << "length " << length << ", offset " << offset;
    }
  }
}

TEST(ApplyMask, WorksOnBuffersThatAreNotEightByteAligned) {
  for (std::size_t misalignment = 1; misalignment < 8; ++misalignment) {
    std::vector<std::uint8_t> buffer(misalignment + 37, 0x5A);
    std::vector<std::uint8_t> expected(buffer.begin() + misalignment, buffer.end());
    apply_mask(buffer.data() + misalignment, 37, kTestMask);
    EXPECT_EQ(std::vector<std::uint8_t>(buffer.begin() + misalignment, buffer.end()),
              mask_byte_by_byte(expected, 0));
    // The bytes before the range are untouched.
    for (std::size_t i = 0; i < misalignment; ++i) EXPECT_EQ(buffer[i], 0x5A);
  }
}

TEST(ApplyMask, MaskingInPiecesWithOffsetsEqualsMaskingAtOnce) {
  const std::vector<std::uint8_t> original = sample_payload(101);
  std::vector<std::uint8_t> whole = original;
  apply_mask(whole.data(), whole.size(), kTestMask);
  for (std::size_t split = 0; split <= original.size(); ++split) {
    std::vector<std::uint8_t> pieces = original;
    apply_mask(pieces.data(), split, kTestMask, 0);
    apply_mask(pieces.data() + split, pieces.size() - split, kTestMask, split);
    EXPECT_EQ(pieces, whole) << "split at " << split;
  }
}

TEST(ApplyMask, MaskingTwiceRestoresThePayload) {
  std::vector<std::uint8_t> data = sample_payload(1000);
  apply_mask(data.data(), data.size(), kTestMask, 3);
  EXPECT_NE(data, sample_payload(1000));
  apply_mask(data.data(), data.size(), kTestMask, 3);
  EXPECT_EQ(data, sample_payload(1000));
}

// --- encode and decode agree, for every length form and both directions ---

class FrameRoundTrip : public ::testing::TestWithParam<std::size_t> {};

TEST_P(FrameRoundTrip, ServerFrameDecodesInTheClientRole) {
  const std::string payload(GetParam(), 'a');
  Reader reader(Role::kClient, 1 << 20);
  RecordingHandler handler;
  ASSERT_TRUE(testing::feed(reader, make_frame(Opcode::kBinary, payload), handler).ok);
  EXPECT_EQ(handler.events, std::vector<std::string>{"binary:" + payload});
  EXPECT_FALSE(reader.holds_partial_data());
}

TEST_P(FrameRoundTrip, ClientFrameDecodesInTheServerRole) {
  std::string payload(GetParam(), ' ');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  Reader reader(Role::kServer, 1 << 20);
  RecordingHandler handler;
  ASSERT_TRUE(testing::feed(reader, client_frame(Opcode::kText, payload), handler).ok);
  EXPECT_EQ(handler.events, std::vector<std::string>{"text:" + payload});
  EXPECT_FALSE(reader.holds_partial_data());
}

INSTANTIATE_TEST_SUITE_P(BoundaryLengths, FrameRoundTrip,
                         ::testing::Values(0, 1, 124, 125, 126, 127, 65535, 65536, 70001));

// --- close payloads ---

TEST(MakeClosePayload, IsTheCodeInNetworkOrderFollowedByTheReason) {
  EXPECT_EQ(make_close_payload(CloseCode::kNormal, "bye"), bytes_of({0x03, 0xE8}) + "bye");
  EXPECT_EQ(make_close_payload(CloseCode::kAuthRequired, ""), bytes_of({0x0F, 0xA1}));
}

TEST(MakeClosePayload, ReasonThatFitsIsKeptWhole) {
  const std::string reason(123, 'r');
  EXPECT_EQ(make_close_payload(CloseCode::kGoingAway, reason).size(), kMaxControlPayload);
  EXPECT_EQ(make_close_payload(CloseCode::kGoingAway, reason).substr(2), reason);
}

TEST(MakeClosePayload, LongReasonIsTruncatedTo125BytesInTotal) {
  const std::string payload =
      make_close_payload(CloseCode::kPolicyViolation, std::string(500, 'r'));
  EXPECT_EQ(payload.size(), kMaxControlPayload);
  EXPECT_EQ(payload.substr(2), std::string(123, 'r'));
}

TEST(MakeClosePayload, TruncationNeverSplitsAUtf8CodePoint) {
  // A 2-, 3- and 4-byte code point placed to straddle the limit at every phase.
  for (const std::string code_point : {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"}) {
    for (std::size_t prefix = 115; prefix <= 125; ++prefix) {
      const std::string reason = std::string(prefix, 'a') + code_point + "zz";
      const std::string payload = make_close_payload(CloseCode::kNormal, reason);
      const std::string kept = payload.substr(2);
      EXPECT_LE(payload.size(), kMaxControlPayload);
      EXPECT_TRUE(is_valid_utf8(kept)) << "prefix " << prefix;
      if (reason.size() <= 123) {
        EXPECT_EQ(kept, reason);
      } else {
        EXPECT_EQ(reason.substr(0, kept.size()), kept);
        // Nothing but the straddling code point's bytes is dropped below the limit.
        EXPECT_GE(kept.size() + code_point.size(), 124u) << "prefix " << prefix;
      }
    }
  }
}

TEST(MakeClosePayload, TruncatedPayloadIsAcceptedByAReader) {
  const std::string reason = std::string(122, 'a') + "\xE2\x82\xAC";  // 125-byte reason
  Reader reader(Role::kServer, 1024);
  RecordingHandler handler;
  const std::string payload = make_close_payload(CloseCode::kNormal, reason);
  ASSERT_TRUE(testing::feed(reader, client_frame(Opcode::kClose, payload), handler).ok);
  EXPECT_EQ(handler.events, std::vector<std::string>{"close:1000:" + std::string(122, 'a')});
}

// --- opcodes and close codes ---

TEST(Opcode, ClosePingAndPongAreControlFramesAndDataOpcodesAreNot) {
  EXPECT_TRUE(is_control(Opcode::kClose));
  EXPECT_TRUE(is_control(Opcode::kPing));
  EXPECT_TRUE(is_control(Opcode::kPong));
  EXPECT_FALSE(is_control(Opcode::kContinuation));
  EXPECT_FALSE(is_control(Opcode::kText));
  EXPECT_FALSE(is_control(Opcode::kBinary));
}

TEST(CloseCode, DefinedAndRegisteredCodesAreValidOnTheWire) {
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                             3000, 3999, 4000, 4001, 4999}) {
    EXPECT_TRUE(is_valid_received_close_code(code)) << code;
  }
}

TEST(CloseCode, ReservedPseudoAndOutOfRangeCodesAreInvalidOnTheWire) {
  for (std::uint16_t code :
       {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1999, 2000, 2999, 5000, 65535}) {
    EXPECT_FALSE(is_valid_received_close_code(code)) << code;
  }
}

}  // namespace
}  // namespace roomcast::ws
