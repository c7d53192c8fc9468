// The Hub's history, since recovery, acks and idempotency, without a store (history in
// memory; acks follow at once). With a store: tests/unit/store/.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>

#include "chat/hub.h"
#include "store/memory_store.h"
#include "support/history_now.h"
#include "support/recording_sink.h"

namespace roomcast::chat {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

using InboxSink = test_support::RecordingSink;

std::vector<std::int64_t> seqs(const json::object& history) {
  std::vector<std::int64_t> out;
  for (const auto& m : history.at("messages").as_array()) out.push_back(m.at("seq").as_int64());
  return out;
}

class HubHistoryTest : public ::testing::Test {
 protected:
  HubOptions options() {
    HubOptions o;
    o.history_size = 10;
    o.history_on_join = 3;
    o.history_ttl = milliseconds(60'000);
    o.message_rate.max_events = 0;  // these tests send more than a user may per minute
    return o;
  }
  void join(ConnectionId who, std::string_view room, std::string_view username,
            std::string extra = "") {
    hub.receive(who, R"({"type":"join_room","room":")" + std::string(room) + R"(","username":")" +
                         std::string(username) + "\"" + extra + "}");
  }
  void say(ConnectionId who, int n, std::string extra = "") {
    hub.receive(who,
                R"({"type":"chat_message","message":"m)" + std::to_string(n) + "\"" + extra + "}");
  }

  InboxSink sink;
  base::ManualClock clock;
  store::MemoryStore store{clock, options().retention()};
  Hub hub{sink, clock, options(), store};
};

TEST_F(HubHistoryTest, JoinGetsTheLastMessagesAfterTheWelcome) {
  hub.connect(1);
  join(1, "r", "ann");
  for (int i = 1; i <= 5; ++i) say(1, i);
  hub.connect(2);
  join(2, "r", "bob");
  const auto& got = sink.inbox[2];
  ASSERT_GE(got.size(), 3u);
  EXPECT_EQ(got[1].at("type"), "system_message");
  EXPECT_EQ(got[1].at("message"), "Welcome to r!");
  ASSERT_EQ(got[2].at("type"), "history");
  EXPECT_EQ(seqs(got[2]), (std::vector<std::int64_t>{3, 4, 5}));
  EXPECT_FALSE(got[2].contains("recovered"));
}

TEST_F(HubHistoryTest, SinceGivesExactlyWhatFollowedAndSaysWhetherItReachesBack) {
  hub.connect(1);
  join(1, "r", "ann");
  for (int i = 1; i <= 15; ++i) say(1, i);  // the window keeps 6..15
  for (auto [since, first, recovered] :
       {std::tuple{12, 13, true}, std::tuple{5, 6, true}, std::tuple{4, 6, false},
        std::tuple{15, 16, true}, std::tuple{99, 13, false}}) {
    const ConnectionId who = 100 + static_cast<ConnectionId>(since);
    hub.connect(who);
    join(who, "r", "bob", R"(,"since":)" + std::to_string(since));
    const auto history = sink.of_type(who, "history");
    ASSERT_EQ(history.size(), 1u) << since;
    EXPECT_EQ(history[0].at("recovered").as_bool(), recovered) << since;
    std::vector<std::int64_t> expected;
    for (int s = first; s <= 15; ++s) expected.push_back(s);
    EXPECT_EQ(seqs(history[0]), expected) << since;
    hub.disconnect(who);
  }
}

TEST_F(HubHistoryTest, WithoutAStoreAcksFollowAtOnceAndResendsAreDeliveredOnce) {
  hub.connect(1);
  hub.connect(2);
  join(1, "r", "ann");
  join(2, "r", "bob");
  say(1, 1, R"(,"id":"a")");
  say(1, 1, R"(,"id":"a")");
  say(1, 2, R"(,"id":"b")");
  const auto acks = sink.of_type(1, "ack");
  ASSERT_EQ(acks.size(), 3u);
  EXPECT_EQ(acks[0], acks[1]);
  EXPECT_EQ(acks[0].at("seq"), 1);
  EXPECT_EQ(acks[2].at("seq"), 2);
  EXPECT_EQ(sink.of_type(2, "chat_message").size(), 2u);
}

TEST_F(HubHistoryTest, IdsAreRememberedOnlyWithinTheHistoryWindow) {
  hub.connect(1);
  join(1, "r", "ann");
  say(1, 0, R"(,"id":"first")");
  for (int i = 1; i <= 10; ++i) say(1, i);  // pushes "first" out of the 10-message window
  say(1, 0, R"(,"id":"first")");
  const auto acks = sink.of_type(1, "ack");
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0].at("seq"), 1);
  EXPECT_EQ(acks[1].at("seq"), 12);  // a new message: the window no longer knew the id
}

TEST_F(HubHistoryTest, HistoryOlderThanTheTtlIsDropped) {
  hub.connect(1);
  join(1, "r", "ann");
  say(1, 1);
  clock.advance(milliseconds(30'000));
  say(1, 2);
  clock.advance(milliseconds(40'000));  // m1 is 70 s old, m2 40 s
  hub.tick();
  hub.connect(2);
  join(2, "r", "bob", R"(,"since":0)");
  const auto history = sink.of_type(2, "history");
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(seqs(history[0]), (std::vector<std::int64_t>{2}));
  EXPECT_FALSE(history[0].at("recovered").as_bool());
}

TEST_F(HubHistoryTest, HttpHistoryPagesForwardOrReturnsTheNewest) {
  hub.connect(1);
  join(1, "r", "ann");
  for (int i = 1; i <= 8; ++i) say(1, i);
  const auto newest_result =
      test_support::history_now(store, clock, options(), "r", std::nullopt, 2);
  const auto& newest = std::get<HistoryPage>(newest_result);
  EXPECT_EQ(newest.last_seq, 8u);
  ASSERT_EQ(newest.messages.size(), 2u);
  EXPECT_EQ(json::parse(newest.messages[0]).at("seq"), 7);
  const auto page_result = test_support::history_now(store, clock, options(), " r ", 3, 2);
  const auto& page = std::get<HistoryPage>(page_result);
  EXPECT_EQ(page.room, "r");
  ASSERT_EQ(page.messages.size(), 2u);
  EXPECT_EQ(json::parse(page.messages[0]).at("seq"), 4);
  EXPECT_EQ(json::parse(page.messages[1]).at("seq"), 5);
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(
      test_support::history_now(store, clock, options(), "<b>", std::nullopt, 2)));
  const auto empty_result =
      test_support::history_now(store, clock, options(), "empty", std::nullopt, 2);
  EXPECT_TRUE(std::get<HistoryPage>(empty_result).messages.empty());
}

TEST_F(HubHistoryTest, WithoutAStoreARoomForgetsItsHistoryWhenItEmpties) {
  hub.connect(1);
  join(1, "r", "ann");
  say(1, 1);
  hub.receive(1, R"({"type":"leave_room","room":"r"})");
  join(1, "r", "ann");
  say(1, 2);
  const auto chats = sink.of_type(1, "chat_message");
  ASSERT_EQ(chats.size(), 2u);
  EXPECT_EQ(chats[1].at("seq"), 1);
}

}  // namespace
}  // namespace roomcast::chat
