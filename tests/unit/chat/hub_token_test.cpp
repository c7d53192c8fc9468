// Token expiry and in-band refresh: a connection opened with a token is closed with
// close_code::kTokenExpired when the token expires, unless a `refresh` brought a fresh token
// of the same user. Time is the manual clock's; tokens come from a fake Authenticator.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>

#include "chat/hub.h"
#include "store/memory_store.h"
#include "support/client_messages.h"
#include "support/manual_store.h"
#include "support/recording_sink.h"

namespace roomcast::chat {
namespace {

using std::chrono::seconds;

// Verifies exactly the tokens it was given, as a JwtAuthenticator would verify real ones.
class FakeAuthenticator final : public Authenticator {
 public:
  AuthResult verify(std::string_view token) const override {
    const auto it = tokens.find(std::string(token));
    if (it == tokens.end()) return AuthFailure{"unknown token"};
    return it->second;
  }
  std::map<std::string, Identity> tokens;
};

class HubTokenTest : public ::testing::Test {
 protected:
  HubTokenTest() {
    options.signal_rate.max_events = 0;
    make_hub();
  }
  void make_hub() {
    hub.reset();  // its destructor clears the store's listener
    hub = std::make_unique<Hub>(sink, clock, options, memory, nullptr, &authenticator);
  }
  std::int64_t now_s() const { return clock.unix_ms() / 1000; }
  Identity user(std::string sub, std::int64_t expires_at_unix_s,
                std::optional<std::vector<std::string>> rooms = std::nullopt) {
    return {std::move(sub), "alice", std::move(rooms), expires_at_unix_s};
  }
  void refresh(ConnectionId who, std::string_view token) {
    hub->receive(who, R"({"type":"refresh","token":")" + std::string(token) + "\"}");
  }
  void join(ConnectionId who, std::string_view room, std::string_view username = "") {
    hub->receive(who, test_support::join_json(room, username));
  }
  std::vector<std::string> error_codes(ConnectionId who) {
    std::vector<std::string> codes;
    for (const auto& e : sink.take(who, "error")) codes.emplace_back(e.at("code").as_string());
    return codes;
  }
  std::size_t closes(ConnectionId who) { return sink.closes[who].size(); }
  // Moves the clock by `by` and runs the Hub's periodic work, as the server does every 20 ms.
  void pass(std::chrono::milliseconds by) {
    clock.advance(by);
    hub->tick();
  }

  test_support::RecordingSink sink;
  base::ManualClock clock;
  FakeAuthenticator authenticator;
  HubOptions options;
  // Declared before the Hub, which names it until its destructor is done.
  test_support::ManualStore store;
  store::MemoryStore memory{clock, options.retention()};
  std::unique_ptr<Hub> hub;
};

TEST_F(HubTokenTest, AConnectionIsClosedWithTheExpiryCodeWhenItsTokenExpires) {
  hub->connect(1, {user("user-alice", now_s() + 60), "10.0.0.1"});
  hub->connect(2);
  join(1, "general");
  join(2, "general", "bob");
  sink.clear();

  pass(seconds(59));
  EXPECT_EQ(closes(1), 0u);
  pass(seconds(1));
  ASSERT_EQ(closes(1), 1u);
  EXPECT_EQ(sink.closes[1][0].code, close_code::kTokenExpired);
  EXPECT_EQ(sink.closes[1][0].code, 4002);
  EXPECT_EQ(sink.closes[1][0].reason, "Token expired");
  EXPECT_EQ(closes(2), 0u);
  // The room sees alice leave at once, not when the closing handshake ends.
  EXPECT_EQ(sink.take(2, "system_message").back().at("message"), "alice left the chat");

  // Until the transport reports the connection gone, what it says is ignored.
  sink.inbox[1].clear();
  hub->receive(1, R"({"type":"chat_message","message":"too late"})");
  join(1, "general");
  EXPECT_TRUE(sink.take(2, "chat_message").empty());
  EXPECT_TRUE(sink.inbox[1].empty());
  pass(seconds(60));
  EXPECT_EQ(closes(1), 1u);  // asked once
  hub->disconnect(1);
  EXPECT_EQ(hub->stats().connections, 1u);
}

TEST_F(HubTokenTest, ARefreshWithTheSameUserMovesTheDeadline) {
  hub->connect(1, {user("user-alice", now_s() + 60), ""});
  authenticator.tokens["fresh"] = user("user-alice", now_s() + 120);
  pass(seconds(30));
  refresh(1, "fresh");
  const auto replies = sink.take(1, "token_refreshed");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].at("expiresAt").as_int64(), (now_s() + 90) * 1000);
  EXPECT_TRUE(error_codes(1).empty());

  pass(seconds(31));  // past the first token's expiry
  EXPECT_EQ(closes(1), 0u);
  pass(seconds(58));
  EXPECT_EQ(closes(1), 0u);
  pass(seconds(1));
  ASSERT_EQ(closes(1), 1u);
  EXPECT_EQ(sink.closes[1][0].code, close_code::kTokenExpired);
}

TEST_F(HubTokenTest, RefusedRefreshesKeepTheCurrentDeadline) {
  hub->connect(1, {user("user-alice", now_s() + 60), ""});
  authenticator.tokens["mallory"] = user("user-mallory", now_s() + 3600);
  refresh(1, "mallory");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"token_mismatch"});
  refresh(1, "forged");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"invalid_token"});
  // An identity that breaks the rules is refused whatever verified it.
  authenticator.tokens["bad-id"] = user("user alice", now_s() + 3600);
  refresh(1, "bad-id");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"invalid_token"});
  EXPECT_TRUE(sink.take(1, "token_refreshed").empty());
  EXPECT_EQ(hub->stats().errors.at("invalid_token"), 2u);

  pass(seconds(60));
  EXPECT_EQ(closes(1), 1u);
}

TEST_F(HubTokenTest, AnAnonymousConnectionHasNothingToRefresh) {
  authenticator.tokens["fresh"] = user("user-alice", now_s() + 120);
  hub->connect(1);
  refresh(1, "fresh");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"not_authenticated"});
  // It does not become alice, nor expire.
  join(1, "general", "bob");
  EXPECT_TRUE(error_codes(1).empty());
  pass(seconds(3600));
  EXPECT_EQ(closes(1), 0u);
}

TEST_F(HubTokenTest, MalformedRefreshesAreInvalidField) {
  hub->connect(1, {user("user-alice", now_s() + 60), ""});
  hub->receive(1, R"({"type":"refresh"})");
  hub->receive(1, R"({"type":"refresh","token":42})");
  hub->receive(1, R"({"type":"refresh","token":""})");
  hub->receive(1, R"({"type":"refresh","token":")" + std::string(8193, 'a') + "\"}");
  EXPECT_EQ(error_codes(1), std::vector<std::string>(4, "invalid_field"));
}

TEST_F(HubTokenTest, TokensWithoutExpiryNeverExpire) {
  hub->connect(1, {user("user-alice", 0), ""});
  pass(seconds(365 * 24 * 3600));
  EXPECT_EQ(closes(1), 0u);
  // A refresh may also trade an expiring token for one without expiry: no expiresAt.
  hub->connect(2, {user("user-alice", now_s() + 60), ""});
  authenticator.tokens["forever"] = user("user-alice", 0);
  refresh(2, "forever");
  const auto replies = sink.take(2, "token_refreshed");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_FALSE(replies[0].contains("expiresAt"));
  pass(seconds(3600));
  EXPECT_EQ(closes(2), 0u);
}

TEST_F(HubTokenTest, TheNewTokensRoomsApplyToLaterJoinsAndJoinedRoomsAreKept) {
  hub->connect(1, {user("user-alice", now_s() + 60, std::vector<std::string>{"general"}), ""});
  join(1, "general");
  join(1, "support");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"forbidden_room"});
  authenticator.tokens["support-only"] =
      user("user-alice", now_s() + 120, std::vector<std::string>{"support"});
  refresh(1, "support-only");
  join(1, "support");
  join(1, "general");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"already_in_room"});  // kept
  hub->receive(1, R"({"type":"leave_room","room":"general"})");
  join(1, "general");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"forbidden_room"});
  // And a token without `rooms` allows every room again.
  authenticator.tokens["any-room"] = user("user-alice", now_s() + 120);
  refresh(1, "any-room");
  join(1, "general");
  EXPECT_TRUE(error_codes(1).empty());
}

TEST_F(HubTokenTest, RefreshesSpendTheSignalBudget) {
  options.signal_rate = {3, seconds(10)};
  make_hub();
  hub->connect(1, {user("user-alice", now_s() + 60), ""});
  authenticator.tokens["fresh"] = user("user-alice", now_s() + 120);
  for (int i = 0; i < 5; ++i) refresh(1, "fresh");
  EXPECT_EQ(sink.take(1, "token_refreshed").size(), 3u);
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"rate_limited"});  // once per block
}

TEST_F(HubTokenTest, WithoutAnAuthenticatorEveryRefreshIsRefused) {
  hub.reset();
  hub = std::make_unique<Hub>(sink, clock, options, memory);
  hub->connect(1, {user("user-alice", now_s() + 60), ""});
  refresh(1, "anything");
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"invalid_token"});
  pass(seconds(60));
  EXPECT_EQ(closes(1), 1u);
}

TEST_F(HubTokenTest, OnlyTheConnectionsThatAreDueAreClosedAndGoneOnesNever) {
  // 1000 connections whose tokens expire one per second; 10 disconnect before theirs.
  constexpr ConnectionId kCount = 1000;
  const std::int64_t start_s = now_s();
  for (ConnectionId c = 1; c <= kCount; ++c) {
    hub->connect(c,
                 {user("user-" + std::to_string(c), start_s + static_cast<std::int64_t>(c)), ""});
  }
  for (ConnectionId c = 100; c < 110; ++c) hub->disconnect(c);
  pass(seconds(150));
  std::size_t closed = 0;
  for (ConnectionId c = 1; c <= kCount; ++c) {
    closed += closes(c);
    const bool gone = c >= 100 && c < 110;
    EXPECT_EQ(closes(c), c <= 150 && !gone ? 1u : 0u) << c;
  }
  EXPECT_EQ(closed, 140u);
  pass(seconds(1000));
  closed = 0;
  for (ConnectionId c = 1; c <= kCount; ++c) closed += closes(c);
  EXPECT_EQ(closed, 990u);
}

TEST_F(HubTokenTest, ARefreshThatWaitsBehindAJoinIsVerifiedWhenItsTurnComes) {
  hub.reset();
  hub = std::make_unique<Hub>(sink, clock, options, store, nullptr, &authenticator);
  hub->connect(1, {user("user-alice", now_s() + 60), ""});
  authenticator.tokens["fresh"] = user("user-alice", now_s() + 120);
  join(1, "lobby");  // waits for the store to load the room
  refresh(1, "fresh");
  refresh(1, "forged");
  EXPECT_TRUE(sink.take(1, "token_refreshed").empty());
  store.listener->on_loaded("lobby", {});
  // In order: the welcome, then the refresh's answer, then the refusal.
  EXPECT_EQ(sink.take(1, "system_message").size(), 1u);
  EXPECT_EQ(sink.take(1, "token_refreshed").size(), 1u);
  EXPECT_EQ(error_codes(1), std::vector<std::string>{"invalid_token"});
  pass(seconds(61));
  EXPECT_EQ(closes(1), 0u);  // the refresh took
}

TEST_F(HubTokenTest, WhatWaitsBehindAJoinIsDroppedOnceTheTokenExpired) {
  hub.reset();
  hub = std::make_unique<Hub>(sink, clock, options, store, nullptr, &authenticator);
  hub->connect(1, {user("user-alice", now_s() + 10), ""});
  hub->connect(2);
  join(2, "lobby", "bob");
  store.listener->on_loaded("lobby", {});
  join(1, "lobby");  // the room is in memory: at once
  join(1, "later");  // waits for the store
  hub->receive(1, R"({"type":"chat_message","message":"hi","room":"lobby"})");
  sink.clear();
  pass(seconds(10));
  EXPECT_EQ(closes(1), 1u);
  EXPECT_EQ(sink.take(2, "system_message").back().at("message"), "alice left the chat");
  store.listener->on_loaded("later", {});
  EXPECT_TRUE(sink.inbox[1].empty());  // no welcome into "later"
  EXPECT_TRUE(sink.take(2, "chat_message").empty());  // nor the chat that waited
}

}  // namespace
}  // namespace roomcast::chat
