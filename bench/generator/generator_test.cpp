// Unit tests of the generator's pure parts: the latency histogram and the wire helpers.
#include <gtest/gtest.h>

#include <bit>
#include <string>
#include <vector>

#include "histogram.h"
#include "wire.h"

namespace roomcast::bench {
namespace {

TEST(LatencyHistogram, BucketsAreContiguousAndOrdered) {
  std::size_t previous = 0;
  for (std::uint64_t value = 1; value < (std::uint64_t{1} << 20); value += value / 7 + 1) {
    const std::size_t bucket = LatencyHistogram::bucket_of(value);
    EXPECT_GE(bucket, previous);
    EXPECT_LE(value, LatencyHistogram::upper_edge(bucket));
    if (bucket > 0) {
      EXPECT_GT(value, LatencyHistogram::upper_edge(bucket - 1));
    }
    previous = bucket;
  }
  EXPECT_EQ(LatencyHistogram::bucket_of(~std::uint64_t{0}), LatencyHistogram::kBucketCount - 1);
}

TEST(LatencyHistogram, QuantilesWithinOnePointSixPercent) {
  LatencyHistogram histogram;
  for (std::uint64_t ms = 1; ms <= 1000; ++ms) histogram.record(ms * 1'000'000);
  EXPECT_EQ(histogram.count(), 1000u);
  EXPECT_EQ(histogram.max(), 1'000'000'000u);
  const auto p50 = static_cast<double>(histogram.quantile(0.5));
  const auto p99 = static_cast<double>(histogram.quantile(0.99));
  EXPECT_NEAR(p50, 500e6, 500e6 / 64);
  EXPECT_NEAR(p99, 990e6, 990e6 / 64);
  EXPECT_EQ(histogram.quantile(1.0), histogram.max());
}

TEST(LatencyHistogram, MergeEqualsRecordingEverything) {
  LatencyHistogram a;
  LatencyHistogram b;
  LatencyHistogram all;
  for (std::uint64_t v = 0; v < 5000; ++v) {
    (v % 3 == 0 ? a : b).record(v * 977);
    all.record(v * 977);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  for (double q : {0.1, 0.5, 0.9, 0.99, 0.999}) EXPECT_EQ(a.quantile(q), all.quantile(q));
}

TEST(Wire, StampSurvivesTheServersChatMessage) {
  char json[message_capacity()];
  const std::size_t len = write_chat_json(json, 123456789012345ULL, 7, 100);
  const std::string client(json, len);
  EXPECT_EQ(client.rfind(R"({"type":"chat_message","message":"t=123456789012345 s=7 x)", 0), 0u);
  // The text is padded to 100 characters.
  EXPECT_EQ(client.size(), 100u + std::string(R"({"type":"chat_message","message":""})").size());

  const std::string text = client.substr(34, client.size() - 36);
  const std::string server =
      R"({"type":"chat_message","room":"room-1","userId":"x","username":"u1",)"
      R"("message":")" +
      text + R"(","timestamp":1,"seq":3})";
  EXPECT_EQ(classify(server), ServerMessageKind::kChat);
  const auto stamp = find_stamp(server);
  ASSERT_TRUE(stamp.has_value());
  EXPECT_EQ(stamp->sent_ns, 123456789012345ULL);
  EXPECT_EQ(stamp->step, 7u);
}

TEST(Wire, AnIdIsTheSendTimeAfterTheText) {
  char json[message_capacity()];
  EXPECT_EQ(std::string(json, write_chat_json(json, 5, 0, 0, true)),
            R"({"type":"chat_message","message":"t=5 s=0","id":"5"})");
  const std::size_t len = write_event_json(json, "chat_event", "room-1", 42, 3, 0, true);
  EXPECT_EQ(std::string(json, len),
            R"({"type":"chat_event","room":"room-1","message":"t=42 s=3","id":"42"})");
  EXPECT_EQ(find_stamp(std::string_view(json, len))->sent_ns, 42u);
}

TEST(Wire, UnpaddedTextIsJustTheStamp) {
  char json[message_capacity()];
  const std::size_t len = write_chat_json(json, 5, 0, 0);
  EXPECT_EQ(std::string(json, len), R"({"type":"chat_message","message":"t=5 s=0"})");
}

TEST(Wire, ClassifiesServerMessages) {
  EXPECT_EQ(classify(R"({"type":"connection_established","userId":"a"})"),
            ServerMessageKind::kConnectionEstablished);
  EXPECT_EQ(
      classify(R"({"type":"system_message","room":"r","message":"Welcome to r!","timestamp":1})"),
      ServerMessageKind::kWelcome);
  EXPECT_EQ(classify(R"({"type":"system_message","room":"r","message":"u2 joined the chat"})"),
            ServerMessageKind::kOther);
  EXPECT_EQ(classify(R"({"type":"error","message":"x","code":"invalid_json"})"),
            ServerMessageKind::kError);
  EXPECT_EQ(classify(R"({"type":"typing_start","room":"r"})"), ServerMessageKind::kOther);
  EXPECT_EQ(classify(R"({"type":"chat_messages"})"), ServerMessageKind::kOther);
  EXPECT_FALSE(find_stamp(R"({"type":"chat_message","message":"hello"})").has_value());
}

TEST(Wire, Base64MatchesRfc6455Example) {
  const std::string nonce = "the sample nonce";
  EXPECT_EQ(base64(static_cast<const std::uint8_t*>(static_cast<const void*>(nonce.data())),
                   nonce.size()),
            "dGhlIHNhbXBsZSBub25jZQ==");
  const std::uint8_t two[] = {'a', 'b'};
  EXPECT_EQ(base64(two, 2), "YWI=");
}

TEST(Wire, CountsUserListMembers) {
  const std::string list = R"({"type":"user_list","room":"r","users":[{"id":"a","username":"u1"},)"
                           R"({"id":"b","username":"u2"}]})";
  EXPECT_EQ(classify(list), ServerMessageKind::kUserList);
  EXPECT_EQ(count_users(list), 2u);
  EXPECT_EQ(count_users(R"({"type":"user_list","room":"r","users":[]})"), 0u);
}

TEST(Wire, JoinMessage) {
  EXPECT_EQ(join_json("room-3", "u42"), R"({"type":"join_room","room":"room-3","username":"u42"})");
  EXPECT_EQ(join_json("room-3", "u42", true),
            R"({"type":"join_room","room":"room-3","username":"u42","batch":true})");
  EXPECT_EQ(join_json("game", "u1", false, true),
            R"({"type":"join_room","room":"game","username":"u1","binary":true})");
}

TEST(Wire, EventCarriesTheChatTextAndItsStampSurvivesTheRelay) {
  char chat[message_capacity()];
  const std::string chat_json(chat, write_chat_json(chat, 42, 3, 100));
  char event[message_capacity()];
  const std::string event_json(event, write_event_json(event, "chat_event", "room-7", 42, 3, 100));
  // The same text, 100 characters, under "message".
  const auto text = [](const std::string& json) {
    const auto at = json.find(R"("message":")") + 11;
    return json.substr(at, json.size() - 2 - at);
  };
  EXPECT_EQ(text(event_json), text(chat_json));
  EXPECT_EQ(text(event_json).size(), 100u);
  EXPECT_EQ(event_json.rfind(R"({"type":"chat_event","room":"room-7","message":"t=42 s=3 x)", 0),
            0u);

  // The server puts its own fields first and the sender's after them (docs/protocol.md).
  const std::string relayed = R"({"type":"chat_event","room":"room-7","userId":"a-b",)"
                              R"("username":"u70","timestamp":1733490000000,"seq":9,"message":")" +
                              text(event_json) + R"("})";
  EXPECT_EQ(classify(relayed, "chat_event"), ServerMessageKind::kEvent);
  // Only the type the generator sends counts: not without it, not a longer name.
  EXPECT_EQ(classify(relayed), ServerMessageKind::kOther);
  EXPECT_EQ(classify(relayed, "chat_even"), ServerMessageKind::kOther);
  const auto stamp = find_stamp(relayed);
  ASSERT_TRUE(stamp.has_value());
  EXPECT_EQ(stamp->sent_ns, 42u);
  EXPECT_EQ(stamp->step, 3u);
}

TEST(Wire, PositionEventCarriesThreeFloatsAndAStamp) {
  char out[message_capacity()];
  const std::string json(out, write_position_json(out, "player_moved", "room-0",
                                                  Position{12.5f, -0.25f, 1.625f}, 77, 1));
  EXPECT_EQ(json, R"({"type":"player_moved","room":"room-0","x":12.5,"y":-0.25,"z":1.625,)"
                  R"("stamp":"t=77 s=1"})");
  const std::string relayed = R"({"type":"player_moved","room":"room-0","userId":"a",)"
                              R"("username":"u3","timestamp":1,"x":12.5,"y":-0.25,"z":1.625,)"
                              R"("stamp":"t=77 s=1"})";
  EXPECT_EQ(classify(relayed, "player_moved"), ServerMessageKind::kEvent);
  const auto stamp = find_stamp(relayed);
  ASSERT_TRUE(stamp.has_value());
  EXPECT_EQ(stamp->sent_ns, 77u);
  EXPECT_EQ(stamp->step, 1u);
}

TEST(Wire, BinaryPositionUpdateIsTheChaptersThirteenBytesThenTheStamp) {
  char out[message_capacity()];
  const Position position{3.5f, -7.0f, 100.25f};
  const std::size_t len = write_position_binary(out, position, 0x0102030405060708ULL, 513);
  ASSERT_EQ(len, kStampedPositionBytes);
  EXPECT_EQ(len, 25u);
  EXPECT_EQ(static_cast<unsigned char>(out[0]), 0x01);
  // x, y, z as little-endian float32 at 1, 5, 9, as the chapter's reader takes them.
  const float expected[] = {position.x, position.y, position.z};
  for (int i = 0; i < 3; ++i) {
    std::uint32_t bits = 0;
    for (int b = 3; b >= 0; --b)
      bits = (bits << 8) | static_cast<unsigned char>(out[1 + 4 * i + b]);
    EXPECT_EQ(std::bit_cast<float>(bits), expected[i]);
  }
  EXPECT_EQ(static_cast<unsigned char>(out[13]), 0x08);  // the send time, little-endian
  const auto stamp = read_binary_stamp(std::string_view(out, len));
  ASSERT_TRUE(stamp.has_value());
  EXPECT_EQ(stamp->sent_ns, 0x0102030405060708ULL);
  EXPECT_EQ(stamp->step, 513u);

  // Not ours: the chapter's own 13 bytes, another type byte, a longer message.
  EXPECT_FALSE(read_binary_stamp(std::string_view(out, kPositionUpdateBytes)).has_value());
  std::string other(out, len);
  other[0] = 0x02;
  EXPECT_FALSE(read_binary_stamp(other).has_value());
  EXPECT_FALSE(read_binary_stamp(std::string(out, len) + "x").has_value());
}

TEST(Wire, PositionsStayOnTheSquare) {
  for (std::uint64_t k = 0; k < 2000; k += 13) {
    const Position p = position_at(k);
    for (const float v : {p.x, p.y}) {
      EXPECT_GE(v, 0.0f);
      EXPECT_LE(v, 100.0f);
    }
    EXPECT_TRUE(p.x == 0.0f || p.x == 100.0f || p.y == 0.0f || p.y == 100.0f) << k;
  }
}

TEST(Wire, FindsEveryStampOfABatchOfEvents) {
  const std::string batch =
      R"({"type":"message_batch","room":"r","messages":[)"
      R"({"type":"chat_event","room":"r","userId":"x","username":"u1","timestamp":1,"seq":4,)"
      R"("message":"t=21 s=5"},{"type":"chat_event","room":"r","userId":"x","username":"u1",)"
      R"("timestamp":1,"seq":5,"message":"t=22 s=5 xx"}]})";
  EXPECT_EQ(classify(batch, "chat_event"), ServerMessageKind::kBatch);
  std::vector<std::uint64_t> sent;
  std::size_t end = 0;
  for (std::string_view rest = batch; const auto stamp = find_stamp(rest, &end);
       rest.remove_prefix(end)) {
    sent.push_back(stamp->sent_ns);
  }
  EXPECT_EQ(sent, (std::vector<std::uint64_t>{21, 22}));
}

TEST(Wire, FindsEveryStampOfABatchInOrder) {
  const std::string batch =
      R"({"type":"message_batch","room":"r","messages":[)"
      R"({"type":"chat_message","room":"r","userId":"x","username":"u1","message":"t=11 s=2",)"
      R"("timestamp":1,"seq":1},{"type":"chat_message","room":"r","userId":"x","username":"u1",)"
      R"("message":"t=12 s=2 xxx","timestamp":1,"seq":2}]})";
  EXPECT_EQ(classify(batch), ServerMessageKind::kBatch);
  std::vector<std::uint64_t> sent;
  std::size_t end = 0;
  for (std::string_view rest = batch; const auto stamp = find_stamp(rest, &end);
       rest.remove_prefix(end)) {
    EXPECT_EQ(stamp->step, 2u);
    sent.push_back(stamp->sent_ns);
  }
  EXPECT_EQ(sent, (std::vector<std::uint64_t>{11, 12}));
}

}  // namespace
}  // namespace roomcast::bench
