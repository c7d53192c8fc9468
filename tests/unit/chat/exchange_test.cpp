// chat::Exchange: two workers' Hubs joined into one chat over one store, without threads: the
// test plays both workers, draining each Port as its worker would.
#include "chat/exchange.h"

#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "chat/hub.h"
#include "store/memory_store.h"
#include "support/client_messages.h"
#include "support/recording_sink.h"
#include "support/unlimited_options.h"

namespace roomcast::chat {
namespace {

using std::chrono::milliseconds;
using test_support::RecordingSink;

// Connection ids as the transport makes them: the worker in the top byte (net::Worker).
constexpr ConnectionId on_worker(std::size_t worker, std::uint32_t n) {
  return (static_cast<ConnectionId>(worker + 1) << 56) | n;
}

// A store whose reads answer only when the test says so, as a network store's do later: the
// window a second worker reads back may then arrive after messages committed meanwhile.
class DeferredReads final : public HistoryStore {
 public:
  explicit DeferredReads(HistoryStore& inner) : inner_(inner) {}
  void set_listener(Listener* l) override {
    listener = l;
    inner_.set_listener(l);
  }
  void load(std::string room) override { inner_.load(std::move(room)); }
  void unload(std::string room) override { inner_.unload(std::move(room)); }
  void publish(Publication p) override { inner_.publish(std::move(p)); }
  void read(std::string_view room, std::uint64_t after, std::size_t limit, ReadDone done) override {
    deferred.push_back([this, room = std::string(room), after, limit, done = std::move(done)] {
      inner_.read(room, after, limit, done);
    });
  }
  void conversations(std::string_view user, std::size_t limit, ConversationsDone done) override {
    inner_.conversations(user, limit, std::move(done));
  }
  void flush() override {}
  std::vector<std::function<void()>> deferred;
  Listener* listener = nullptr;  // the Exchange, as the store reports to it

 private:
  HistoryStore& inner_;
};

class ExchangeTest : public ::testing::Test {
 protected:
  static HubOptions options() {
    HubOptions o = test_support::unlimited_options();
    return o;
  }
  void start(HubOptions hub_options, HistoryStore& node_store) {
    exchange.emplace(Exchange::Options{2, [](ConnectionId id) { return (id >> 56) - 1; },
                                       hub_options.history_size},
                     node_store, nullptr);
    budgets.emplace(rate_policies(hub_options), clock);
    for (std::size_t w = 0; w < 2; ++w) {
      Exchange::Port& port = exchange->port(w);
      hubs[w].emplace(sinks[w], clock, hub_options, port, &port, nullptr, &*budgets);
    }
  }
  // Both workers hand their Hubs what the Exchange reported, until nothing is left.
  void settle() {
    for (int round = 0; round < 4; ++round) {
      exchange->port(0).drain();
      exchange->port(1).drain();
    }
  }
  Hub& hub_of(ConnectionId who) { return *hubs[(who >> 56) - 1]; }
  RecordingSink& sink_of(ConnectionId who) { return sinks[(who >> 56) - 1]; }
  void connect(ConnectionId who) { hub_of(who).connect(who); }
  void join(ConnectionId who, std::string_view room, std::string_view name) {
    hub_of(who).receive(who, test_support::join_json(room, name));
    settle();
  }
  void say(ConnectionId who, std::string_view room, std::string_view text,
           std::string_view id = "") {
    std::string json = R"({"type":"chat_message","room":")" + std::string(room) +
                       R"(","message":")" + std::string(text) + "\"";
    if (!id.empty()) json += R"(,"id":")" + std::string(id) + "\"";
    hub_of(who).receive(who, json + "}");
  }
  std::vector<std::string> texts(ConnectionId who) {
    std::vector<std::string> out;
    for (const auto& m : sink_of(who).take(who, "chat_message")) {
      out.push_back(std::string(m.at("message").as_string()) + "#" +
                    std::to_string(m.at("seq").as_int64()));
    }
    return out;
  }
  std::vector<std::string> last_user_list(ConnectionId who) {
    std::vector<std::string> names;
    const auto lists = sink_of(who).of_type(who, "user_list");
    if (lists.empty()) return names;
    for (const auto& u : lists.back().at("users").as_array()) {
      names.emplace_back(u.at("username").as_string());
    }
    return names;
  }

  base::ManualClock clock;
  store::MemoryStore memory{clock, options().retention()};
  std::optional<DeferredReads> deferred_reads;  // over `memory`, for the tests that want it
  std::array<RecordingSink, 2> sinks;
  // Declared last: the Hubs go before the Exchange whose Ports they hold.
  std::optional<Exchange> exchange;
  std::optional<RateBudgets> budgets;  // the node's
  std::array<std::optional<Hub>, 2> hubs;
};

constexpr ConnectionId kAnn = on_worker(0, 1);
constexpr ConnectionId kBob = on_worker(1, 1);
constexpr ConnectionId kCid = on_worker(1, 2);

TEST_F(ExchangeTest, OneRoomOnTwoWorkersHasOneNumberingAndOneOrder) {
  start(options(), memory);
  for (auto who : {kAnn, kBob}) connect(who);
  join(kAnn, "lobby", "ann");
  join(kBob, "lobby", "bob");
  say(kAnn, "lobby", "a1", "id-a1");
  say(kBob, "lobby", "b1");
  say(kAnn, "lobby", "a2");
  settle();
  const std::vector<std::string> expected{"a1#1", "b1#2", "a2#3"};
  EXPECT_EQ(texts(kAnn), expected);
  EXPECT_EQ(texts(kBob), expected);
  // The ack goes to the sender's worker only.
  ASSERT_EQ(sinks[0].take(kAnn, "ack").size(), 1u);
  EXPECT_TRUE(sinks[1].take(kBob, "ack").empty());
  // A resend of a1 is acked with its seq and delivered to no one.
  say(kAnn, "lobby", "a1", "id-a1");
  settle();
  const auto acks = sinks[0].take(kAnn, "ack");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].at("seq"), 1);
  EXPECT_TRUE(texts(kBob).empty());
}

TEST_F(ExchangeTest, ARunOfReportsWakesEachWorkerOnceAtItsEnd) {
  deferred_reads.emplace(memory);
  start(options(), *deferred_reads);
  std::array<int, 2> wakes{};
  for (std::size_t w = 0; w < 2; ++w) exchange->port(w).set_wake([&wakes, w] { ++wakes[w]; });
  for (auto who : {kAnn, kBob}) connect(who);
  join(kAnn, "lobby", "ann");
  join(kBob, "lobby", "bob");
  for (const auto& read : deferred_reads->deferred) read();  // bob's worker reads the window
  settle();
  wakes = {};
  // A group commit's reports, as SqliteStore makes them: nobody is woken before the last.
  HistoryStore::Listener& store_listener = *deferred_reads->listener;
  store_listener.begin_reports();
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    std::string text = "g";  // appended: GCC 12 -O3 -Wrestrict misjudges "g" + std::string
    text += std::to_string(seq);
    store_listener.on_committed({"lobby", seq, 1, "u9", "gus", std::move(text), {}, {}},
                                kNoConnection);
  }
  EXPECT_EQ(wakes, (std::array<int, 2>{0, 0}));
  store_listener.end_reports();
  EXPECT_EQ(wakes, (std::array<int, 2>{1, 1}));
  settle();
  const std::vector<std::string> expected{"g1#1", "g2#2", "g3#3"};
  EXPECT_EQ(texts(kAnn), expected);
  EXPECT_EQ(texts(kBob), expected);
  // Outside a run, an inbox that stops being empty wakes its worker at once.
  say(kAnn, "lobby", "now");
  EXPECT_EQ(wakes, (std::array<int, 2>{2, 2}));
}

TEST_F(ExchangeTest, MembersOnOtherWorkersAreListedJoinedAndLeft) {
  start(options(), memory);
  for (auto who : {kAnn, kBob, kCid}) connect(who);
  join(kAnn, "lobby", "ann");
  join(kBob, "lobby", "bob");
  join(kCid, "lobby", "cid");
  clock.advance(milliseconds(100));
  hubs[0]->tick();
  hubs[1]->tick();
  const std::vector<std::string> everyone{"ann", "bob", "cid"};
  EXPECT_EQ(last_user_list(kAnn), everyone);
  EXPECT_EQ(last_user_list(kBob), everyone);
  const auto ann_saw = sinks[0].take(kAnn, "system_message");
  ASSERT_EQ(ann_saw.size(), 3u);  // welcome, bob joined, cid joined
  EXPECT_EQ(ann_saw[1].at("message"), "bob joined the chat");
  // Typing and leaving cross workers too.
  hubs[1]->receive(kBob, R"({"type":"typing_start","room":"lobby"})");
  settle();
  EXPECT_EQ(sinks[0].take(kAnn, "typing_start").size(), 1u);
  hubs[1]->disconnect(kBob);
  settle();
  EXPECT_EQ(sinks[0].take(kAnn, "typing_stop").size(), 1u);
  const auto left = sinks[0].take(kAnn, "system_message");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].at("message"), "bob left the chat");
}

TEST_F(ExchangeTest, ASecondWorkerGetsTheWindowAndWhatWasCommittedWhileItWasRead) {
  DeferredReads& store = deferred_reads.emplace(memory);
  start(options(), store);
  for (auto who : {kAnn, kBob}) connect(who);
  join(kAnn, "lobby", "ann");
  say(kAnn, "lobby", "before-1");
  say(kAnn, "lobby", "before-2");
  settle();
  // Bob's worker follows the room and reads its window back; meanwhile a message commits.
  hubs[1]->receive(kBob, test_support::join_json("lobby", "bob"));
  say(kAnn, "lobby", "during");
  settle();
  ASSERT_EQ(store.deferred.size(), 1u);
  EXPECT_TRUE(sinks[1].take(kBob, "history").empty());  // still waiting for the window
  store.deferred[0]();  // the window: before-1, before-2, during (read after it committed)
  say(kAnn, "lobby", "after");
  settle();
  const auto history = sinks[1].take(kBob, "history");
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].at("messages").as_array().size(), 3u);
  // "during" is in the window and was also committed while it was read: shown once.
  EXPECT_EQ(texts(kBob), std::vector<std::string>{"after#4"});
}

TEST_F(ExchangeTest, AUsersBudgetSpansTheWorkers) {
  HubOptions o = options();
  o.message_rate = {4, std::chrono::seconds(60)};
  start(o, memory);
  // One token user with a tab on each worker.
  const Identity alice{"user-alice", "alice", std::nullopt, 0};
  hubs[0]->connect(kAnn, {alice, "10.0.0.1"});
  hubs[1]->connect(kBob, {alice, "10.0.0.2"});
  join(kAnn, "lobby", "");
  join(kBob, "lobby", "");
  for (int i = 0; i < 3; ++i) say(kAnn, "lobby", "a");
  say(kBob, "lobby", "b");  // the fourth: allowed
  say(kBob, "lobby", "b");  // the fifth: over the user's budget, although bob's tab sent two
  settle();
  const auto errors = sinks[1].take(kBob, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "rate_limited");
}

TEST_F(ExchangeTest, TheLastWorkerToLeaveARoomLetsTheStoreForgetIt) {
  start(options(), memory);
  for (auto who : {kAnn, kBob}) connect(who);
  join(kAnn, "lobby", "ann");
  join(kBob, "lobby", "bob");
  say(kAnn, "lobby", "hi");
  settle();
  EXPECT_EQ(exchange->rooms(), 1u);
  hubs[0]->disconnect(kAnn);
  settle();
  EXPECT_EQ(exchange->rooms(), 1u);  // bob's worker still follows it
  hubs[1]->disconnect(kBob);
  settle();
  EXPECT_EQ(exchange->rooms(), 0u);
  // The memory store forgot it: a new join starts the room afresh.
  connect(kCid);
  join(kCid, "lobby", "cid");
  say(kCid, "lobby", "again");
  settle();
  EXPECT_EQ(texts(kCid), std::vector<std::string>{"again#1"});
}

}  // namespace
}  // namespace roomcast::chat

namespace roomcast::chat {
namespace {

TEST_F(ExchangeTest, NobodyAnonymousPassesForATokensUserOnAnotherWorker) {
  start(options(), memory);
  hubs[0]->connect(kAnn, {Identity{"user-ann", "ann", std::nullopt, 0}, "10.0.0.1"});
  join(kAnn, "lobby", "");
  connect(kBob);
  join(kBob, "lobby", "ann");  // the very name, anonymous, on the other worker
  const auto errors = sinks[1].take(kBob, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "invalid_field");
  // ann's other tab (the same token's user) on that worker is ann.
  hubs[1]->connect(kCid, {Identity{"user-ann", "ann", std::nullopt, 0}, "10.0.0.1"});
  join(kCid, "lobby", "");
  EXPECT_TRUE(sinks[1].take(kCid, "error").empty());
}

}  // namespace
}  // namespace roomcast::chat
