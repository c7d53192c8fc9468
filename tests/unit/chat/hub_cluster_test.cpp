// The Hub in a cluster: members on other nodes in user lists and announcements, typing
// across nodes, local presence reported out, and the answers to a store that cannot reach
// its backend (refused messages, failed room loads). The Presence and HistoryStore here are
// recorders of our own interfaces; the real Redis cluster is tested against a real Redis in
// tests/integration/python/test_cluster.py.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "chat/epoch.h"
#include "chat/hub.h"
#include "store/memory_store.h"
#include "support/history_now.h"
#include "support/manual_store.h"
#include "support/recording_sink.h"

namespace roomcast::chat {
namespace {

using std::chrono::milliseconds;

// Records what the Hub tells the cluster and hands back its listener.
class RecordingPresence final : public Presence {
 public:
  void set_presence_listener(Listener* l) override { listener = l; }
  void member_joined(std::string_view room, ConnectionId who, const MemberRef& member) override {
    events.push_back("joined " + std::string(room) + " " + std::to_string(who) + " " +
                     member->username() + " " + (member->user_id().empty() ? "" : "id"));
  }
  void member_left(std::string_view room, ConnectionId who, const MemberRef&) override {
    events.push_back("left " + std::string(room) + " " + std::to_string(who));
  }
  void typing(std::string_view room, std::string_view, std::string_view username,
              bool started) override {
    events.push_back(std::string(started ? "typing " : "stopped ") + std::string(room) + " " +
                     std::string(username));
  }
  Listener* listener = nullptr;
  std::vector<std::string> events;
};

using test_support::ManualStore;

// A member of another node, as the cluster reports it (anonymous: other nodes' tokens are
// not vouched for here).
MemberRef other_node_member(std::string_view user_id, std::string username) {
  return MemberInfo::make(user_id, std::move(username), false);
}

class HubClusterTest : public ::testing::Test {
 protected:
  void join(ConnectionId who, std::string_view room, std::string_view username) {
    hub->receive(who, R"({"type":"join_room","room":")" + std::string(room) + R"(","username":")" +
                          std::string(username) + "\"}");
  }
  std::vector<std::string> system_messages(ConnectionId who) {
    std::vector<std::string> out;
    for (const auto& m : sink.take(who, "system_message")) {
      out.emplace_back(m.at("message").as_string());
    }
    return out;
  }
  std::vector<std::string> last_user_list(ConnectionId who) {
    const auto lists = sink.take(who, "user_list");
    std::vector<std::string> names;
    if (lists.empty()) return names;
    for (const auto& u : lists.back().at("users").as_array()) {
      names.emplace_back(u.at("username").as_string());
    }
    return names;
  }

  test_support::RecordingSink sink;
  base::ManualClock clock;
  RecordingPresence presence;
  store::MemoryStore memory{clock, HubOptions{}.retention()};
  std::unique_ptr<Hub> hub = std::make_unique<Hub>(sink, clock, HubOptions{}, memory, &presence);
};

TEST_F(HubClusterTest, LocalJoinsLeavesAndTypingAreReportedToTheCluster) {
  ASSERT_NE(presence.listener, nullptr);
  hub->connect(1);
  join(1, "lobby", "ann");
  hub->receive(1, R"({"type":"typing_start","room":"lobby"})");
  hub->receive(1, R"({"type":"typing_start","room":"lobby"})");  // no change of state
  hub->receive(1, R"({"type":"chat_message","message":"hi"})");  // ends the typing
  hub->receive(1, R"({"type":"leave_room","room":"lobby"})");
  EXPECT_EQ(presence.events, (std::vector<std::string>{"joined lobby 1 ann id", "typing lobby ann",
                                                       "stopped lobby ann", "left lobby 1"}));
  hub->connect(2);
  join(2, "lobby", "bob");
  hub->disconnect(2);
  EXPECT_EQ(presence.events.back(), "left lobby 2");
}

TEST_F(HubClusterTest, MembersOnOtherNodesAreAnnouncedAndListed) {
  hub->connect(1);
  join(1, "lobby", "ann");
  sink.clear();
  const MemberRef bob = other_node_member("user-bob", "bob");
  presence.listener->on_member_joined("lobby", bob);
  presence.listener->on_member_joined("lobby", bob);  // once
  presence.listener->on_member_joined("elsewhere", other_node_member("user-cy", "cy"));
  EXPECT_EQ(system_messages(1), std::vector<std::string>{"bob joined the chat"});
  clock.advance(milliseconds(100));
  hub->tick();
  EXPECT_EQ(last_user_list(1), (std::vector<std::string>{"ann", "bob"}));

  presence.listener->on_member_left("lobby", bob);
  presence.listener->on_member_left("lobby", bob);  // once
  EXPECT_EQ(system_messages(1), std::vector<std::string>{"bob left the chat"});
  clock.advance(milliseconds(100));
  hub->tick();
  EXPECT_EQ(last_user_list(1), std::vector<std::string>{"ann"});
}

TEST_F(HubClusterTest, TypingOnOtherNodesReachesLocalMembers) {
  hub->connect(1);
  join(1, "lobby", "ann");
  presence.listener->on_typing("lobby", "user-bob", "bob", true);
  presence.listener->on_typing("lobby", "user-bob", "bob", false);
  const auto started = sink.take(1, "typing_start");
  const auto stopped = sink.take(1, "typing_stop");
  ASSERT_EQ(started.size(), 1u);
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_EQ(started[0].at("username"), "bob");
  EXPECT_EQ(started[0].at("room"), "lobby");
}

TEST_F(HubClusterTest, ARemoteTypistWhoLeavesStopsTyping) {
  hub->connect(1);
  join(1, "lobby", "ann");
  const MemberRef bob = other_node_member("user-bob", "bob");
  presence.listener->on_member_joined("lobby", bob);
  presence.listener->on_typing("lobby", "user-bob", "bob", true);
  sink.clear();
  // Bob's node dies: no typing_stop comes from it, but his leave ends his typing.
  presence.listener->on_member_left("lobby", bob);
  const auto stopped = sink.take(1, "typing_stop");
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_EQ(stopped[0].at("userId"), "user-bob");
  EXPECT_EQ(system_messages(1), std::vector<std::string>{"bob left the chat"});
}

TEST_F(HubClusterTest, ALookAlikeOfAMemberOnAnotherNodeIsRefused) {
  hub->connect(1);
  join(1, "lobby", "carol");
  const MemberRef ann = other_node_member("user-ann", "ann");
  presence.listener->on_member_joined("lobby", ann);
  hub->connect(2);
  join(2, "lobby", "\u0430nn");  // Cyrillic a
  auto errors = sink.take(2, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "invalid_field");
  EXPECT_EQ(presence.events.back(), "joined lobby 1 carol id");  // told the cluster nothing
  // Other nodes do not say whether a member holds a token: an anonymous joiner of the very
  // same name is taken as the same user, as on one node.
  hub->connect(3);
  join(3, "lobby", "ann");
  EXPECT_TRUE(sink.take(3, "error").empty());
  // Once the remote ann has left (and the local one too), the name is free.
  presence.listener->on_member_left("lobby", ann);
  hub->receive(3, R"({"type":"leave_room","room":"lobby"})");
  join(2, "lobby", "\u0430nn");
  EXPECT_TRUE(sink.take(2, "error").empty());
}

class HubClusterStoreTest : public HubClusterTest {
 protected:
  ManualStore store;
  std::unique_ptr<Hub> clustered =
      std::make_unique<Hub>(sink, clock, HubOptions{}, store, &presence);
};

TEST_F(HubClusterStoreTest, AJoinWhoseRoomCannotBeLoadedGetsAnErrorAndTheNextMessagesAreHandled) {
  clustered->connect(1);
  clustered->receive(1, R"({"type":"join_room","room":"lobby","username":"ann"})");
  clustered->receive(1, R"({"type":"chat_message","message":"hi"})");  // waits behind the join
  ASSERT_EQ(store.loads, std::vector<std::string>{"lobby"});
  store.listener->on_load_failed("lobby", "cluster unavailable: test");
  const auto errors = sink.take(1, "error");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].at("code"), "cluster_unavailable");
  EXPECT_EQ(errors[0].at("message"), "cluster unavailable: test");
  EXPECT_EQ(errors[1].at("code"), "not_in_room");  // the join failed, so the chat did too
  // A later join tries again.
  clustered->receive(1, R"({"type":"join_room","room":"lobby","username":"ann"})");
  EXPECT_EQ(store.loads.size(), 2u);
  store.listener->on_loaded("lobby", {});
  EXPECT_EQ(sink.take(1, "system_message").size(), 1u);  // welcome
}

TEST_F(HubClusterStoreTest, WhatWaitsBehindAJoinHoldsTheSenderAtABoundAndNothingIsRefused) {
  HubOptions options;
  options.max_parked_messages = 4;
  options.max_parked_bytes = 400;
  options.max_parked_bytes_total = 600;
  clustered.reset();  // its destructor clears the store's listener
  clustered = std::make_unique<Hub>(sink, clock, options, store, &presence);
  clustered->connect(1);
  clustered->connect(2);
  clustered->receive(1, R"({"type":"join_room","room":"slow","username":"ann"})");
  const auto chat = [&](ConnectionId who, int i) {
    clustered->receive(who, R"({"type":"chat_message","room":"slow","message":"m","id":"m-)" +
                                std::to_string(i) + "\"}");
  };
  for (int i = 0; i < 2; ++i) chat(1, i);
  EXPECT_TRUE(sink.holds[1].empty());  // 3 of 4 waiting: reading goes on
  chat(1, 2);  // the fourth: kept, and reading stops
  EXPECT_EQ(sink.holds[1], std::vector<bool>{true});
  // What a transport had already read when it was told is kept too (no second hold).
  chat(1, 3);
  EXPECT_EQ(sink.holds[1], std::vector<bool>{true});
  // Bytes per connection: one large message reaches bob's bound at once.
  clustered->receive(2, R"({"type":"join_room","room":"slow","username":"bob"})");
  clustered->receive(2, R"({"type":"chat_message","message":")" + std::string(350, 'x') + "\"}");
  EXPECT_EQ(sink.holds[2], std::vector<bool>{true});
  EXPECT_TRUE(sink.take(1, "error").empty());
  EXPECT_TRUE(sink.take(2, "error").empty());
  // Once the room loads, everything is handled in order and reading resumes.
  store.listener->on_loaded("slow", {});
  ASSERT_EQ(store.published.size(), 5u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(store.published[i].client_id, "m-" + std::to_string(i));
  EXPECT_EQ(sink.holds[1], (std::vector<bool>{true, false}));
  EXPECT_EQ(sink.holds[2], (std::vector<bool>{true, false}));
  // The count is given back: a new wait starts from nothing.
  clustered->receive(2, R"({"type":"join_room","room":"slow2"})");
  for (int i = 0; i < 2; ++i) clustered->receive(2, R"({"type":"typing_start","room":"slow"})");
  EXPECT_EQ(sink.holds[2], (std::vector<bool>{true, false}));
  // In all: carol's one message fits her own bound, but not what is left of the total.
  clustered->connect(3);
  clustered->receive(3, R"({"type":"join_room","room":"slow3","username":"carol"})");
  clustered->receive(3, R"({"type":"chat_message","message":")" + std::string(300, 'y') + "\"}");
  clustered->receive(2, R"({"type":"chat_message","message":")" + std::string(250, 'z') + "\"}");
  EXPECT_TRUE(sink.holds[3].empty());
  EXPECT_EQ(sink.holds[2], (std::vector<bool>{true, false, true}));
  // A join that fails releases what waited behind it too.
  store.listener->on_load_failed("slow2", "cluster unavailable: test");
  EXPECT_EQ(sink.holds[2], (std::vector<bool>{true, false, true, false}));
}

TEST_F(HubClusterStoreTest, ARoomWithTooMuchInFlightHoldsItsSendersUntilHalfIsBack) {
  HubOptions unlimited;
  unlimited.message_rate = {0, std::chrono::seconds(60)};
  unlimited.address_message_rate = {0, std::chrono::seconds(60), 0};
  clustered.reset();  // its destructor clears the store's listener
  clustered = std::make_unique<Hub>(sink, clock, unlimited, store, &presence);
  clustered->connect(1);
  clustered->connect(2);
  clustered->receive(1, R"({"type":"join_room","room":"busy","username":"ann"})");
  store.listener->on_loaded("busy", {});
  clustered->receive(2, R"({"type":"join_room","room":"busy","username":"bob"})");
  const auto chat = [&](ConnectionId who, std::size_t i) {
    clustered->receive(who, R"({"type":"chat_message","room":"busy","message":"m","id":"m-)" +
                                std::to_string(i) + "\"}");
  };
  constexpr std::size_t kBound = 10'000;  // Hub::kMaxInFlight
  for (std::size_t i = 0; i < kBound; ++i) chat(1, i);
  EXPECT_TRUE(sink.holds[1].empty());
  chat(1, kBound);  // past the bound: taken, and ann's reading is held
  chat(2, 0);  // bob too (a message his transport had read)
  EXPECT_EQ(sink.holds[1], std::vector<bool>{true});
  EXPECT_EQ(sink.holds[2], std::vector<bool>{true});
  EXPECT_TRUE(sink.take(1, "error").empty());
  EXPECT_TRUE(sink.take(2, "error").empty());
  ASSERT_EQ(store.published.size(), kBound + 2);
  // Reading resumes once the room is down to half its bound in flight.
  std::uint64_t seq = 0;
  const auto commit_next = [&] {
    const Publication& p = store.published[seq];
    ++seq;
    store.listener->on_committed(
        {"busy", seq, 1, p.user_id, p.username, p.message, p.sender_key, p.client_id}, p.origin);
  };
  while (seq < kBound / 2 + 1) commit_next();
  EXPECT_EQ(sink.holds[1], std::vector<bool>{true});
  commit_next();
  EXPECT_EQ(sink.holds[1], (std::vector<bool>{true, false}));
  EXPECT_EQ(sink.holds[2], (std::vector<bool>{true, false}));
  while (seq < store.published.size()) commit_next();
  EXPECT_EQ(sink.take(1, "ack").size(), kBound + 1);  // every message acked, none refused
  EXPECT_EQ(sink.take(2, "ack").size(), 1u);
}

TEST_F(HubClusterStoreTest, DeliveriesAwaitingTheStoreAreCountedUntilEachMessageLands) {
  for (ConnectionId c : {1, 2, 3}) {
    clustered->connect(c);
    clustered->receive(
        c, R"({"type":"join_room","room":"lobby","username":"u)" + std::to_string(c) + "\"}");
    if (c == 1) store.listener->on_loaded("lobby", {});
  }
  clustered->receive(1, R"({"type":"chat_message","room":"lobby","message":"a"})");
  clustered->receive(1, R"({"type":"chat_message","room":"lobby","message":"b","id":"b"})");
  clustered->receive(2, R"({"type":"chat_message","room":"lobby","message":"c"})");
  EXPECT_EQ(clustered->deliveries_awaiting_store(), 9u);  // 3 messages x 3 members
  clustered->receive(3, R"({"type":"leave_room","room":"lobby"})");
  ASSERT_EQ(store.published.size(), 3u);
  store.listener->on_committed({"lobby", 1, 1, "u1", "u1", "a", {}, {}}, 1);
  EXPECT_EQ(clustered->deliveries_awaiting_store(), 6u);
  store.listener->on_refused(store.published[1], "disk full", "unavailable");
  store.listener->on_committed({"lobby", 2, 1, "u2", "u2", "c", {}, {}}, 2);
  EXPECT_EQ(clustered->deliveries_awaiting_store(), 0u);
}

TEST_F(HubClusterStoreTest, ARefusedMessageIsAnsweredWithAnErrorAndNeverAcked) {
  clustered->connect(1);
  clustered->receive(1, R"({"type":"join_room","room":"lobby","username":"ann"})");
  store.listener->on_loaded("lobby", {});
  clustered->receive(1, R"({"type":"chat_message","message":"hi","id":"m-1"})");
  ASSERT_EQ(store.published.size(), 1u);
  store.listener->on_refused(store.published[0], "cluster unavailable: test");
  const auto errors = sink.take(1, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "cluster_unavailable");
  // Which message: other replies may have come in between.
  EXPECT_EQ(errors[0].at("room"), "lobby");
  EXPECT_EQ(errors[0].at("id"), "m-1");
  EXPECT_TRUE(sink.take(1, "ack").empty());
  EXPECT_TRUE(sink.take(1, "chat_message").empty());
  // Nothing is in flight any more: once the member leaves, the room is let go.
  clustered->receive(1, R"({"type":"leave_room","room":"lobby"})");
  EXPECT_EQ(store.unloads, std::vector<std::string>{"lobby"});
}

TEST_F(HubClusterStoreTest, HistoryThatCannotBeReadIsAnErrorNotAnEmptyPage) {
  const auto page =
      test_support::history_now(store, clock, HubOptions{}, "lobby", std::nullopt, 10);
  ASSERT_TRUE(std::holds_alternative<ProtocolError>(page));
  EXPECT_EQ(std::get<ProtocolError>(page).code, "cluster_unavailable");
}

TEST_F(HubClusterStoreTest, MembersOnOtherNodesComeWithTheLoadedRoom) {
  clustered->connect(1);
  clustered->receive(1, R"({"type":"join_room","room":"lobby","username":"ann"})");
  RoomHistory loaded;
  loaded.remote_members.push_back(other_node_member("user-bob", "bob"));
  store.listener->on_loaded("lobby", std::move(loaded));
  clock.advance(milliseconds(100));
  clustered->tick();
  // In join order: bob was in the room before ann's join was handled.
  EXPECT_EQ(last_user_list(1), (std::vector<std::string>{"bob", "ann"}));
}

TEST_F(HubClusterStoreTest, AHistoryResetDropsWhatTheStoreLostAndOldSincesAreNotRecovered) {
  clustered->connect(1);
  clustered->receive(1, R"({"type":"join_room","room":"lobby","username":"ann"})");
  RoomHistory loaded;
  loaded.last_seq = 3;
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    loaded.messages.push_back(
        {"lobby", seq, 1000, "user-bob", "bob", "old " + std::to_string(seq), {}, {}});
  }
  store.listener->on_loaded("lobby", std::move(loaded));
  sink.take(1, "history");
  // Redis was emptied: the room continues from an epoch base.
  const std::uint64_t epoch = epoch_seq_base(3, 1'765'000'000'000);
  store.listener->on_history_reset("lobby", epoch);
  const auto seqs_and_recovered = [&](ConnectionId who, std::optional<std::uint64_t> since) {
    std::string join = R"({"type":"join_room","room":"lobby","username":"u)" + std::to_string(who);
    join += '"';
    if (since) join += R"(,"since":)" + std::to_string(*since);
    clustered->connect(who);
    clustered->receive(who, join + "}");
    std::vector<std::uint64_t> seqs;
    std::optional<bool> recovered;
    for (const auto& h : sink.take(who, "history")) {
      for (const auto& m : h.at("messages").as_array()) {
        seqs.push_back(static_cast<std::uint64_t>(m.at("seq").as_int64()));
      }
      if (h.contains("recovered")) recovered = h.at("recovered").as_bool();
    }
    return std::pair{seqs, recovered};
  };
  // A fresh joiner gets nothing the store no longer has.
  EXPECT_EQ(seqs_and_recovered(2, std::nullopt).first, std::vector<std::uint64_t>{});
  // A client that saw everything missed nothing; one with an older since is told.
  EXPECT_EQ(seqs_and_recovered(3, 3).second, std::optional<bool>(true));
  EXPECT_EQ(seqs_and_recovered(4, 2).second, std::optional<bool>(false));
  // The epoch's messages are delivered and kept as usual.
  store.listener->on_committed({"lobby", epoch, 2000, "user-bob", "bob", "new", {}, {}},
                               kNoConnection);
  EXPECT_EQ(sink.take(1, "chat_message").size(), 1u);
  const auto [seqs, recovered] = seqs_and_recovered(5, 2);
  EXPECT_EQ(seqs, std::vector<std::uint64_t>{epoch});
  EXPECT_EQ(recovered, std::optional<bool>(false));
}

TEST(EpochSeqBase, IsAboveEverySeqKnownAndEverySeqTheClockAllowedAndExactInJavaScript) {
  // By time: a thousand seqs per millisecond since 1970.
  EXPECT_EQ(epoch_seq_base(500, 1'765'000'000'000), 1'765'000'000'000'000u);
  // A room already in an epoch (or numbered absurdly fast) continues above what it had.
  EXPECT_EQ(epoch_seq_base(1'765'000'000'000'000, 1'765'000'000'000), 1'765'000'000'000'001u);
  // A clock before 1970 (broken) still gives a seq above the known one.
  EXPECT_EQ(epoch_seq_base(7, -5), 8u);
  // Year 2255 (unix ms 8.99e12) still fits in JavaScript's exact integers (2^53).
  EXPECT_LT(epoch_seq_base(0, 9'000'000'000'000), std::uint64_t{1} << 53);
}

TEST_F(HubClusterStoreTest, ALookAlikeOfAMemberListedWithTheLoadedRoomIsRefused) {
  clustered->connect(1);
  clustered->receive(1, R"({"type":"join_room","room":"lobby","username":"b\u043eb"})");
  RoomHistory loaded;  // the join waits for this, and then meets bob (Cyrillic o above)
  loaded.remote_members.push_back(other_node_member("user-bob", "bob"));
  store.listener->on_loaded("lobby", std::move(loaded));
  const auto errors = sink.take(1, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("code"), "invalid_field");
  EXPECT_TRUE(sink.take(1, "history").empty());
}

}  // namespace
}  // namespace roomcast::chat
