// The Hub's side of the publish hook (Hub::set_publish_hook): each room's gate keeps the
// arrival order whatever order the verdicts come in; a denial reaches only the sender and
// spends no `id`; a rewrite is what is stored and delivered; the waits are bounded; a sender
// gone before its verdict still has its message published; the backend's own publications are
// not asked about. The hook is a fake that answers when the test says.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "chat/hub.h"
#include "store/memory_store.h"
#include "support/client_messages.h"
#include "support/recording_sink.h"
#include "support/unlimited_options.h"

namespace roomcast::chat {
namespace {

using test_support::RecordingSink;

// Keeps every question and its `done` for the test to answer, in any order.
class FakeHook final : public PublishHook {
 public:
  void ask(PublishQuestion question, std::function<void(PublishVerdict)> done) override {
    questions.push_back(std::move(question));
    answers.push_back(std::move(done));
  }
  void answer(std::size_t i, PublishVerdict verdict) { answers.at(i)(std::move(verdict)); }

  std::vector<PublishQuestion> questions;
  std::vector<std::function<void(PublishVerdict)>> answers;
};

PublishVerdict denied(std::string reason) {
  return {std::string(error_code::kDenied), std::move(reason), std::nullopt};
}

class HubPublishHookTest : public ::testing::Test {
 protected:
  HubPublishHookTest() {
    // The worker's post: run on "the Hub's thread" at once (the test is that thread).
    hub.set_publish_hook(&hook, [](std::function<void()> f) { f(); });
    hub.connect(1);
    hub.receive(1, test_support::join_json("r", "alice"));
    hub.connect(2);
    hub.receive(2, test_support::join_json("r", "bob"));
  }
  void say(ConnectionId who, std::string_view text, std::string_view id) {
    hub.receive(who, std::string(R"({"type":"chat_message","room":"r","message":")") +
                         std::string(text) + R"(","id":")" + std::string(id) + R"("})");
  }
  std::vector<std::string> chats_of(ConnectionId who) {
    std::vector<std::string> out;
    for (const auto& m : sink.of_type(who, "chat_message")) {
      out.emplace_back(m.at("message").as_string());
    }
    return out;
  }

  RecordingSink sink;
  base::ManualClock clock;
  store::MemoryStore store{clock, HubOptions{}.retention()};
  FakeHook hook;
  Hub hub{sink, clock, test_support::unlimited_options(), store};
};

TEST_F(HubPublishHookTest, AMessageWaitsForItsVerdictAndTheQuestionSaysWhatAndWho) {
  say(1, "hello", "m-1");
  ASSERT_EQ(hook.questions.size(), 1u);
  const PublishQuestion& q = hook.questions[0];
  EXPECT_EQ(q.room, "r");
  EXPECT_EQ(q.username, "alice");
  EXPECT_EQ(q.message, "hello");
  EXPECT_EQ(q.client_id, "m-1");
  EXPECT_TRUE(q.event_type.empty());
  EXPECT_TRUE(chats_of(2).empty());  // not before the verdict
  hook.answer(0, {});
  EXPECT_EQ(chats_of(2), std::vector<std::string>{"hello"});
  ASSERT_EQ(sink.of_type(1, "ack").size(), 1u);
}

TEST_F(HubPublishHookTest, TheRoomsOrderIsKeptWhenALaterVerdictComesFirst) {
  say(1, "first", "o-1");
  say(2, "second", "o-2");
  ASSERT_EQ(hook.questions.size(), 2u);
  hook.answer(1, {});
  EXPECT_TRUE(chats_of(1).empty()) << "the second waits behind the first";
  hook.answer(0, {});
  EXPECT_EQ(chats_of(1), (std::vector<std::string>{"first", "second"}));
  const auto got = sink.of_type(2, "chat_message");
  EXPECT_EQ(got[0].at("seq"), 1);
  EXPECT_EQ(got[1].at("seq"), 2);
}

TEST_F(HubPublishHookTest, ADenialReachesOnlyTheSenderAndSpendsNoId) {
  say(1, "spam", "d-1");
  say(1, "after", "d-2");
  hook.answer(1, {});
  hook.answer(0, denied("no spam"));
  const auto errors = sink.of_type(1, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "denied");
  EXPECT_EQ(errors[0].at("message"), "no spam");
  EXPECT_EQ(errors[0].at("room"), "r");
  EXPECT_EQ(errors[0].at("id"), "d-1");
  EXPECT_TRUE(sink.of_type(2, "error").empty());
  EXPECT_EQ(chats_of(2), std::vector<std::string>{"after"});
  // The same id again is a new message, not a duplicate of a stored one.
  say(1, "fine now", "d-1");
  hook.answer(2, {});
  EXPECT_EQ(chats_of(2), (std::vector<std::string>{"after", "fine now"}));
  const auto acks = sink.of_type(1, "ack");
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[1].at("id"), "d-1");
  EXPECT_EQ(acks[1].at("seq"), 2);
}

TEST_F(HubPublishHookTest, ARewriteIsWhatIsDeliveredAndKept) {
  say(1, "darn", "w-1");
  hook.answer(0, {{}, {}, std::string("[redacted]")});
  EXPECT_EQ(chats_of(1), std::vector<std::string>{"[redacted]"});
  EXPECT_EQ(chats_of(2), std::vector<std::string>{"[redacted]"});
  hub.connect(3);
  hub.receive(3, test_support::join_json("r", "carol"));
  const auto history = sink.of_type(3, "history");
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].at("messages").as_array()[0].as_object().at("message"), "[redacted]");
}

TEST_F(HubPublishHookTest, AConnectionsWaitingMessagesAreBoundedAndTheRestRefused) {
  const std::size_t bound = HubOptions{}.max_awaiting_verdict_per_connection;
  for (std::size_t i = 0; i <= bound; ++i) say(1, "m", "b-" + std::to_string(i));
  EXPECT_EQ(hook.questions.size(), bound);
  auto errors = sink.of_type(1, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "unavailable");
  EXPECT_EQ(errors[0].at("id").as_string(), "b-" + std::to_string(bound));
  // Another connection is not held back by alice's.
  say(2, "bob's", "x-1");
  EXPECT_EQ(hook.questions.size(), bound + 1);
  // Once answered, alice may send again.
  for (std::size_t i = 0; i < hook.answers.size(); ++i) hook.answer(i, {});
  say(1, "again", "b-again");
  EXPECT_EQ(hook.questions.size(), bound + 2);
}

TEST(HubPublishHookBound, AWorkersWaitingMessagesAreBoundedForConnectionsAndHttpSendsAlike) {
  RecordingSink sink;
  base::ManualClock clock;
  store::MemoryStore store{clock, HubOptions{}.retention()};
  FakeHook hook;
  HubOptions options = test_support::unlimited_options();
  options.max_awaiting_verdict = 2;
  Hub hub{sink, clock, options, store};
  hub.set_publish_hook(&hook, [](std::function<void()> f) { f(); });
  for (ConnectionId who : {1, 2, 3}) {
    hub.connect(who);
    hub.receive(who, test_support::join_json("r", "user" + std::to_string(who)));
  }
  hub.receive(1, R"({"type":"chat_message","room":"r","message":"one","id":"1"})");
  hub.receive(2, R"({"type":"chat_message","room":"r","message":"two","id":"2"})");
  hub.receive(3, R"({"type":"chat_message","room":"r","message":"three","id":"3"})");
  EXPECT_EQ(hook.questions.size(), 2u);
  const auto errors = sink.of_type(3, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "unavailable");
  EXPECT_EQ(errors[0].at("id"), "3");
  // A user's HTTP send is refused the same way, answered at once.
  std::optional<ServerPublishResult> result;
  hub.publish_from_server(0xFF00'0000'FFFF'FFFFull, {"r", "four", "dave", "", "u-dave", false},
                          [&](ServerPublishResult r) { result = std::move(r); });
  ASSERT_TRUE(result);
  EXPECT_EQ(result->error_code, "unavailable");
  EXPECT_EQ(hook.questions.size(), 2u);
}

TEST_F(HubPublishHookTest, ASenderGoneBeforeItsVerdictStillHasItsMessagePublished) {
  say(1, "bye", "g-1");
  hub.disconnect(1);
  hook.answer(0, {});
  EXPECT_EQ(chats_of(2), std::vector<std::string>{"bye"});
}

TEST_F(HubPublishHookTest, TheBackendsOwnPublicationIsNotAskedAboutAUsersIs) {
  std::vector<ServerPublishResult> results;
  const auto done = [&](ServerPublishResult r) { results.push_back(std::move(r)); };
  constexpr ConnectionId kTicket = 0xFF00'0000'FFFF'FFFFull;
  hub.publish_from_server(kTicket, {"r", "from the backend", "server", "", "", false}, done);
  EXPECT_TRUE(hook.questions.empty());
  ASSERT_EQ(results.size(), 1u);
  hub.publish_from_server(kTicket + (1ull << 32), {"r", "from dave", "dave", "", "u-dave", false},
                          done);
  ASSERT_EQ(hook.questions.size(), 1u);
  EXPECT_EQ(hook.questions[0].user_id, "u-dave");
  hook.answer(0, denied("not you"));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].error_code, "denied");
  EXPECT_EQ(results[1].error, "not you");
  EXPECT_EQ(chats_of(2), std::vector<std::string>{"from the backend"});
}

}  // namespace
}  // namespace roomcast::chat
