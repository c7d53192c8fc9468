// MemoryStore: numbering, resent ids, retention (on a ManualClock: no sleeps), reads, and the
// order of its reports when the listener calls back or two threads publish at once.
#include "store/memory_store.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace roomcast::store {
namespace {

using std::chrono::milliseconds;

// Every report, in the order the listener got them, as one line each ("loaded r 3",
// "committed r 4", "duplicate r 2", "refused r unavailable"), plus what they carried.
// Thread-safe; `during` (if set) runs inside each report, after it is recorded.
class Recorder final : public chat::HistoryStore::Listener {
 public:
  void on_loaded(std::string_view room, chat::RoomHistory history) override {
    {
      std::lock_guard lock(mutex_);
      events_.push_back("loaded " + std::string(room) + " " + std::to_string(history.last_seq));
      loaded_[std::string(room)] = history;
    }
    if (during) during("loaded", std::string(room));
  }
  void on_committed(chat::StoredMessage message, chat::ConnectionId origin) override {
    {
      std::lock_guard lock(mutex_);
      events_.push_back("committed " + message.room + " " + std::to_string(message.seq));
      committed_.push_back(message);
      origins_.push_back(origin);
    }
    if (during) during("committed", message.room);
  }
  void on_duplicate(const chat::Publication& p, std::uint64_t seq) override {
    std::lock_guard lock(mutex_);
    events_.push_back("duplicate " + p.room + " " + std::to_string(seq));
  }
  void on_refused(const chat::Publication& p, std::string_view, std::string_view code) override {
    std::lock_guard lock(mutex_);
    events_.push_back("refused " + p.room + " " + std::string(code));
  }
  void on_load_failed(std::string_view room, std::string_view reason) override {
    ADD_FAILURE() << "MemoryStore failed to load " << room << ": " << reason;
  }

  std::vector<std::string> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  chat::RoomHistory loaded(const std::string& room) const {
    std::lock_guard lock(mutex_);
    const auto it = loaded_.find(room);
    return it == loaded_.end() ? chat::RoomHistory{} : it->second;
  }
  std::vector<chat::StoredMessage> committed() const {
    std::lock_guard lock(mutex_);
    return committed_;
  }
  std::vector<chat::ConnectionId> origins() const {
    std::lock_guard lock(mutex_);
    return origins_;
  }

  std::function<void(const std::string& kind, const std::string& room)> during;

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> events_;
  std::map<std::string, chat::RoomHistory> loaded_;
  std::vector<chat::StoredMessage> committed_;
  std::vector<chat::ConnectionId> origins_;
};

chat::Publication publication(std::string room, std::int64_t timestamp_ms,
                              std::string client_id = "", std::string sender_key = "name:ann",
                              chat::ConnectionId origin = 7) {
  return {std::move(room),       timestamp_ms,         "user-1", "ann", "text",
          std::move(sender_key), std::move(client_id), origin};
}

std::vector<std::uint64_t> seqs(const std::vector<chat::StoredMessage>& messages) {
  std::vector<std::uint64_t> out;
  for (const auto& m : messages) out.push_back(m.seq);
  return out;
}

// Reads through the callback, which MemoryStore calls before returning.
chat::RoomHistory read_now(MemoryStore& store, std::string_view room, std::uint64_t after_seq,
                           std::size_t limit) {
  std::optional<std::optional<chat::RoomHistory>> answer;
  store.read(room, after_seq, limit,
             [&](std::optional<chat::RoomHistory> history) { answer = std::move(history); });
  EXPECT_TRUE(answer.has_value()) << "read() did not answer before returning";
  EXPECT_TRUE(answer.has_value() && answer->has_value()) << "read() failed";
  return answer && *answer ? **answer : chat::RoomHistory{};
}

class MemoryStoreTest : public ::testing::Test {
 protected:
  explicit MemoryStoreTest(chat::Retention retention = {}) : store_(clock_, retention) {
    store_.set_listener(&recorder_);
  }
  ~MemoryStoreTest() override { store_.set_listener(nullptr); }

  std::int64_t now() const { return clock_.unix_ms(); }

  base::ManualClock clock_;
  Recorder recorder_;
  MemoryStore store_;
};

TEST_F(MemoryStoreTest, NumbersEachRoomFromOneAndReportsBeforePublishReturns) {
  store_.load("a");
  store_.load("b");
  EXPECT_EQ(recorder_.events(), (std::vector<std::string>{"loaded a 0", "loaded b 0"}));
  store_.publish(publication("a", now()));
  store_.publish(publication("a", now()));
  store_.publish(publication("b", now(), "", "name:ann", chat::kNoConnection));
  store_.publish(publication("a", now()));
  EXPECT_EQ(recorder_.events(),
            (std::vector<std::string>{"loaded a 0", "loaded b 0", "committed a 1", "committed a 2",
                                      "committed b 1", "committed a 3"}));
  const auto committed = recorder_.committed();
  EXPECT_EQ(committed[0].username, "ann");
  EXPECT_EQ(committed[0].message, "text");
  EXPECT_EQ(committed[0].sender_key, "name:ann");
  EXPECT_EQ(committed[0].timestamp_ms, now());
  EXPECT_EQ(recorder_.origins(), (std::vector<chat::ConnectionId>{7, 7, chat::kNoConnection, 7}));
}

TEST_F(MemoryStoreTest, OnLoadedCarriesTheRetainedWindowAndTheLastSeq) {
  store_.load("r");
  for (int i = 0; i < 4; ++i) store_.publish(publication("r", now()));
  store_.load("r");  // a second load (another worker's join): the window so far
  const auto history = recorder_.loaded("r");
  EXPECT_EQ(history.last_seq, 4u);
  EXPECT_EQ(seqs(history.messages), (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(history.messages[3].room, "r");
  EXPECT_TRUE(history.remote_members.empty());
}

TEST_F(MemoryStoreTest, AResentIdIsADuplicateOfTheFirstAnotherSendersIsNew) {
  store_.load("r");
  store_.publish(publication("r", now(), "x"));
  store_.publish(publication("r", now(), "y"));
  store_.publish(publication("r", now(), "x"));  // resent: seq 1 again, nothing stored
  store_.publish(publication("r", now(), "x", "name:bob"));  // bob's own "x": a new message
  store_.publish(publication("r", now()));  // no id: never a duplicate
  store_.publish(publication("r", now()));
  EXPECT_EQ(recorder_.events(), (std::vector<std::string>{
                                    "loaded r 0", "committed r 1", "committed r 2", "duplicate r 1",
                                    "committed r 3", "committed r 4", "committed r 5"}));
  EXPECT_EQ(read_now(store_, "r", 0, 100).messages.size(), 5u);
}

class MemoryStoreCountRetentionTest : public MemoryStoreTest {
 protected:
  MemoryStoreCountRetentionTest() : MemoryStoreTest(chat::Retention{3, milliseconds(0)}) {}
};

TEST_F(MemoryStoreCountRetentionTest, KeepsTheNewestMessagesAndForgetsTheIdsOfOthers) {
  store_.load("r");
  // Appended: GCC 12 at -O3 takes "m" + std::to_string(i) for an overlapping copy (-Wrestrict).
  for (int i = 1; i <= 5; ++i)
    store_.publish(publication("r", now(), std::string("m").append(std::to_string(i))));
  const auto history = read_now(store_, "r", 0, 100);
  EXPECT_EQ(history.last_seq, 5u);  // numbering goes on past what is kept
  EXPECT_EQ(seqs(history.messages), (std::vector<std::uint64_t>{3, 4, 5}));
  store_.load("r");
  EXPECT_EQ(seqs(recorder_.loaded("r").messages), (std::vector<std::uint64_t>{3, 4, 5}));
  // An id still in the window is recognised; one that left it is a new message.
  store_.publish(publication("r", now(), "m4"));
  store_.publish(publication("r", now(), "m1"));
  const auto events = recorder_.events();
  EXPECT_EQ(events[events.size() - 2], "duplicate r 4");
  EXPECT_EQ(events.back(), "committed r 6");
}

class MemoryStoreAgeRetentionTest : public MemoryStoreTest {
 protected:
  MemoryStoreAgeRetentionTest() : MemoryStoreTest(chat::Retention{1000, milliseconds(60'000)}) {}
};

TEST_F(MemoryStoreAgeRetentionTest, DropsMessagesOlderThanTheAgeOnTheStoresClock) {
  store_.load("r");
  store_.publish(publication("r", now(), "old"));
  store_.publish(publication("r", now()));
  clock_.advance(milliseconds(30'000));
  store_.publish(publication("r", now(), "newer"));
  EXPECT_EQ(seqs(read_now(store_, "r", 0, 100).messages), (std::vector<std::uint64_t>{1, 2, 3}));
  // 60 s after the first two: exactly at the cut-off they are still kept...
  clock_.advance(milliseconds(30'000));
  EXPECT_EQ(seqs(read_now(store_, "r", 0, 100).messages), (std::vector<std::uint64_t>{1, 2, 3}));
  // ...and one millisecond later they are not (chat::Retention::keeps).
  clock_.advance(milliseconds(1));
  const auto history = read_now(store_, "r", 0, 100);
  EXPECT_EQ(history.last_seq, 3u);
  EXPECT_EQ(seqs(history.messages), (std::vector<std::uint64_t>{3}));
  store_.load("r");
  EXPECT_EQ(seqs(recorder_.loaded("r").messages), (std::vector<std::uint64_t>{3}));
  // The expired message's id is forgotten with it; the kept one's is not.
  store_.publish(publication("r", now(), "old"));
  store_.publish(publication("r", now(), "newer"));
  const auto events = recorder_.events();
  EXPECT_EQ(events[events.size() - 2], "committed r 4");
  EXPECT_EQ(events.back(), "duplicate r 3");
}

TEST_F(MemoryStoreAgeRetentionTest, AMessageAlreadyTooOldWhenPublishedIsNumberedNotKept) {
  store_.load("r");
  store_.publish(publication("r", now() - 120'000));
  EXPECT_EQ(recorder_.events(), (std::vector<std::string>{"loaded r 0", "committed r 1"}));
  const auto history = read_now(store_, "r", 0, 100);
  EXPECT_EQ(history.last_seq, 1u);
  EXPECT_TRUE(history.messages.empty());
}

class MemoryStoreNoHistoryTest : public MemoryStoreTest {
 protected:
  MemoryStoreNoHistoryTest() : MemoryStoreTest(chat::Retention{0, milliseconds(0)}) {}
};

TEST_F(MemoryStoreNoHistoryTest, NumbersAndReportsButKeepsNothing) {
  store_.load("r");
  store_.publish(publication("r", now(), "x"));
  store_.publish(publication("r", now(), "x"));  // nothing kept, not even the id
  EXPECT_EQ(recorder_.events(),
            (std::vector<std::string>{"loaded r 0", "committed r 1", "committed r 2"}));
  const auto history = read_now(store_, "r", 0, 100);
  EXPECT_EQ(history.last_seq, 2u);
  EXPECT_TRUE(history.messages.empty());
}

TEST_F(MemoryStoreTest, ReadGivesTheNewestLimitAfterAfterSeqOldestFirst) {
  store_.load("r");
  for (int i = 0; i < 10; ++i) store_.publish(publication("r", now()));
  EXPECT_EQ(seqs(read_now(store_, "r", 0, 3).messages), (std::vector<std::uint64_t>{8, 9, 10}));
  EXPECT_EQ(seqs(read_now(store_, "r", 7, 100).messages), (std::vector<std::uint64_t>{8, 9, 10}));
  EXPECT_EQ(seqs(read_now(store_, "r", 4, 2).messages), (std::vector<std::uint64_t>{9, 10}));
  EXPECT_TRUE(read_now(store_, "r", 10, 100).messages.empty());
  EXPECT_TRUE(read_now(store_, "r", 0, 0).messages.empty());
  EXPECT_EQ(read_now(store_, "r", 0, 0).last_seq, 10u);
  // A room nobody follows here: no history, nothing failed.
  const auto nowhere = read_now(store_, "nowhere", 0, 100);
  EXPECT_EQ(nowhere.last_seq, 0u);
  EXPECT_TRUE(nowhere.messages.empty());
  // Reads report nothing to the listener.
  EXPECT_EQ(recorder_.events().size(), 11u);
}

TEST_F(MemoryStoreTest, PublishingToARoomNotLoadedIsRefusedAsUnavailable) {
  store_.publish(publication("never-loaded", now(), "x"));
  EXPECT_EQ(recorder_.events(), (std::vector<std::string>{"refused never-loaded unavailable"}));
  EXPECT_TRUE(recorder_.committed().empty());
}

TEST_F(MemoryStoreTest, UnloadForgetsTheRoom) {
  store_.load("r");
  store_.publish(publication("r", now(), "x"));
  store_.publish(publication("r", now()));
  store_.unload("r");
  store_.publish(publication("r", now()));  // no longer loaded
  EXPECT_EQ(recorder_.events().back(), "refused r unavailable");
  EXPECT_EQ(read_now(store_, "r", 0, 100).last_seq, 0u);
  // Loaded again it starts afresh: numbering, history and ids (memory is not durable).
  store_.load("r");
  EXPECT_EQ(recorder_.events().back(), "loaded r 0");
  EXPECT_TRUE(recorder_.loaded("r").messages.empty());
  store_.publish(publication("r", now(), "x"));
  EXPECT_EQ(recorder_.events().back(), "committed r 1");
}

TEST_F(MemoryStoreTest, AListenerThatCallsBackGetsThoseReportsAfterTheCurrentOneInOrder) {
  // From inside on_loaded: two publications; from inside the first commit: a third and a
  // resend, and a read (which answers at once: it reports nothing).
  std::vector<std::string> seen_from_inside;
  bool first_commit = true;
  recorder_.during = [&](const std::string& kind, const std::string& room) {
    seen_from_inside.push_back(kind);
    if (kind == "loaded") {
      store_.publish(publication(room, now(), "a"));
      store_.publish(publication(room, now(), "b"));
      // Queued behind this report: not made yet.
      EXPECT_EQ(recorder_.events(), (std::vector<std::string>{"loaded r 0"}));
    } else if (kind == "committed" && first_commit) {
      first_commit = false;
      store_.publish(publication(room, now(), "c"));
      store_.publish(publication(room, now(), "a"));
      EXPECT_EQ(read_now(store_, room, 0, 100).last_seq, 3u);  // numbered already
    }
  };
  store_.load("r");  // returns once every report, the nested ones included, is made
  EXPECT_EQ(recorder_.events(),
            (std::vector<std::string>{"loaded r 0", "committed r 1", "committed r 2",
                                      "committed r 3", "duplicate r 1"}));
  EXPECT_EQ(seen_from_inside,
            (std::vector<std::string>{"loaded", "committed", "committed", "committed"}));
  recorder_.during = nullptr;
}

TEST_F(MemoryStoreTest, TwoThreadsPublishingToOneRoomAreReportedOnceEachInSeqOrder) {
  constexpr int kPerThread = 2000;
  store_.load("r");
  auto publish_many = [this](const std::string& sender) {
    for (int i = 0; i < kPerThread; ++i) {
      store_.publish(publication("r", now(), sender + std::to_string(i), sender));
    }
  };
  std::thread first(publish_many, "one:");
  std::thread second(publish_many, "two:");
  first.join();
  second.join();
  // Both publish() calls have returned, so every report was made (by one thread or the other).
  std::vector<std::uint64_t> expected(2 * kPerThread);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(seqs(recorder_.committed()), expected);
  // Each sender's messages keep that sender's order.
  std::map<std::string, int> next;
  for (const auto& m : recorder_.committed()) {
    const auto colon = m.client_id.find(':');
    const std::string sender = m.client_id.substr(0, colon + 1);
    EXPECT_EQ(m.client_id, sender + std::to_string(next[sender]++));
  }
  EXPECT_EQ(next["one:"], kPerThread);
  EXPECT_EQ(next["two:"], kPerThread);
}

TEST(MemoryStore, AConversationNeedsNoLoadAndIsListedForBothUsers) {
  base::ManualClock clock;
  MemoryStore store(clock, chat::Retention{100, milliseconds(0)});
  Recorder recorder;
  store.set_listener(&recorder);
  const std::string key = chat::conversation_key("ann", "bob");
  store.publish({key, clock.unix_ms(), "ann", "Ann", "hi", "", "", 1});
  store.publish({key, clock.unix_ms() + 1, "bob", "Bob", "yo", "", "", 2});
  EXPECT_EQ(recorder.events(),
            (std::vector<std::string>{"committed " + key + " 1", "committed " + key + " 2"}));
  std::vector<chat::ConversationSummary> anns;
  store.conversations("ann", 10, [&](auto list) { anns = list.value(); });
  ASSERT_EQ(anns.size(), 1u);
  EXPECT_EQ(anns[0].peer_id, "bob");
  EXPECT_EQ(anns[0].peer_username, "Bob");
  EXPECT_EQ(anns[0].last_seq, 2u);
  std::vector<chat::ConversationSummary> bobs;
  store.conversations("bob", 10, [&](auto list) { bobs = list.value(); });
  ASSERT_EQ(bobs.size(), 1u);
  EXPECT_EQ(bobs[0].peer_username, "Ann");
  store.read(key, 1, 10, [](std::optional<chat::RoomHistory> history) {
    ASSERT_TRUE(history.has_value());
    ASSERT_EQ(history->messages.size(), 1u);
    EXPECT_EQ(history->messages[0].message, "yo");
  });
  store.set_listener(nullptr);
}

}  // namespace
}  // namespace roomcast::store
