#include "chat/hub.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>

#include "store/memory_store.h"
#include "support/client_messages.h"
#include "support/recording_sink.h"

namespace roomcast::chat {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

using test_support::RecordingSink;

class HubTest : public ::testing::Test {
 protected:
  void join(ConnectionId who, std::string_view room, std::string_view username = "") {
    hub.receive(who, test_support::join_json(room, username));
  }
  std::string user_id(ConnectionId who) {
    return std::string(sink.of_type(who, "connection_established").at(0).at("userId").as_string());
  }
  // Lets the coalescing interval pass and runs the Hub's periodic work.
  void settle() {
    clock.advance(milliseconds(100));
    hub.tick();
  }

  RecordingSink sink;
  base::ManualClock clock;
  store::MemoryStore store{clock, HubOptions{}.retention()};
  Hub hub{sink, clock, {}, store};
};

TEST_F(HubTest, ConnectSendsAUuidV4UserId) {
  hub.connect(1);
  const std::string id = user_id(1);
  ASSERT_EQ(id.size(), 36u);
  EXPECT_EQ(id[14], '4');
  hub.connect(2);
  EXPECT_NE(user_id(2), id);
}

TEST_F(HubTest, JoinWelcomesTheJoinerAndTellsTheOthers) {
  hub.connect(1);
  hub.connect(2);
  join(1, "general", "alice");
  join(2, "general", "bob");
  auto welcome = sink.of_type(2, "system_message");
  ASSERT_EQ(welcome.size(), 1u);
  EXPECT_EQ(welcome[0].at("message"), "Welcome to general!");
  EXPECT_EQ(welcome[0].at("room"), "general");
  auto alice_sees = sink.of_type(1, "system_message");
  ASSERT_EQ(alice_sees.size(), 2u);
  EXPECT_EQ(alice_sees[1].at("message"), "bob joined the chat");
}

TEST_F(HubTest, UserListsAreCoalescedIntoOnePerInterval) {
  for (ConnectionId c = 1; c <= 10; ++c) {
    hub.connect(c);
    join(c, "big", "user" + std::to_string(c));
  }
  EXPECT_TRUE(sink.of_type(1, "user_list").empty());  // nothing until the Hub ticks
  settle();
  auto lists = sink.of_type(1, "user_list");
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0].at("users").as_array().size(), 10u);
  EXPECT_EQ(lists[0].at("users").as_array()[9].at("username"), "user10");
}

TEST_F(HubTest, ChatGoesToEveryMemberIncludingTheSenderWithIncreasingSeq) {
  hub.connect(1);
  hub.connect(2);
  join(1, "r", "alice");
  join(2, "r", "bob");
  hub.receive(1, R"({"type":"chat_message","message":"one"})");
  hub.receive(2, R"({"type":"chat_message","message":"two"})");
  for (ConnectionId c : {1, 2}) {
    auto chats = sink.of_type(c, "chat_message");
    ASSERT_EQ(chats.size(), 2u);
    EXPECT_EQ(chats[0].at("message"), "one");
    EXPECT_EQ(chats[0].at("username"), "alice");
    EXPECT_EQ(chats[0].at("seq").to_number<int>(), 1);
    EXPECT_EQ(chats[1].at("seq").to_number<int>(), 2);
  }
}

TEST_F(HubTest, AChatMessageCarriesWhenItWasAcceptedAndItsFanOutToTheTransport) {
  hub.connect(1);
  hub.connect(2);
  hub.connect(3);
  join(1, "r", "alice");
  join(2, "r", "bob");
  join(3, "elsewhere", "carol");
  clock.advance(milliseconds(7));
  const base::SteadyTime sent_at = clock.now();
  hub.receive(1, R"({"type":"chat_message","room":"r","message":"timed"})");
  ASSERT_EQ(sink.deliveries.size(), 1u);
  // The Hub's clock when it accepted the message (the store reported it at once).
  EXPECT_EQ(sink.deliveries[0].accepted_at, sent_at);
  EXPECT_EQ(sink.deliveries[0].fan_out, 2u);  // alice and bob, not carol
  // Joins, leaves and typing are not chat messages: nothing is measured of them.
  hub.receive(2, R"({"type":"typing_start","room":"r"})");
  hub.receive(2, R"({"type":"leave_room","room":"r"})");
  EXPECT_EQ(sink.deliveries.size(), 1u);
}

TEST_F(HubTest, RoomsAreIsolated) {
  hub.connect(1);
  hub.connect(2);
  join(1, "a", "alice");
  join(2, "b", "bob");
  hub.receive(1, R"({"type":"chat_message","message":"for a"})");
  EXPECT_TRUE(sink.of_type(2, "chat_message").empty());
}

TEST_F(HubTest, ChatGoesToEveryRoomOfTheSenderOrToTheNamedOne) {
  hub.connect(1);
  join(1, "a", "alice");
  join(1, "b");
  hub.receive(1, R"({"type":"chat_message","message":"hi"})");
  auto chats = sink.of_type(1, "chat_message");
  ASSERT_EQ(chats.size(), 2u);
  EXPECT_EQ(chats[0].at("room"), "a");
  EXPECT_EQ(chats[1].at("room"), "b");
  sink.clear();
  hub.receive(1, R"({"type":"chat_message","message":"only b","room":"b"})");
  chats = sink.of_type(1, "chat_message");
  ASSERT_EQ(chats.size(), 1u);
  EXPECT_EQ(chats[0].at("room"), "b");
}

TEST_F(HubTest, ErrorsAnswerTheSenderOnly) {
  hub.connect(1);
  hub.receive(1, R"({"type":"chat_message","message":"too early"})");
  auto errors = sink.of_type(1, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "not_in_room");
  join(1, "r", "alice");
  join(1, "r");
  EXPECT_EQ(sink.of_type(1, "error").back().at("code"), "already_in_room");
  join(1, "s", "mallory");
  EXPECT_EQ(sink.of_type(1, "error").back().at("code"), "username_mismatch");
  hub.receive(1, R"({"type":"leave_room","room":"nowhere"})");
  EXPECT_EQ(sink.of_type(1, "error").back().at("code"), "not_in_room");
  hub.receive(1, R"({"type":"typing_start","room":"nowhere"})");
  EXPECT_EQ(sink.of_type(1, "error").back().at("code"), "not_in_room");
  hub.receive_binary(1, "\x01");
  EXPECT_EQ(sink.of_type(1, "error").back().at("code"), "unsupported_binary");
  EXPECT_EQ(hub.stats().errors.at("not_in_room"), 3u);
}

TEST_F(HubTest, FirstJoinNeedsAUsername) {
  hub.connect(1);
  join(1, "r");
  EXPECT_EQ(sink.of_type(1, "error").back().at("code"), "invalid_field");
  EXPECT_EQ(hub.stats().rooms, 0u);
}

TEST_F(HubTest, TypingReachesOthersOnlyAndOnlyOnChange) {
  hub.connect(1);
  hub.connect(2);
  join(1, "r", "alice");
  join(2, "r", "bob");
  hub.receive(1, R"({"type":"typing_start","room":"r"})");
  hub.receive(1, R"({"type":"typing_start","room":"r"})");
  EXPECT_TRUE(sink.of_type(1, "typing_start").empty());
  auto seen = sink.of_type(2, "typing_start");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].at("username"), "alice");
  hub.receive(1, R"({"type":"typing_stop","room":"r"})");
  EXPECT_EQ(sink.of_type(2, "typing_stop").size(), 1u);
  EXPECT_TRUE(sink.of_type(1, "typing_stop").empty());
}

TEST_F(HubTest, TypingExpiresWhenTheTypistGoesQuiet) {
  hub.connect(1);
  hub.connect(2);
  join(1, "r", "alice");
  join(2, "r", "bob");
  hub.receive(1, R"({"type":"typing_start","room":"r"})");
  clock.advance(milliseconds(4900));
  hub.tick();
  EXPECT_TRUE(sink.of_type(2, "typing_stop").empty());
  clock.advance(milliseconds(200));
  hub.tick();
  EXPECT_EQ(sink.of_type(2, "typing_stop").size(), 1u);
}

TEST_F(HubTest, DisconnectTellsEveryRoomAndEndsTyping) {
  hub.connect(1);
  hub.connect(2);
  join(1, "a", "alice");
  join(1, "b");
  join(2, "a", "bob");
  join(2, "b");
  hub.receive(1, R"({"type":"typing_start","room":"a"})");
  settle();
  sink.clear();
  hub.disconnect(1);
  auto left = sink.of_type(2, "system_message");
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].at("message"), "alice left the chat");
  EXPECT_EQ(sink.of_type(2, "typing_stop").size(), 1u);
  settle();
  auto lists = sink.of_type(2, "user_list");
  ASSERT_EQ(lists.size(), 2u);
  EXPECT_EQ(lists[0].at("users").as_array().size(), 1u);
  EXPECT_EQ(hub.stats().connections, 1u);
}

TEST_F(HubTest, EmptyRoomsAreRemoved) {
  hub.connect(1);
  join(1, "r", "alice");
  EXPECT_EQ(hub.stats().rooms, 1u);
  hub.receive(1, R"({"type":"leave_room","room":"r"})");
  EXPECT_EQ(hub.stats().rooms, 0u);
}

// The events of the debug log: what happened to which connection, and nothing built while
// nobody listens.
class RecordingEventLog final : public EventLog {
 public:
  bool enabled() const override { return on; }
  void note(ConnectionId who, std::string_view event) override {
    events.emplace_back(who, std::string(event));
  }
  bool on = true;
  std::vector<std::pair<ConnectionId, std::string>> events;
};

TEST_F(HubTest, ConnectionsEventsGoToTheEventLogWhileItListens) {
  RecordingEventLog log;
  hub.set_event_log(&log);
  hub.connect(1);
  join(1, "general", "alice");
  join(1, "general");  // already in it: refused
  hub.receive(1, R"({"type":"leave_room","room":"general"})");
  hub.disconnect(1);
  ASSERT_EQ(log.events.size(), 5u);
  EXPECT_EQ(log.events[0],
            std::make_pair(ConnectionId{1}, "connected as user " + user_id(1) + " (anonymous)"));
  EXPECT_EQ(log.events[1].second, "joined room 'general' as 'alice'");
  EXPECT_EQ(log.events[2].second.rfind("refused (already_in_room): ", 0), 0u)
      << log.events[2].second;
  EXPECT_EQ(log.events[3].second, "left room 'general'");
  EXPECT_EQ(log.events[4].second, "disconnected");

  log.on = false;
  hub.connect(2);
  join(2, "general", "bob");
  EXPECT_EQ(log.events.size(), 5u);
}

}  // namespace
}  // namespace roomcast::chat
