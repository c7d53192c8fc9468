// The Hub's server API entry points (hub_api.cpp): publications from the backend travel as a
// member's message does and are answered once, after delivery; disconnect and unsubscribe act
// on every connection of a user; room_views lists members here and elsewhere.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <optional>

#include "chat/hub.h"
#include "store/memory_store.h"
#include "support/client_messages.h"
#include "support/manual_store.h"
#include "support/recording_sink.h"

namespace roomcast::chat {
namespace {

using test_support::ManualStore;
using test_support::RecordingSink;

constexpr ConnectionId kTicket = 0xFF00'0000'FFFF'FFFFull;

Identity user(std::string id, std::string name) {
  Identity identity;
  identity.user_id = std::move(id);
  identity.username = std::move(name);
  return identity;
}

class HubApiTest : public ::testing::Test {
 protected:
  void join(ConnectionId who, std::string_view room, std::string_view username) {
    hub.receive(who, test_support::join_json(room, username));
  }
  // Publishes and returns the answer, if it came already.
  std::optional<ServerPublishResult> publish(ConnectionId ticket, std::string room,
                                             std::string text, std::string key = "") {
    answers.erase(ticket);
    hub.publish_from_server(ticket,
                            {std::move(room), std::move(text), "server", std::move(key), "", false},
                            [this, ticket](ServerPublishResult r) {
                              EXPECT_FALSE(answers.contains(ticket)) << "answered twice";
                              answers[ticket] = std::move(r);
                            });
    const auto it = answers.find(ticket);
    return it == answers.end() ? std::nullopt : std::optional(it->second);
  }

  RecordingSink sink;
  base::ManualClock clock;
  store::MemoryStore store{clock, HubOptions{}.retention()};
  Hub hub{sink, clock, {}, store};
  std::map<ConnectionId, ServerPublishResult> answers;
};

TEST_F(HubApiTest, APublicationIsDeliveredLikeAMembersMessageAndAnsweredWithItsSeq) {
  hub.connect(1);
  join(1, "r", "alice");
  hub.receive(1, R"({"type":"chat_message","room":"r","message":"before"})");
  const auto answer = publish(kTicket, "r", "from the backend");
  ASSERT_TRUE(answer);
  EXPECT_TRUE(answer->error_code.empty()) << answer->error;
  EXPECT_EQ(answer->seq, 2u);
  const auto chats = sink.of_type(1, "chat_message");
  ASSERT_EQ(chats.size(), 2u);
  EXPECT_EQ(chats[1].at("message"), "from the backend");
  EXPECT_EQ(chats[1].at("userId").as_string(), kServerUserId);
  EXPECT_EQ(chats[1].at("username"), "server");
  EXPECT_EQ(chats[1].at("seq"), 2);
  EXPECT_TRUE(sink.of_type(1, "ack").empty());  // nobody's message to ack
}

TEST_F(HubApiTest, ARoomNotOpenIsLoadedFirstAndForgottenOnceAnswered) {
  ManualStore manual;
  RecordingSink quiet;
  Hub slow{quiet, clock, {}, manual};
  std::optional<ServerPublishResult> got;
  slow.publish_from_server(kTicket, {"empty", "hello", "server", "", "", false},
                           [&](ServerPublishResult r) { got = std::move(r); });
  EXPECT_EQ(manual.loads, std::vector<std::string>{"empty"});
  EXPECT_TRUE(manual.published.empty());  // not before the room is loaded
  manual.listener->on_loaded("empty", {.last_seq = 6, .messages = {}, .remote_members = {}});
  ASSERT_EQ(manual.published.size(), 1u);
  slow.tick();
  EXPECT_TRUE(manual.unloads.empty());  // kept while the message is in flight
  chat::StoredMessage stored{"empty", 7, 0, std::string(kServerUserId), "server", "hello", "", ""};
  manual.listener->on_committed(stored, kTicket);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->seq, 7u);
  slow.tick();
  EXPECT_EQ(manual.unloads, std::vector<std::string>{"empty"});
  EXPECT_EQ(slow.stats().rooms, 0u);
}

TEST_F(HubApiTest, ARetryOfAnIdempotencyKeyIsAnsweredWithTheFirstSeqAndDeliveredOnce) {
  hub.connect(1);
  join(1, "r", "alice");
  const auto first = publish(kTicket, "r", "once", "key-1");
  const auto again = publish(kTicket + (1ull << 32), "r", "once", "key-1");
  ASSERT_TRUE(first && again);
  EXPECT_EQ(first->seq, 1u);
  EXPECT_EQ(again->seq, 1u);
  EXPECT_TRUE(again->error_code.empty());
  EXPECT_EQ(sink.of_type(1, "chat_message").size(), 1u);
  // A client using the same string as its own id is another sender.
  hub.receive(1, R"({"type":"chat_message","room":"r","message":"mine","id":"key-1"})");
  EXPECT_EQ(sink.of_type(1, "ack").at(0).at("seq"), 2);
}

TEST_F(HubApiTest, TheAnswerWaitsForTheStoreAndARefusalIsAnswered) {
  ManualStore manual;
  RecordingSink quiet;
  Hub slow{quiet, clock, {}, manual};
  std::optional<ServerPublishResult> got;
  slow.publish_from_server(kTicket, {"r", "text", "server", "", "", false},
                           [&](ServerPublishResult r) { got = std::move(r); });
  ASSERT_EQ(manual.loads, std::vector<std::string>{"r"});
  EXPECT_FALSE(got);
  manual.listener->on_loaded("r", {});
  ASSERT_EQ(manual.published.size(), 1u);
  EXPECT_EQ(manual.published[0].origin, kTicket);
  EXPECT_FALSE(got);  // not before the store reports it
  manual.listener->on_refused(manual.published[0], "Redis is down",
                              error_code::kClusterUnavailable);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->error_code, error_code::kClusterUnavailable);
  EXPECT_EQ(got->error, "Redis is down");
}

TEST_F(HubApiTest, AFailedLoadIsAnswered) {
  ManualStore manual;
  RecordingSink quiet;
  Hub slow{quiet, clock, {}, manual};
  std::optional<ServerPublishResult> got;
  slow.publish_from_server(kTicket, {"r", "text", "server", "", "", false},
                           [&](ServerPublishResult r) { got = std::move(r); });
  manual.listener->on_load_failed("r", "Redis is down");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->error_code, error_code::kClusterUnavailable);
  EXPECT_TRUE(manual.published.empty());
}

TEST_F(HubApiTest, DisconnectClosesEveryConnectionOfTheUserOnly) {
  hub.connect(1, {user("u-1", "ann"), ""});
  hub.connect(2, {user("u-1", "ann"), ""});
  hub.connect(3, {user("u-2", "ben"), ""});
  join(1, "r", "ann");
  join(3, "r", "ben");
  EXPECT_EQ(hub.disconnect_user("u-1", close_code::kDisconnected, "Banned"), 2u);
  ASSERT_EQ(sink.closes[1].size(), 1u);
  EXPECT_EQ(sink.closes[1][0].code, close_code::kDisconnected);
  EXPECT_EQ(sink.closes[1][0].reason, "Banned");
  EXPECT_EQ(sink.closes[2].size(), 1u);
  EXPECT_TRUE(sink.closes[3].empty());
  // The others see the user leave at once; whatever it still says is ignored.
  const auto left = sink.of_type(3, "system_message");
  EXPECT_EQ(left.back().at("message"), "ann left the chat");
  hub.receive(1, R"({"type":"chat_message","room":"r","message":"still here?"})");
  EXPECT_TRUE(sink.of_type(3, "chat_message").empty());
  // Closed already: a second call finds nobody.
  EXPECT_EQ(hub.disconnect_user("u-1", close_code::kDisconnected, "Banned"), 0u);
}

TEST_F(HubApiTest, UnsubscribeTakesTheUserOutOfOneRoomAndSaysSo) {
  hub.connect(1, {user("u-1", "ann"), ""});
  join(1, "a", "ann");
  join(1, "b", "ann");
  EXPECT_EQ(hub.unsubscribe_user("u-1", "a", "Moderated"), 1u);
  const auto errors = sink.of_type(1, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code").as_string(), error_code::kRemovedFromRoom);
  EXPECT_EQ(errors[0].at("room"), "a");
  EXPECT_EQ(errors[0].at("message"), "Moderated");
  EXPECT_EQ(hub.unsubscribe_user("u-1", "a", "Moderated"), 0u);
  hub.receive(1, R"({"type":"chat_message","room":"b","message":"still in b"})");
  EXPECT_EQ(sink.of_type(1, "chat_message").size(), 1u);
}

TEST_F(HubApiTest, RoomViewsListTheMembersAndLastSeq) {
  hub.connect(1, {user("u-1", "ann"), ""});
  hub.connect(2, {user("u-1", "ann"), ""});
  join(1, "r", "ann");
  join(2, "r", "ann");
  publish(kTicket, "r", "x");
  const auto views = hub.room_views();
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].name, "r");
  EXPECT_EQ(views[0].last_seq, 1u);
  ASSERT_EQ(views[0].local.size(), 2u);
  EXPECT_NE(views[0].local[0], views[0].local[1]);  // one record per connection
  EXPECT_EQ(views[0].local[0]->user_id(), "u-1");
  EXPECT_TRUE(views[0].remote.empty());
}

}  // namespace
}  // namespace roomcast::chat
