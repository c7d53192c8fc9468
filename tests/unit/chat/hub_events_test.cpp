// App events and direct messages: two workers' Hubs joined by an Exchange over one store,
// without threads (the test drains each Port as its worker would).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "chat/exchange.h"
#include "chat/hub.h"
#include "store/memory_store.h"
#include "support/client_messages.h"
#include "support/recording_sink.h"
#include "support/unlimited_options.h"

namespace roomcast::chat {
namespace {

using test_support::RecordingSink;

constexpr ConnectionId on_worker(std::size_t worker, std::uint32_t n) {
  return (static_cast<ConnectionId>(worker + 1) << 56) | n;
}
constexpr ConnectionId kAnn = on_worker(0, 1);
constexpr ConnectionId kAnnTab = on_worker(1, 2);  // Ann's second tab, on the other worker
constexpr ConnectionId kBob = on_worker(1, 1);
constexpr ConnectionId kCid = on_worker(0, 3);

class HubEventsTest : public ::testing::Test {
 protected:
  static HubOptions options() {
    HubOptions o = test_support::unlimited_options();
    o.limits.max_event_bytes = 256;
    o.app_events.allow("document_change", {.durable = true, .echo = true});
    o.app_events.allow("price_update", {.durable = false, .echo = true});
    o.app_events.allow("player_moved", {.durable = false, .echo = false});
    o.app_events.allow("cursor", {.durable = true, .echo = false});
    return o;
  }
  void SetUp() override { start(options()); }
  void start(const HubOptions& hub_options) {
    hubs[0].reset();
    hubs[1].reset();
    exchange.emplace(Exchange::Options{2, [](ConnectionId id) { return (id >> 56) - 1; },
                                       hub_options.history_size},
                     memory, nullptr);
    for (std::size_t w = 0; w < 2; ++w) {
      Exchange::Port& port = exchange->port(w);
      hubs[w].emplace(sinks[w], clock, hub_options, port, &port);
    }
  }
  void settle() {
    for (int round = 0; round < 4; ++round) {
      exchange->port(0).drain();
      exchange->port(1).drain();
    }
  }
  Hub& hub_of(ConnectionId who) { return *hubs[(who >> 56) - 1]; }
  RecordingSink& sink_of(ConnectionId who) { return sinks[(who >> 56) - 1]; }
  // Connects with a token's identity (a stable user id) when `user` is given.
  void connect(ConnectionId who, std::string_view user = "", std::string_view name = "") {
    ConnectInfo info;
    if (!user.empty())
      info.identity = Identity{std::string(user), std::string(name), std::nullopt, 0};
    hub_of(who).connect(who, std::move(info));
    settle();
  }
  void join(ConnectionId who, std::string_view room, std::string_view name = "",
            std::optional<std::uint64_t> since = std::nullopt) {
    std::string json = test_support::join_json(room, name);
    if (since) {
      json.pop_back();
      json += ",\"since\":" + std::to_string(*since) + "}";
    }
    hub_of(who).receive(who, json);
    settle();
  }
  void send(ConnectionId who, std::string_view json) {
    hub_of(who).receive(who, json);
    settle();
  }
  std::vector<boost::json::object> take(ConnectionId who, std::string_view type) {
    return sink_of(who).take(who, type);
  }
  std::string user_id(ConnectionId who) {
    return std::string(
        sink_of(who).of_type(who, "connection_established").at(0).at("userId").as_string());
  }
  void three_in_doc() {
    connect(kAnn);
    connect(kBob);
    connect(kCid);
    join(kAnn, "doc", "ann");
    join(kBob, "doc", "bob");
    join(kCid, "doc", "cid");
  }

  base::ManualClock clock;
  store::MemoryStore memory{clock, options().retention()};
  std::array<RecordingSink, 2> sinks;
  std::optional<Exchange> exchange;
  std::array<std::optional<Hub>, 2> hubs;
};

TEST_F(HubEventsTest, AnEphemeralEventReachesEveryWorkerWithTheServersFieldsAndTheSendersOwn) {
  three_in_doc();
  clock.advance(std::chrono::milliseconds(5));
  send(kAnn,
       R"({"type":"price_update","room":"doc","symbol":"ACME","price":{"bid":1.5,"ask":[2]}})");
  for (const ConnectionId who : {kAnn, kBob, kCid}) {
    SCOPED_TRACE(who);
    const auto got = take(who, "price_update");
    ASSERT_EQ(got.size(), 1u);
    const auto& event = got[0];
    EXPECT_EQ(event.at("room"), "doc");
    EXPECT_EQ(event.at("userId").as_string(), user_id(kAnn));
    EXPECT_EQ(event.at("username"), "ann");
    EXPECT_EQ(event.at("timestamp").as_int64(), clock.unix_ms());
    EXPECT_EQ(event.at("symbol"), "ACME");
    EXPECT_EQ(event.at("price").at("bid").as_double(), 1.5);
    EXPECT_EQ(event.at("price").at("ask").as_array().size(), 1u);
    EXPECT_FALSE(event.contains("seq"));  // ephemeral: not numbered
  }
}

TEST_F(HubEventsTest, WhatTheSenderClaimsAboutWhoWhereAndWhenIsNotBelieved) {
  three_in_doc();
  join(kBob, "other");
  send(kAnn, R"({"type":"document_change","room":"doc","userId":"bob-id","username":"bob",)"
             R"("timestamp":1,"seq":999,"change":{"pos":3}})");
  const auto got = take(kBob, "document_change");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].at("userId").as_string(), user_id(kAnn));
  EXPECT_EQ(got[0].at("username"), "ann");
  EXPECT_EQ(got[0].at("room"), "doc");
  EXPECT_EQ(got[0].at("seq").as_int64(), 1);  // the store's, not the sender's 999
  EXPECT_NE(got[0].at("timestamp").as_int64(), 1);
  EXPECT_EQ(got[0].at("change").at("pos").as_int64(), 3);
  // One of each name: the sender's versions are dropped, not repeated after the server's.
  EXPECT_EQ(got[0].size(), 7u);  // type room userId username timestamp seq change
}

TEST_F(HubEventsTest, NoEchoTypesGoToTheOthersOnly) {
  three_in_doc();
  send(kAnn, R"({"type":"player_moved","room":"doc","x":1})");
  EXPECT_TRUE(take(kAnn, "player_moved").empty());
  EXPECT_EQ(take(kBob, "player_moved").size(), 1u);
  EXPECT_EQ(take(kCid, "player_moved").size(), 1u);
  // Durable without echo: stored and acked, shown to the others only.
  send(kAnn, R"({"type":"cursor","room":"doc","at":4,"id":"c1"})");
  EXPECT_TRUE(take(kAnn, "cursor").empty());
  const auto acks = take(kAnn, "ack");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].at("id"), "c1");
  EXPECT_EQ(take(kBob, "cursor").size(), 1u);
  EXPECT_EQ(take(kCid, "cursor").size(), 1u);
}

TEST_F(HubEventsTest, ATypeNotAllowedIsAnUnknownTypeAsBefore) {
  three_in_doc();
  send(kAnn, R"({"type":"teleport","room":"doc","x":1})");
  const auto errors = take(kAnn, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "unknown_type");
  EXPECT_TRUE(take(kBob, "teleport").empty());
}

TEST_F(HubEventsTest, AnEventNeedsARoomTheSenderIsInAndAReasonableSize) {
  three_in_doc();
  send(kAnn, R"({"type":"price_update","price":1})");
  send(kAnn, R"({"type":"price_update","room":"elsewhere","price":1})");
  send(kAnn, R"({"type":"price_update","room":"doc","pad":")" + std::string(300, 'x') + "\"}");
  send(kAnn, R"({"type":"price_update","room":"doc","a":[[[[[[[[[1]]]]]]]]]})");
  const auto errors = take(kAnn, "error");
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].at("code"), "invalid_field");
  EXPECT_EQ(errors[1].at("code"), "not_in_room");
  EXPECT_EQ(errors[2].at("code"), "too_large");
  EXPECT_NE(std::string(errors[2].at("message").as_string()).find("256 bytes"), std::string::npos);
  EXPECT_EQ(errors[3].at("code"), "invalid_json");
  EXPECT_NE(std::string(errors[3].at("message").as_string()).find("nested deeper than 8"),
            std::string::npos);
  EXPECT_TRUE(take(kBob, "price_update").empty());
}

TEST_F(HubEventsTest, DurableEventsAreNumberedKeptAndRecoveredLikeChatMessages) {
  three_in_doc();
  send(kAnn, R"({"type":"chat_message","room":"doc","message":"hi"})");
  send(kAnn, R"({"type":"document_change","room":"doc","change":"a","id":"e1"})");
  send(kAnn, R"({"type":"price_update","room":"doc","price":1})");  // ephemeral: not kept
  send(kAnn, R"({"type":"document_change","room":"doc","change":"b"})");
  // A resend of e1 is acked with its seq again and not stored twice.
  send(kAnn, R"({"type":"document_change","room":"doc","change":"a","id":"e1"})");
  const auto acks = take(kAnn, "ack");
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0].at("seq").as_int64(), 2);
  EXPECT_EQ(acks[1].at("seq").as_int64(), 2);
  EXPECT_EQ(take(kBob, "document_change").size(), 2u);

  // A newcomer (on the other worker) gets the history; a returning one exactly what followed.
  constexpr ConnectionId kDee = on_worker(1, 9);
  connect(kDee);
  join(kDee, "doc", "dee", /*since=*/1);
  const auto history = take(kDee, "history");
  ASSERT_EQ(history.size(), 1u);
  const auto& messages = history[0].at("messages").as_array();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].at("type"), "document_change");
  EXPECT_EQ(messages[0].at("change"), "a");
  EXPECT_EQ(messages[0].at("seq").as_int64(), 2);
  EXPECT_EQ(messages[1].at("change"), "b");
  EXPECT_EQ(messages[1].at("seq").as_int64(), 3);
  EXPECT_EQ(history[0].at("recovered"), true);
}

TEST_F(HubEventsTest, EventsSpendTheBudgetOfWhatTheyAre) {
  HubOptions limited = options();
  limited.message_rate = {1, std::chrono::seconds(60)};
  limited.signal_rate = {3, std::chrono::seconds(60)};
  start(limited);
  three_in_doc();  // three joins: the signal budget is spent
  send(kAnn, R"({"type":"document_change","room":"doc","change":"a"})");
  send(kAnn, R"({"type":"document_change","room":"doc","change":"b"})");
  EXPECT_EQ(take(kBob, "document_change").size(), 1u);
  const auto errors = take(kAnn, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "rate_limited");
  // Bob joined once: two more signals, then refused.
  for (int i = 0; i < 3; ++i) send(kBob, R"({"type":"price_update","room":"doc","p":1})");
  EXPECT_EQ(take(kCid, "price_update").size(), 2u);
  EXPECT_EQ(take(kBob, "error").at(0).at("code"), "rate_limited");
}

TEST_F(HubEventsTest, ATypeWithARateOfItsOwnSpendsItAndNeitherTheChatNorTheSignalBudget) {
  using std::chrono::seconds;
  HubOptions limited = options();
  limited.message_rate = {1, seconds(60)};
  limited.signal_rate = {3, seconds(60)};
  limited.app_events.allow("document_change",
                           {.durable = true, .echo = true, .rate = RatePolicy{3, seconds(10)}});
  limited.app_events.allow("price_update",
                           {.durable = false, .echo = true, .rate = RatePolicy{4, seconds(1)}});
  start(limited);
  three_in_doc();
  for (int i = 0; i < 4; ++i) {
    send(kAnn, R"({"type":"document_change","room":"doc","change":"c"})");
  }
  EXPECT_EQ(take(kBob, "document_change").size(), 3u);  // more than the chat budget's one
  auto errors = take(kAnn, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "rate_limited");
  EXPECT_EQ(errors[0].at("retryAfterMs"), 20'000);  // the type's block: twice its window
  // Neither budget of the chat was spent: ann's one message a minute passes.
  send(kAnn, R"({"type":"chat_message","room":"doc","message":"still mine"})");
  EXPECT_EQ(take(kBob, "chat_message").size(), 1u);
  EXPECT_TRUE(take(kAnn, "error").empty());
  // An ephemeral type's own budget: more than the signal budget, one error per block.
  for (int i = 0; i < 6; ++i) send(kBob, R"({"type":"price_update","room":"doc","p":1})");
  EXPECT_EQ(take(kCid, "price_update").size(), 4u);
  errors = take(kBob, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("retryAfterMs"), 2'000);
  clock.advance(seconds(2));
  send(kBob, R"({"type":"price_update","room":"doc","p":2})");
  EXPECT_EQ(take(kCid, "price_update").size(), 1u);
  // Their budgets were left alone: bob's typing (signals: 1 join of 3) still goes through.
  send(kBob, R"({"type":"typing_start","room":"doc"})");
  EXPECT_EQ(take(kCid, "typing_start").size(), 1u);
}

TEST_F(HubEventsTest, ADirectMessageReachesEveryConnectionOfTheUserOnEveryWorker) {
  connect(kAnn, "ann-id", "ann");
  connect(kAnnTab, "ann-id", "ann");
  connect(kBob, "bob-id", "bob");
  connect(kCid, "cid-id", "cid");
  clock.advance(std::chrono::milliseconds(7));
  send(kBob, R"({"type":"direct_message","to":"ann-id","message":"psst","id":"d1"})");
  for (const ConnectionId who : {kAnn, kAnnTab}) {
    const auto got = take(who, "direct_message");
    ASSERT_EQ(got.size(), 1u) << who;
    EXPECT_EQ(got[0].at("from"), "bob-id");
    EXPECT_EQ(got[0].at("username"), "bob");
    EXPECT_EQ(got[0].at("to"), "ann-id");
    EXPECT_EQ(got[0].at("message"), "psst");
    EXPECT_EQ(got[0].at("timestamp").as_int64(), clock.unix_ms());
  }
  EXPECT_TRUE(take(kCid, "direct_message").empty());
  EXPECT_TRUE(take(kBob, "direct_message").empty());
  const auto acks = take(kBob, "ack");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].at("to"), "ann-id");
  EXPECT_EQ(acks[0].at("id"), "d1");
  EXPECT_EQ(acks[0].at("seq"), 1);

  // Ann answers from one tab: Bob gets it, and so does her other tab (the conversation).
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"yes?"})");
  EXPECT_EQ(take(kBob, "direct_message").at(0).at("seq"), 2);  // one numbering per conversation
  EXPECT_EQ(take(kAnnTab, "direct_message").size(), 1u);
  EXPECT_TRUE(take(kAnn, "direct_message").empty());
  EXPECT_TRUE(take(kCid, "direct_message").empty());
}

TEST_F(HubEventsTest, ADirectMessageFromATokenUserIsKeptForARecipientWhoIsAway) {
  connect(kAnn, "ann-id", "ann");
  connect(kBob, "bob-id", "bob");
  hub_of(kBob).disconnect(kBob);
  settle();
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"there?","id":"d2"})");
  EXPECT_TRUE(take(kAnn, "error").empty());
  EXPECT_EQ(take(kAnn, "ack").at(0).at("seq"), 1);
  // Bob comes back (another connection, the same token user) and asks for what he missed.
  constexpr ConnectionId kBobAgain = on_worker(0, 9);
  connect(kBobAgain, "bob-id", "bob");
  send(kBobAgain, R"({"type":"conversations","ref":"c1"})");
  const auto lists = take(kBobAgain, "conversations");
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0].at("ref"), "c1");
  const auto& list = lists[0].at("conversations").as_array();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].at("with"), "ann-id");
  EXPECT_EQ(list[0].at("username"), "ann");
  EXPECT_EQ(list[0].at("lastSeq"), 1);
  send(kBobAgain, R"({"type":"direct_history","with":"ann-id","since":0,"ref":"h1"})");
  const auto history = take(kBobAgain, "direct_history");
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].at("with"), "ann-id");
  EXPECT_EQ(history[0].at("lastSeq"), 1);
  EXPECT_EQ(history[0].at("recovered"), true);
  EXPECT_EQ(history[0].at("ref"), "h1");
  const auto& messages = history[0].at("messages").as_array();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].at("type"), "direct_message");
  EXPECT_EQ(messages[0].at("from"), "ann-id");
  EXPECT_EQ(messages[0].at("to"), "bob-id");
  EXPECT_EQ(messages[0].at("message"), "there?");
  EXPECT_EQ(messages[0].at("seq"), 1);
  // Ann's list names bob, who has not written: no username yet.
  send(kAnn, R"({"type":"conversations"})");
  const auto ann_list = take(kAnn, "conversations").at(0).at("conversations").as_array();
  ASSERT_EQ(ann_list.size(), 1u);
  EXPECT_EQ(ann_list[0].at("with"), "bob-id");
  EXPECT_FALSE(ann_list[0].as_object().contains("username"));
}

TEST_F(HubEventsTest, AResentDirectMessageIsAckedWithItsSeqAndDeliveredOnce) {
  connect(kAnn, "ann-id", "ann");
  connect(kBob, "bob-id", "bob");
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"one","id":"x"})");
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"one","id":"x"})");
  const auto acks = take(kAnn, "ack");
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0].at("seq"), 1);
  EXPECT_EQ(acks[1].at("seq"), 1);
  EXPECT_EQ(take(kBob, "direct_message").size(), 1u);
}

TEST_F(HubEventsTest, AnAnonymousSenderReachesOnlyUsersWhoAreConnected) {
  connect(kAnn);
  join(kAnn, "lobby", "ann");
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"there?","id":"d2"})");
  const auto errors = take(kAnn, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "user_offline");
  EXPECT_EQ(errors[0].at("to"), "bob-id");
  EXPECT_EQ(errors[0].at("id"), "d2");
  EXPECT_TRUE(take(kAnn, "ack").empty());
  // Nothing was kept: bob, once here, has no conversation.
  connect(kBob, "bob-id", "bob");
  send(kBob, R"({"type":"conversations"})");
  EXPECT_TRUE(take(kBob, "conversations").at(0).at("conversations").as_array().empty());
  // Connected (on the other worker): reached.
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"hi"})");
  EXPECT_EQ(take(kBob, "direct_message").size(), 1u);
}

TEST_F(HubEventsTest, ConversationRequestsWithBadFieldsAreRefused) {
  connect(kAnn, "ann-id", "ann");
  for (const std::string_view bad : {
           R"({"type":"direct_history"})",
           R"({"type":"direct_history","with":""})",
           R"({"type":"direct_history","with":"has space"})",
           R"({"type":"direct_history","with":"<dm>x"})",
           R"({"type":"direct_history","with":7})",
           R"({"type":"direct_history","with":"bob-id","since":-1})",
           R"({"type":"direct_history","with":"bob-id","since":"3"})",
           R"({"type":"direct_message","to":"a b","message":"hi"})",
       }) {
    SCOPED_TRACE(bad);
    send(kAnn, bad);
    const auto errors = take(kAnn, "error");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].at("code"), "invalid_field");
  }
}

TEST_F(HubEventsTest, AnUnnamedConnectionMustJoinBeforeSendingADirectMessage) {
  connect(kAnn);
  connect(kBob, "bob-id", "bob");
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"hi"})");
  EXPECT_EQ(take(kAnn, "error").at(0).at("code"), "not_in_room");
  EXPECT_TRUE(take(kBob, "direct_message").empty());
  join(kAnn, "lobby", "ann");
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"hi"})");
  EXPECT_EQ(take(kBob, "direct_message").at(0).at("username"), "ann");
  send(kAnn, R"({"type":"direct_message","to":"","message":"hi"})");
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"  "})");
  const auto errors = take(kAnn, "error");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].at("code"), "invalid_field");
  EXPECT_EQ(errors[1].at("code"), "invalid_field");
}

// ---- binary messages ------------------------------------------------------------------------

TEST_F(HubEventsTest, BinaryGoesUnchangedToTheRoomsBinaryMembersOnEveryWorkerOnly) {
  connect(kAnn);
  connect(kBob);
  connect(kCid);
  constexpr ConnectionId kDee = on_worker(1, 4);
  connect(kDee);
  send(kAnn, R"({"type":"join_room","room":"game","username":"ann","binary":true})");
  send(kBob, R"({"type":"join_room","room":"game","username":"bob","binary":true})");
  send(kCid, R"({"type":"join_room","room":"game","username":"cid","binary":true})");
  join(kDee, "game", "dee");  // text only
  // The chapter's position update: a type byte, then x, y, z as float32.
  const std::string position("\x01\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40", 13);
  hub_of(kAnn).receive_binary(kAnn, position);
  settle();
  EXPECT_TRUE(sink_of(kAnn).binary[kAnn].empty());  // not back to the sender
  EXPECT_EQ(sink_of(kBob).binary[kBob], std::vector<std::string>{position});  // other worker
  EXPECT_EQ(sink_of(kCid).binary[kCid], std::vector<std::string>{position});  // same worker
  EXPECT_TRUE(sink_of(kDee).binary[kDee].empty());
  EXPECT_TRUE(take(kAnn, "error").empty());
  // A text-only member sending binary is refused, and so is one too large.
  hub_of(kDee).receive_binary(kDee, position);
  EXPECT_EQ(take(kDee, "error").at(0).at("code"), "unsupported_binary");
  hub_of(kBob).receive_binary(kBob, std::string(options().limits.max_binary_bytes + 1, 'x'));
  EXPECT_EQ(take(kBob, "error").at(0).at("code"), "too_large");
  // After leaving its binary room, the connection is text-only again.
  send(kAnn, R"({"type":"leave_room","room":"game"})");
  hub_of(kAnn).receive_binary(kAnn, position);
  EXPECT_EQ(take(kAnn, "error").at(0).at("code"), "unsupported_binary");
  settle();
  EXPECT_EQ(sink_of(kBob).binary[kBob].size(), 1u);
}

TEST_F(HubEventsTest, BinaryOnJoinMustBeABoolean) {
  connect(kAnn);
  send(kAnn, R"({"type":"join_room","room":"game","username":"ann","binary":"yes"})");
  const auto errors = take(kAnn, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "invalid_field");
}

// ---- message_batch ---------------------------------------------------------------------------

TEST_F(HubEventsTest, BatchingMembersGetTheRoomsMessagesInOrderInBatchesOthersOneByOne) {
  connect(kAnn);
  connect(kBob);
  connect(kCid);
  constexpr ConnectionId kDee = on_worker(1, 4);
  connect(kDee);
  send(kBob, R"({"type":"join_room","room":"r","username":"bob","batch":true})");
  send(kDee, R"({"type":"join_room","room":"r","username":"dee","batch":true})");
  join(kAnn, "r", "ann");
  join(kCid, "r", "cid");
  take(kBob, "message_batch");
  // 12 messages: a full batch (10) goes at once, the rest after the interval.
  for (int i = 0; i < 12; ++i) {
    send(kAnn, R"({"type":"chat_message","room":"r","message":"m)" + std::to_string(i) + "\"}");
  }
  EXPECT_EQ(take(kCid, "chat_message").size(), 12u);  // not batching: one by one
  EXPECT_TRUE(take(kBob, "chat_message").empty());
  auto batches = take(kBob, "message_batch");
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].at("room"), "r");
  ASSERT_EQ(batches[0].at("messages").as_array().size(), 10u);
  clock.advance(std::chrono::milliseconds(49));
  hubs[0]->tick();
  hubs[1]->tick();
  EXPECT_TRUE(take(kBob, "message_batch").empty());
  clock.advance(std::chrono::milliseconds(1));
  hubs[0]->tick();
  hubs[1]->tick();
  auto rest = take(kBob, "message_batch");
  ASSERT_EQ(rest.size(), 1u);
  batches.push_back(rest[0]);
  std::vector<std::int64_t> seqs;
  for (const auto& batch : batches) {
    for (const auto& m : batch.at("messages").as_array()) {
      EXPECT_EQ(m.at("type"), "chat_message");
      seqs.push_back(m.at("seq").as_int64());
    }
  }
  EXPECT_EQ(seqs, (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
  // Dee, on the other worker, got the same.
  std::size_t dee = 0;
  for (const auto& batch : take(kDee, "message_batch"))
    dee += batch.at("messages").as_array().size();
  EXPECT_EQ(dee, 12u);
}

TEST_F(HubEventsTest, AJoinSendsWhatWaitedFirstSoTheJoinerGetsNothingTwice) {
  constexpr ConnectionId kDee = on_worker(1, 4);  // Bob's worker: batches are per worker
  connect(kAnn);
  connect(kBob);
  connect(kDee);
  send(kBob, R"({"type":"join_room","room":"r","username":"bob","batch":true})");
  join(kAnn, "r", "ann");
  send(kAnn, R"({"type":"chat_message","room":"r","message":"before"})");
  EXPECT_TRUE(take(kBob, "message_batch").empty());  // waiting
  send(kDee, R"({"type":"join_room","room":"r","username":"dee","batch":true})");
  EXPECT_EQ(take(kBob, "message_batch").size(), 1u);  // flushed by the join
  const auto history = take(kDee, "history");
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].at("messages").as_array().size(), 1u);
  clock.advance(std::chrono::milliseconds(100));
  hubs[1]->tick();
  EXPECT_TRUE(take(kDee, "message_batch").empty());
}

TEST_F(HubEventsTest, ANoEchoEventFromABatchingMemberSkipsOnlyItsSender) {
  connect(kAnn);
  connect(kCid);
  send(kAnn, R"({"type":"join_room","room":"g","username":"ann","batch":true})");
  send(kCid, R"({"type":"join_room","room":"g","username":"cid","batch":true})");
  send(kCid, R"({"type":"chat_message","room":"g","message":"first"})");
  send(kAnn, R"({"type":"player_moved","room":"g","x":1})");
  // Cid got the waiting batch, then the event alone; Ann only the batch.
  EXPECT_EQ(take(kCid, "message_batch").size(), 1u);
  EXPECT_EQ(take(kCid, "player_moved").size(), 1u);
  EXPECT_EQ(take(kAnn, "message_batch").size(), 1u);
  EXPECT_TRUE(take(kAnn, "player_moved").empty());
}

// ---- presence per user -----------------------------------------------------------------------

TEST_F(HubEventsTest, ATokensUserWithTwoTabsIsListedOnceJoinsOnceAndLeavesWithTheLastTab) {
  connect(kBob, "bob-id", "bob");
  join(kBob, "r");
  connect(kAnn, "ann-id", "ann");
  connect(kAnnTab, "ann-id", "ann");  // on Bob's worker; kAnn on the other
  join(kAnn, "r");
  join(kAnnTab, "r");
  clock.advance(std::chrono::milliseconds(100));
  hubs[0]->tick();
  hubs[1]->tick();
  const auto said = [&] {
    std::vector<std::string> out;
    for (const auto& m : take(kBob, "system_message"))
      out.emplace_back(m.at("message").as_string());
    return out;
  };
  EXPECT_EQ(said(), (std::vector<std::string>{"Welcome to r!", "ann joined the chat"}));
  const auto lists = take(kBob, "user_list");
  ASSERT_FALSE(lists.empty());
  EXPECT_EQ(lists.back().at("users").as_array().size(), 2u);  // bob, ann
  send(kAnnTab, R"({"type":"leave_room","room":"r"})");
  EXPECT_TRUE(said().empty());  // ann is still there, in her other tab
  hub_of(kAnn).disconnect(kAnn);
  settle();
  EXPECT_EQ(said(), std::vector<std::string>{"ann left the chat"});
}

TEST_F(HubEventsTest, RefusalsNameTheEventsIdAndTheDirectMessagesRecipient) {
  HubOptions limited = options();
  limited.message_rate = {1, std::chrono::seconds(60)};
  start(limited);
  connect(kAnn, "ann-id", "ann");
  connect(kBob, "bob-id", "bob");
  join(kAnn, "doc");
  send(kAnn, R"({"type":"document_change","room":"nowhere","change":"a","id":"e9"})");
  auto errors = take(kAnn, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "not_in_room");
  EXPECT_EQ(errors[0].at("room"), "nowhere");
  EXPECT_EQ(errors[0].at("id"), "e9");
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"one"})");
  send(kAnn, R"({"type":"direct_message","to":"bob-id","message":"two"})");  // over budget
  errors = take(kAnn, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "rate_limited");
  EXPECT_EQ(errors[0].at("to"), "bob-id");
  EXPECT_EQ(take(kBob, "direct_message").size(), 1u);
}

// ---- What the backend hears (BackendEvents: webhooks) ------------------------------------

// Records what the Hubs report, as "event room user" lines.
class RecordingBackend final : public BackendEvents {
 public:
  void user_joined(std::string_view room, const MemberInfo& member) override {
    note("joined", room, member.user_id());
  }
  void user_left(std::string_view room, const MemberInfo& member) override {
    note("left", room, member.user_id());
  }
  void user_connected(const MemberInfo& member) override {
    note("connected", "-", member.user_id());
  }
  void user_disconnected(const MemberInfo& member) override {
    note("disconnected", "-", member.user_id());
  }
  void message_published(const StoredMessage& message) override {
    note("published", message.room, message.user_id + " " + std::to_string(message.seq));
  }
  std::vector<std::string> take() { return std::exchange(events, {}); }
  std::vector<std::string> events;

 private:
  void note(std::string_view what, std::string_view room, std::string_view who) {
    events.push_back(std::string(what) + " " + std::string(room) + " " + std::string(who));
  }
};

TEST_F(HubEventsTest, TheBackendHearsEachJoinLeaveAndMessageOnceAcrossWorkers) {
  RecordingBackend backend;
  hubs[0]->set_backend_events(&backend);
  hubs[1]->set_backend_events(&backend);
  connect(kAnn, "u-ann", "ann");
  connect(kAnnTab, "u-ann", "ann");
  connect(kBob, "u-bob", "bob");
  EXPECT_EQ(backend.take(), (std::vector<std::string>{"connected - u-ann", "connected - u-ann",
                                                      "connected - u-bob"}));
  join(kAnn, "doc");
  join(kAnnTab, "doc");  // a second tab, on the other worker: not a join of the user
  join(kBob, "doc");
  EXPECT_EQ(backend.take(), (std::vector<std::string>{"joined doc u-ann", "joined doc u-bob"}));

  // Both workers follow the room and deliver the message; only the sender's reports it.
  send(kAnn, R"({"type":"chat_message","message":"hi"})");
  send(kBob, R"({"type":"chat_message","message":"hello"})");
  EXPECT_EQ(backend.take(),
            (std::vector<std::string>{"published doc u-ann 1", "published doc u-bob 2"}));

  send(kAnn, R"({"type":"leave_room","room":"doc"})");  // her other tab is still in
  EXPECT_EQ(backend.take(), std::vector<std::string>{});
  hubs[1]->disconnect(kAnnTab);
  settle();
  EXPECT_EQ(backend.take(), (std::vector<std::string>{"left doc u-ann", "disconnected - u-ann"}));
  // The last member of the room on its worker leaves: still reported.
  hubs[1]->disconnect(kBob);
  settle();
  EXPECT_EQ(backend.take(), (std::vector<std::string>{"left doc u-bob", "disconnected - u-bob"}));
}

}  // namespace
}  // namespace roomcast::chat
