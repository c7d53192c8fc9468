// The Hub's security rules: identities from tokens, room permissions, rooms per
// connection and rate limits. (The chat behaviour itself is in hub_test.cpp.)
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>

#include "chat/hub.h"
#include "store/memory_store.h"
#include "support/client_messages.h"
#include "support/recording_sink.h"

namespace roomcast::chat {
namespace {

namespace json = boost::json;
using std::chrono::seconds;

using InboxSink = test_support::RecordingSink;

Identity alice(std::optional<std::vector<std::string>> rooms = std::nullopt) {
  return {"user-alice", "alice", std::move(rooms), 0};
}

class HubSecurityTest : public ::testing::Test {
 protected:
  void join(ConnectionId who, std::string_view room, std::string_view username = "") {
    hub->receive(who, test_support::join_json(room, username));
  }
  void chat(ConnectionId who, std::string_view text) {
    hub->receive(who, R"({"type":"chat_message","message":")" + std::string(text) + "\"}");
  }
  std::vector<std::string> error_codes(ConnectionId who) {
    std::vector<std::string> codes;
    for (const auto& e : sink.take(who, "error")) codes.emplace_back(e.at("code").as_string());
    return codes;
  }
  void make_hub(HubOptions options) {
    hub.reset();  // its destructor clears the store's listener
    hub = std::make_unique<Hub>(sink, clock, options, store);
  }

  InboxSink sink;
  base::ManualClock clock;
  store::MemoryStore store{clock, HubOptions{}.retention()};
  std::unique_ptr<Hub> hub = std::make_unique<Hub>(sink, clock, HubOptions{}, store);
};

TEST_F(HubSecurityTest, ATokensIdentityFixesUserIdAndUsername) {
  hub->connect(1, {alice(), "10.0.0.1"});
  EXPECT_EQ(sink.take(1, "connection_established").at(0).at("userId"), "user-alice");
  join(1, "general");  // no username needed: the token gave it
  EXPECT_TRUE(error_codes(1).empty());
  join(1, "random", "mallory");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"username_mismatch"});
  join(1, "random", "alice");
  chat(1, "hi");
  const auto chats = sink.take(1, "chat_message");
  ASSERT_EQ(chats.size(), 2u);  // one per room
  EXPECT_EQ(chats[0].at("userId"), "user-alice");
  EXPECT_EQ(chats[0].at("username"), "alice");
}

TEST_F(HubSecurityTest, ARoomTheTokenDoesNotAllowIsRefusedWithoutMembership) {
  hub->connect(1, {alice(std::vector<std::string>{"general", "support:*"}), ""});
  hub->connect(2);
  join(2, "secret", "bob");
  join(1, "secret");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"forbidden_room"});
  EXPECT_TRUE(sink.take(2, "system_message").size() == 1);  // only bob's own welcome
  join(1, "support:billing");
  join(1, "general");
  EXPECT_TRUE(error_codes(1).empty());
  EXPECT_EQ(hub->stats().errors.at("forbidden_room"), 1u);
}

TEST_F(HubSecurityTest, RoomsPerConnectionAreBounded) {
  HubOptions options;
  options.max_rooms_per_connection = 3;
  options.signal_rate.max_events = 0;
  make_hub(options);
  hub->connect(1);
  for (int i = 0; i < 4; ++i) join(1, "room" + std::to_string(i), "alice");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"too_many_rooms"});
  hub->receive(1, R"({"type":"leave_room","room":"room0"})");
  join(1, "room3");
  EXPECT_TRUE(error_codes(1).empty());
}

TEST_F(HubSecurityTest, ChatIsLimitedPerUserAcrossConnectionsWithTheChaptersText) {
  // Two connections of one user share the budget; another user is unaffected.
  hub->connect(1, {alice(), "10.0.0.1"});
  hub->connect(2, {alice(), "10.0.0.2"});
  hub->connect(3, {Identity{"user-bob", "bob", std::nullopt, 0}, "10.0.0.1"});
  for (ConnectionId c : {1, 2, 3}) join(c, "general");
  for (int i = 0; i < 6; ++i) chat(1, "from the phone");
  for (int i = 0; i < 6; ++i) chat(2, "from the laptop");
  const auto refused = sink.take(2, "error");
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_EQ(refused[0].at("code"), "rate_limited");
  EXPECT_EQ(refused[0].at("message"), "Rate limit exceeded. Please slow down.");
  EXPECT_EQ(sink.take(3, "chat_message").size(), 10u);  // bob saw alice's first ten
  chat(3, "bob is fine");
  EXPECT_EQ(sink.take(3, "chat_message").size(), 1u);
  EXPECT_TRUE(error_codes(3).empty());

  clock.advance(seconds(119));
  chat(1, "still blocked");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"rate_limited"});
  clock.advance(seconds(1));
  chat(1, "free again");
  EXPECT_TRUE(error_codes(1).empty());
}

TEST_F(HubSecurityTest, AnonymousUsersAreLimitedPerConnectionNotPerAddress) {
  // Behind one NAT: each anonymous person has the chapter's budget of their own.
  hub->connect(1, {std::nullopt, "10.0.0.1"});
  hub->connect(2, {std::nullopt, "10.0.0.1"});
  join(1, "r", "a");
  join(2, "r", "b");
  for (int i = 0; i < 10; ++i) chat(1, "x");
  chat(1, "one too many");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"rate_limited"});
  for (int i = 0; i < 10; ++i) chat(2, "y");
  EXPECT_TRUE(error_codes(2).empty());
}

TEST_F(HubSecurityTest, AnAddressSharesALargerBudgetThatReconnectingCannotReset) {
  HubOptions options;
  options.address_message_rate = {15, seconds(60), 0};
  make_hub(options);
  hub->connect(1, {std::nullopt, "10.0.0.1"});
  hub->connect(9, {std::nullopt, "10.0.0.9"});
  join(1, "r", "flooder");
  join(9, "r", "elsewhere");
  for (int i = 0; i < 11; ++i) chat(1, "x");  // 10 pass, the 11th is refused by the person
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"rate_limited"});
  hub->disconnect(1);
  // A fresh connection has a fresh personal budget, but the address has 5 messages left.
  hub->connect(2, {std::nullopt, "10.0.0.1"});
  join(2, "r", "flooder2");
  for (int i = 0; i < 5; ++i) chat(2, "y");
  EXPECT_TRUE(error_codes(2).empty());
  chat(2, "over the address's budget");
  EXPECT_EQ(error_codes(2), std::vector<std::string>{"rate_limited"});
  chat(9, "another address is not affected");
  EXPECT_TRUE(error_codes(9).empty());
  // The address is refused until its window ends, not blocked beyond it.
  clock.advance(seconds(60));
  chat(2, "a new window");
  EXPECT_TRUE(error_codes(2).empty());
}

TEST_F(HubSecurityTest, TokenUsersDoNotSpendTheirAddresssBudget) {
  HubOptions options;
  options.address_message_rate = {2, seconds(60), 0};
  make_hub(options);
  hub->connect(1, {alice(), "10.0.0.1"});
  hub->connect(2, {std::nullopt, "10.0.0.1"});
  join(1, "r");
  join(2, "r", "anon");
  for (int i = 0; i < 10; ++i) chat(1, "alice");
  EXPECT_TRUE(error_codes(1).empty());
  chat(2, "anon");
  chat(2, "anon");
  EXPECT_TRUE(error_codes(2).empty());
}

TEST_F(HubSecurityTest, AMessageWithoutRoomCostsOnePerRoomItReaches) {
  hub->connect(1, {alice(), "10.0.0.1"});
  for (const char* room : {"a", "b", "c"}) join(1, room);
  for (int i = 0; i < 3; ++i) chat(1, "to all three");  // 9 of 10
  EXPECT_TRUE(error_codes(1).empty());
  EXPECT_EQ(sink.take(1, "chat_message").size(), 9u);
  chat(1, "would be the 10th to 12th");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"rate_limited"});
}

TEST_F(HubSecurityTest, AMessageWithoutRoomToMoreRoomsThanTheBudgetIsRefusedWithoutBlocking) {
  hub->connect(1, {alice(), "10.0.0.1"});
  for (int i = 0; i < 11; ++i) join(1, "room" + std::to_string(i));
  chat(1, "to eleven rooms");
  const auto refused = sink.take(1, "error");
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].at("code"), "invalid_field");
  EXPECT_TRUE(sink.take(1, "chat_message").empty());
  hub->receive(1, R"({"type":"chat_message","room":"room3","message":"to one room"})");
  EXPECT_TRUE(error_codes(1).empty());
  EXPECT_EQ(sink.take(1, "chat_message").size(), 1u);
}

TEST_F(HubSecurityTest, TypingFloodsAreCutWithOneError) {
  hub->connect(1);
  hub->connect(2);
  join(1, "r", "alice");
  join(2, "r", "bob");
  for (int i = 0; i < 100; ++i) {
    hub->receive(1, R"({"type":"typing_start","room":"r"})");
    hub->receive(1, R"({"type":"typing_stop","room":"r"})");
  }
  // 30 signals per 10 s, alice's join included: 29 typing signals reach bob.
  EXPECT_EQ(sink.take(2, "typing_start").size() + sink.take(2, "typing_stop").size(), 29u);
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"rate_limited"});
  // Chat has a budget of its own.
  chat(1, "hello");
  EXPECT_EQ(sink.take(2, "chat_message").size(), 1u);
}

TEST_F(HubSecurityTest, ARefusedFirstJoinDoesNotNameTheConnection) {
  HubOptions options;
  options.address_signal_rate = {1, seconds(10), 0};
  make_hub(options);
  hub->connect(1, {std::nullopt, "10.0.0.1"});
  hub->connect(2, {std::nullopt, "10.0.0.1"});
  join(1, "r", "alice");
  join(2, "r", "bob");  // the address's one join per 10 s is spent
  EXPECT_EQ(error_codes(2), std::vector<std::string>{"rate_limited"});
  clock.advance(seconds(20));
  join(2, "r", "carol");
  EXPECT_TRUE(error_codes(2).empty());
  EXPECT_EQ(sink.take(1, "system_message").back().at("message"), "carol joined the chat");
}

TEST_F(HubSecurityTest, ZeroDisablesTheLimits) {
  HubOptions options;
  options.message_rate.max_events = 0;
  options.signal_rate.max_events = 0;
  make_hub(options);
  hub->connect(1);
  join(1, "r", "alice");
  for (int i = 0; i < 1000; ++i) chat(1, "x");
  EXPECT_EQ(sink.take(1, "chat_message").size(), 1000u);
  EXPECT_TRUE(error_codes(1).empty());
}

}  // namespace
}  // namespace roomcast::chat
