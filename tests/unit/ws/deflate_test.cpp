// Specification of permessage-deflate's data path (RFC 7692 sections 6 and 7.2): the
// Inflater and Deflater on their own, and the Reader's rules for compressed frames.
#include "ws/deflate.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "recording_handler.h"
#include "ws/frame.h"
#include "ws/reader.h"

namespace roomcast::ws {
namespace {

using testing::client_frame;
using testing::feed;
using testing::kTestMask;
using testing::RecordingHandler;
using Events = std::vector<std::string>;

constexpr std::size_t kLimit = 1 << 20;

// A peer's compressor, written with zlib directly (not with our Deflater), so the tests judge
// the Inflater against an independent sender. `window_bits` 9..15; with `context_takeover`
// the peer keeps its window from message to message.
class PeerCompressor {
 public:
  explicit PeerCompressor(int window_bits = 15, bool context_takeover = false)
      : context_takeover_(context_takeover) {
    EXPECT_EQ(deflateInit2(&stream_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits, 8,
                           Z_DEFAULT_STRATEGY),
              Z_OK);
  }
  ~PeerCompressor() { deflateEnd(&stream_); }

  // One message's payload: sync-flushed and its 00 00 ff ff removed (section 7.2.1), or, with
  // `final_block`, ended by a block with BFINAL set (section 7.2.3 has one), tail kept as it is.
  std::string compress(std::string_view message, bool final_block = false) {
    if (!context_takeover_) deflateReset(&stream_);
    std::string out(deflateBound(&stream_, message.size()) + 64, '\0');
    stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(message.data()));
    stream_.avail_in = static_cast<uInt>(message.size());
    stream_.next_out = reinterpret_cast<Bytef*>(out.data());
    stream_.avail_out = static_cast<uInt>(out.size());
    deflate(&stream_, final_block ? Z_FINISH : Z_SYNC_FLUSH);
    out.resize(out.size() - stream_.avail_out);
    if (final_block) {
      deflateReset(&stream_);
    } else {
      EXPECT_EQ(out.substr(out.size() - 4), std::string("\0\0\xFF\xFF", 4));
      out.resize(out.size() - 4);
    }
    return out;
  }

 private:
  z_stream stream_{};
  bool context_takeover_;
};

std::string inflate_whole(Inflater& inflater, std::string_view compressed,
                          Inflater::Result expected = Inflater::Result::kOk,
                          std::size_t limit = kLimit) {
  std::string out;
  Inflater::Result result = inflater.inflate(compressed, limit, out);
  if (result == Inflater::Result::kOk) result = inflater.finish(limit, out);
  EXPECT_EQ(result, expected);
  return out;
}

std::string chat_json(int i) {
  return R"({"type":"chat_message","room":"general","id":"m)" + std::to_string(i) +
         R"(","user":{"id":"u1","name":"Ada"},"text":"Hello, everyone! How is the weather?"})";
}

// --- Inflater ---

TEST(Inflater, InflatesWhatAPeerCompressed) {
  PeerCompressor peer;
  Inflater inflater(/*context_takeover=*/false);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(inflate_whole(inflater, peer.compress(chat_json(i))), chat_json(i));
  EXPECT_FALSE(inflater.holds_state());  // nothing kept between messages
}

TEST(Inflater, InflatesTheEmptyMessage) {
  PeerCompressor peer;
  Inflater inflater(false);
  const std::string compressed = peer.compress("");
  EXPECT_EQ(inflate_whole(inflater, compressed), "");
  // A lone 0x00 is also an empty message: a stored block header, whose LEN/NLEN is the tail.
  EXPECT_EQ(inflate_whole(inflater, std::string(1, '\0')), "");
}

TEST(Inflater, WithContextTakeoverKeepsTheWindowBetweenMessages) {
  PeerCompressor peer(15, /*context_takeover=*/true);
  Inflater inflater(/*context_takeover=*/true);
  const std::string first = peer.compress(chat_json(1));
  const std::string second = peer.compress(chat_json(1));
  // The second refers back into the first, so it is much shorter and needs its window.
  EXPECT_LT(second.size(), first.size() / 2);
  EXPECT_EQ(inflate_whole(inflater, first), chat_json(1));
  EXPECT_TRUE(inflater.holds_state());
  EXPECT_EQ(inflate_whole(inflater, second), chat_json(1));

  Inflater forgetful(false);
  inflate_whole(forgetful, first);
  // Without the window the back-reference points before the start of the data.
  inflate_whole(forgetful, second, Inflater::Result::kCorrupt);
}

TEST(Inflater, ReadsEveryWindowSize) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += chat_json(i % 7);
  for (int bits = 9; bits <= 15; ++bits) {
    PeerCompressor peer(bits, true);
    Inflater inflater(true);
    EXPECT_EQ(inflate_whole(inflater, peer.compress(text)), text) << bits;
    EXPECT_EQ(inflate_whole(inflater, peer.compress(text)), text) << bits;
  }
}

TEST(Inflater, AcceptsAMessageEndedByAFinalBlock) {
  for (const bool takeover : {false, true}) {
    PeerCompressor peer(15, takeover);
    Inflater inflater(takeover);
    EXPECT_EQ(inflate_whole(inflater, peer.compress(chat_json(1), /*final_block=*/true)),
              chat_json(1));
    // Whatever the next message is, it starts cleanly after the final block.
    EXPECT_EQ(inflate_whole(inflater, peer.compress(chat_json(2))), chat_json(2));
  }
}

TEST(Inflater, InflatesAMessageGivenInPieces) {
  PeerCompressor peer;
  std::string text;
  for (int i = 0; i < 500; ++i) text += chat_json(i);
  const std::string compressed = peer.compress(text);
  Inflater inflater(false);
  std::string out;
  for (std::size_t i = 0; i < compressed.size(); i += 7) {
    ASSERT_EQ(inflater.inflate(std::string_view(compressed).substr(i, 7), kLimit, out),
              Inflater::Result::kOk);
  }
  ASSERT_EQ(inflater.finish(kLimit, out), Inflater::Result::kOk);
  EXPECT_EQ(out, text);
}

TEST(Inflater, RefusesDataThatIsNotDeflate) {
  Inflater inflater(false);
  // 0xFF: a block of the reserved type 3.
  inflate_whole(inflater, "\xFF\xFF\xFF\xFF", Inflater::Result::kCorrupt);
  EXPECT_FALSE(inflater.holds_state());
  // A zlib header is not raw deflate.
  inflate_whole(inflater, "\x78\x9C\x01\x02", Inflater::Result::kCorrupt);
  // A stored block whose length and its complement disagree.
  inflate_whole(inflater, std::string("\x00\x05\x00\x00\x00", 5), Inflater::Result::kCorrupt);
}

TEST(Inflater, StopsABombAtTheLimit) {
  // 64 MiB of zeros compress to about 64 KiB: the output must stop just past the limit.
  PeerCompressor peer;
  const std::string compressed = peer.compress(std::string(64 << 20, '\0'));
  ASSERT_LT(compressed.size(), 100u << 10);
  Inflater inflater(false);
  std::string out;
  EXPECT_EQ(inflater.inflate(compressed, kLimit, out), Inflater::Result::kTooBig);
  EXPECT_LE(out.size(), kLimit + 1);
  EXPECT_GT(out.size(), kLimit);
  EXPECT_FALSE(inflater.holds_state());
}

TEST(Inflater, AMessageOfExactlyTheLimitPasses) {
  PeerCompressor peer;
  const std::string text(1000, 'a');
  Inflater inflater(false);
  EXPECT_EQ(inflate_whole(inflater, peer.compress(text), Inflater::Result::kOk, 1000), text);
  inflate_whole(inflater, peer.compress(text), Inflater::Result::kTooBig, 999);
}

// --- Deflater ---

TEST(Deflater, ProducesWhatAnIndependentInflaterReads) {
  Deflater deflater;
  for (const std::string& text : {std::string(), chat_json(1), std::string(100000, 'x')}) {
    const std::string compressed = deflater.compress(text);
    // An inflater of zlib's own, fed the payload with the tail put back (section 7.2.2).
    z_stream stream{};
    ASSERT_EQ(inflateInit2(&stream, -15), Z_OK);
    std::string input = compressed + std::string("\0\0\xFF\xFF", 4);
    std::string out(text.size() + 16, '\0');
    stream.next_in = reinterpret_cast<Bytef*>(input.data());
    stream.avail_in = static_cast<uInt>(input.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&stream, Z_SYNC_FLUSH);
    EXPECT_TRUE(rc == Z_OK || rc == Z_BUF_ERROR) << rc;
    out.resize(out.size() - stream.avail_out);
    inflateEnd(&stream);
    EXPECT_EQ(out, text);
  }
}

TEST(Deflater, CompressesEachMessageOnItsOwn) {
  Deflater deflater;
  const std::string first = deflater.compress(chat_json(1));
  // No context takeover: the same message compresses to the same bytes, readable alone.
  EXPECT_EQ(deflater.compress(chat_json(1)), first);
  EXPECT_LT(first.size(), chat_json(1).size());
  Inflater inflater(false);
  EXPECT_EQ(inflate_whole(inflater, deflater.compress(chat_json(2))), chat_json(2));
}

TEST(Deflater, WithContextCompressesAgainstEarlierMessages) {
  for (const int bits : {9, 12, 15}) {
    Deflater dedicated(Deflater::WithContext{bits, 4});
    Inflater inflater(/*context_takeover=*/true);
    // And an inflater of zlib's own with a window of 2^bits, as the peer may have
    // (server_max_window_bits): the compressor may not reach further back.
    z_stream peer{};
    ASSERT_EQ(inflateInit2(&peer, -bits), Z_OK);
    std::vector<std::size_t> sizes;
    for (const std::string& text :
         {chat_json(1), chat_json(2), std::string(3000, 'q'), chat_json(3) + chat_json(4)}) {
      const std::string compressed = dedicated.compress(text);
      sizes.push_back(compressed.size());
      EXPECT_EQ(inflate_whole(inflater, compressed), text) << bits;
      std::string input = compressed + std::string("\0\0\xFF\xFF", 4);
      std::string out(text.size() + 16, '\0');
      peer.next_in = reinterpret_cast<Bytef*>(input.data());
      peer.avail_in = static_cast<uInt>(input.size());
      peer.next_out = reinterpret_cast<Bytef*>(out.data());
      peer.avail_out = static_cast<uInt>(out.size());
      const int rc = inflate(&peer, Z_SYNC_FLUSH);
      EXPECT_TRUE(rc == Z_OK || rc == Z_BUF_ERROR) << rc << " window bits " << bits;
      out.resize(out.size() - peer.avail_out);
      EXPECT_EQ(out, text) << bits;
    }
    inflateEnd(&peer);
    // The second chat message refers back into the first.
    EXPECT_LT(sizes[1], sizes[0] / 2) << bits;
  }
}

// --- the Reader with deflate negotiated (RFC 7692 section 6) ---

struct Outcome {
  ReadResult result;
  Events events;
};

Outcome read_all(const std::string& wire, bool inflate = true, bool takeover = false,
                 std::size_t limit = kLimit) {
  Reader reader(Role::kServer, limit);
  if (inflate) reader.enable_inflate(takeover);
  RecordingHandler handler;
  const ReadResult result = feed(reader, wire, handler);
  return {result, handler.events};
}

std::string compressed_frame(Opcode opcode, std::string_view payload, bool fin = true) {
  return make_masked_frame(opcode, payload, kTestMask, fin, kRsv1);
}

TEST(ReaderInflate, DeliversACompressedTextMessage) {
  PeerCompressor peer;
  const Outcome outcome = read_all(compressed_frame(Opcode::kText, peer.compress(chat_json(1))));
  EXPECT_TRUE(outcome.result.ok);
  EXPECT_EQ(outcome.events, Events{"text:" + chat_json(1)});
}

TEST(ReaderInflate, DeliversACompressedBinaryMessageAsItIs) {
  PeerCompressor peer;
  const std::string bytes("\x00\xFF\xFE binary", 9);
  const Outcome outcome = read_all(compressed_frame(Opcode::kBinary, peer.compress(bytes)));
  EXPECT_TRUE(outcome.result.ok);
  EXPECT_EQ(outcome.events, Events{"binary:" + bytes});
}

TEST(ReaderInflate, PlainMessagesStillPass) {
  const Outcome outcome = read_all(client_frame(Opcode::kText, "plain"));
  EXPECT_EQ(outcome.events, Events{"text:plain"});
}

TEST(ReaderInflate, FragmentedCompressedMessageHasRsv1OnItsFirstFrameOnly) {
  PeerCompressor peer;
  const std::string compressed = peer.compress(chat_json(1));
  const std::size_t third = compressed.size() / 3;
  const std::string wire =
      compressed_frame(Opcode::kText, compressed.substr(0, third), false) +
      client_frame(Opcode::kPing, "between") +  // a control frame may come between fragments
      client_frame(Opcode::kContinuation, compressed.substr(third, third), false) +
      client_frame(Opcode::kContinuation, compressed.substr(2 * third), true) +
      // and an empty final fragment, after a message whose data ended earlier
      compressed_frame(Opcode::kText, peer.compress("x"), false) +
      client_frame(Opcode::kContinuation, "", true);
  const Outcome outcome = read_all(wire);
  EXPECT_TRUE(outcome.result.ok) << outcome.result.reason;
  EXPECT_EQ(outcome.events, (Events{"ping:between", "text:" + chat_json(1), "text:x"}));
}

TEST(ReaderInflate, WithContextTakeover) {
  PeerCompressor peer(15, true);
  // Compressed in order (the operands of + are evaluated in no set order).
  const std::string first = compressed_frame(Opcode::kText, peer.compress(chat_json(3)));
  const std::string wire = first + compressed_frame(Opcode::kText, peer.compress(chat_json(3)));
  const Outcome outcome = read_all(wire, true, /*takeover=*/true);
  EXPECT_TRUE(outcome.result.ok) << outcome.result.reason;
  EXPECT_EQ(outcome.events, (Events{"text:" + chat_json(3), "text:" + chat_json(3)}));
}

TEST(ReaderInflate, Rsv1WithoutNegotiationIsAProtocolError) {
  PeerCompressor peer;
  const Outcome outcome =
      read_all(compressed_frame(Opcode::kText, peer.compress("hi")), /*inflate=*/false);
  EXPECT_FALSE(outcome.result.ok);
  EXPECT_EQ(outcome.result.close_code, CloseCode::kProtocolError);
}

TEST(ReaderInflate, Rsv1OnAContinuationIsAProtocolError) {
  PeerCompressor peer;
  const std::string compressed = peer.compress(chat_json(1));
  for (const bool first_compressed : {true, false}) {
    const std::string first = first_compressed
                                  ? compressed_frame(Opcode::kText, compressed.substr(0, 5), false)
                                  : client_frame(Opcode::kText, "abc", false);
    const Outcome outcome =
        read_all(first + compressed_frame(Opcode::kContinuation, compressed.substr(5)));
    EXPECT_FALSE(outcome.result.ok);
    EXPECT_EQ(outcome.result.close_code, CloseCode::kProtocolError);
    EXPECT_TRUE(outcome.events.empty());
  }
}

TEST(ReaderInflate, Rsv1OnAControlFrameIsAProtocolError) {
  for (const Opcode opcode : {Opcode::kPing, Opcode::kPong, Opcode::kClose}) {
    const Outcome outcome = read_all(compressed_frame(opcode, ""));
    EXPECT_FALSE(outcome.result.ok);
    EXPECT_EQ(outcome.result.close_code, CloseCode::kProtocolError);
  }
}

TEST(ReaderInflate, Rsv2AndRsv3StayProtocolErrors) {
  for (const std::uint8_t rsv : {0x2, 0x1, 0x6}) {
    const Outcome outcome = read_all(make_masked_frame(Opcode::kText, "x", kTestMask, true, rsv));
    EXPECT_EQ(outcome.result.close_code, CloseCode::kProtocolError) << int{rsv};
  }
}

TEST(ReaderInflate, DataThatDoesNotInflateFailsTheConnection) {
  const Outcome outcome = read_all(compressed_frame(Opcode::kText, "\xFF\xFF\xFF"));
  EXPECT_FALSE(outcome.result.ok);
  EXPECT_EQ(outcome.result.close_code, CloseCode::kInvalidPayload);
  EXPECT_TRUE(outcome.events.empty());
}

TEST(ReaderInflate, InvalidUtf8AfterInflationIs1007) {
  PeerCompressor peer;
  for (const std::string_view text : {"\xC3\x28", "ok \xED\xA0\x80", "ends inside \xE2\x82"}) {
    const Outcome outcome = read_all(compressed_frame(Opcode::kText, peer.compress(text)));
    EXPECT_EQ(outcome.result.close_code, CloseCode::kInvalidPayload) << text;
    EXPECT_TRUE(outcome.events.empty());
  }
  // The same bytes in a binary message are fine.
  const Outcome binary = read_all(compressed_frame(Opcode::kBinary, peer.compress("\xC3\x28")));
  EXPECT_TRUE(binary.result.ok);
}

TEST(ReaderInflate, InvalidUtf8InAnEarlyFragmentFailsBeforeTheEnd) {
  PeerCompressor peer;
  const std::string compressed = peer.compress(std::string("\xFF") + std::string(3000, 'a'));
  // Only the first fragment arrives: the reader has already judged it.
  const Outcome outcome = read_all(compressed_frame(Opcode::kText, compressed, false));
  EXPECT_EQ(outcome.result.close_code, CloseCode::kInvalidPayload);
}

TEST(ReaderInflate, ABombIsCutOffAtTheLimitWith1009) {
  PeerCompressor peer;
  const std::string bomb = peer.compress(std::string(16 << 20, 'a'));
  ASSERT_LT(bomb.size(), 64u << 10);
  const Outcome outcome = read_all(compressed_frame(Opcode::kText, bomb), true, false, 1 << 20);
  EXPECT_FALSE(outcome.result.ok);
  EXPECT_EQ(outcome.result.close_code, CloseCode::kMessageTooBig);
  EXPECT_TRUE(outcome.events.empty());
}

TEST(ReaderInflate, TheLimitCountsInflatedBytesAcrossFragments) {
  PeerCompressor peer;
  const std::string compressed = peer.compress(std::string(3000, 'a'));
  const std::size_t half = compressed.size() / 2;
  const std::string wire = compressed_frame(Opcode::kText, compressed.substr(0, half), false) +
                           client_frame(Opcode::kContinuation, compressed.substr(half));
  EXPECT_EQ(read_all(wire, true, false, 2999).result.close_code, CloseCode::kMessageTooBig);
  const Outcome fits = read_all(wire, true, false, 3000);
  EXPECT_TRUE(fits.result.ok);
  EXPECT_EQ(fits.events, Events{"text:" + std::string(3000, 'a')});
}

TEST(ReaderInflate, ACompressedMessageIsBoundedOnTheWireAcrossFragments) {
  // Each fragment is within its own bound and the inflated size stays tiny (empty stored
  // blocks inflate to nothing), but together the fragments pass 2 x limit + 1 KiB: 1009.
  PeerCompressor peer;
  const std::string compressed = peer.compress("hello");
  // An empty stored block, non-final: 00 00 00 ff ff (RFC 1951 section 3.2.4).
  const std::string empty_block("\x00\x00\x00\xff\xff", 5);
  std::string block_run;
  for (int i = 0; i < 100; ++i) block_run += empty_block;  // 500 bytes
  const std::string middle = client_frame(Opcode::kContinuation, block_run, false);  // 508
  const std::string wire_ok = compressed_frame(Opcode::kText, empty_block, false) + middle +
                              middle + client_frame(Opcode::kContinuation, compressed);
  const Outcome ok = read_all(wire_ok, true, false, 200);  // bound 1424; wire ~1045
  EXPECT_TRUE(ok.result.ok) << ok.result.reason;
  EXPECT_EQ(ok.events, Events{"text:hello"});
  const Outcome refused =
      read_all(compressed_frame(Opcode::kText, empty_block, false) + middle + middle + middle +
                   client_frame(Opcode::kContinuation, compressed),
               true, false, 200);  // ~1553 > 1424
  EXPECT_EQ(refused.result.close_code, CloseCode::kMessageTooBig);
  EXPECT_TRUE(refused.events.empty());
}

TEST(ReaderInflate, AnIncompressibleMessageOfTheLimitPasses) {
  // Random bytes do not shrink: their compressed frame is a little longer than the limit.
  std::string bytes(1 << 16, '\0');
  std::uint32_t state = 12345;
  for (char& c : bytes) {
    state = state * 1664525u + 1013904223u;
    c = static_cast<char>(state >> 24);
  }
  PeerCompressor peer;
  const std::string compressed = peer.compress(bytes);
  ASSERT_GT(compressed.size(), bytes.size());
  const Outcome outcome =
      read_all(compressed_frame(Opcode::kBinary, compressed), true, false, bytes.size());
  EXPECT_TRUE(outcome.result.ok) << outcome.result.reason;
  EXPECT_EQ(outcome.events, Events{"binary:" + bytes});
}

TEST(ReaderInflate, AFrameLargerThanTheLimitIsRefusedBeforeItsPayload) {
  // Only the header of a compressed frame of 2 MiB: refused before a byte is buffered.
  std::array<std::uint8_t, kMaxHeaderSize> header{};
  const std::size_t length =
      write_frame_header(header.data(), Opcode::kText, true, 2 << 20, &kTestMask, kRsv1);
  const Outcome outcome =
      read_all(std::string(reinterpret_cast<const char*>(header.data()), length));
  EXPECT_EQ(outcome.result.close_code, CloseCode::kMessageTooBig);
}

TEST(ReaderInflate, SizeOfTheReaderIsUnchanged) {
  // Every connection holds a Reader; negotiating deflate costs a pointer that was paid for.
  EXPECT_LE(sizeof(Reader), 48u);
}

}  // namespace
}  // namespace roomcast::ws
