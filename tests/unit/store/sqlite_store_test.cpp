// SqliteStore against a real SQLite file in a fresh temporary directory, alone and under a Hub.
#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <boost/json.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "chat/hub.h"

namespace roomcast::store {
namespace {

namespace json = boost::json;
using chat::StoredMessage;
using std::chrono::milliseconds;

std::int64_t now_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

StoredMessage message(std::string room, std::uint64_t seq, std::int64_t ts = now_ms()) {
  return {room, seq, ts, "user-1", "ann", "text " + std::to_string(seq), "", ""};
}

class DurableLog final : public chat::HistoryStore::Listener {
 public:
  void on_durable(std::string_view room, std::uint64_t seq) override {
    std::lock_guard lock(mutex);
    last[std::string(room)] = seq;
  }
  std::uint64_t of(const std::string& room) {
    std::lock_guard lock(mutex);
    return last[room];
  }
  std::mutex mutex;
  std::map<std::string, std::uint64_t> last;
};

std::vector<std::uint64_t> seqs(const chat::RoomHistory& h) {
  std::vector<std::uint64_t> out;
  for (const auto& m : h.messages) out.push_back(m.seq);
  return out;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/roomcast-store-test-XXXXXX";
    dir_ = mkdtemp(pattern);
    file_ = std::filesystem::path(dir_) / "sub" / "history.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  SqliteStoreOptions options(std::size_t size = 1000, milliseconds ttl = milliseconds(0)) {
    return {file_, size, ttl, false};
  }
  std::int64_t rows_on_disk() {
    sqlite3* db = nullptr;
    sqlite3_open(file_.c_str(), &db);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM messages", -1, &stmt, nullptr);
    sqlite3_step(stmt);
    const auto n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
  }

  std::string dir_;
  std::filesystem::path file_;
};

TEST_F(SqliteStoreTest, AppendedMessagesBecomeDurableAndReadBackOldestFirst) {
  SqliteStore store(options());
  DurableLog log;
  store.set_listener(&log);
  for (std::uint64_t s = 1; s <= 5; ++s) store.append(message("a", s));
  store.append(message("b", 1));
  store.flush();
  EXPECT_EQ(log.of("a"), 5u);
  EXPECT_EQ(log.of("b"), 1u);
  EXPECT_EQ(store.committed(), 6u);

  const auto all = store.read("a", 0, 100);
  EXPECT_EQ(all.last_seq, 5u);
  EXPECT_EQ(seqs(all), (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(all.messages[2].message, "text 3");
  EXPECT_EQ(all.messages[2].username, "ann");
  EXPECT_EQ(seqs(store.read("a", 0, 2)), (std::vector<std::uint64_t>{4, 5}));  // the newest
  EXPECT_EQ(seqs(store.read("a", 3, 100)), (std::vector<std::uint64_t>{4, 5}));
  EXPECT_EQ(store.read("nowhere", 0, 100).last_seq, 0u);
  store.set_listener(nullptr);
}

TEST_F(SqliteStoreTest, RetentionByCountKeepsTheNewestAndTheLastSeq) {
  {
    SqliteStore store(options(3));
    for (std::uint64_t s = 1; s <= 10; ++s) store.append(message("r", s));
  }  // the destructor commits what is queued
  EXPECT_EQ(rows_on_disk(), 3);
  SqliteStore reopened(options(3));
  const auto h = reopened.read("r", 0, 100);
  EXPECT_EQ(h.last_seq, 10u);
  EXPECT_EQ(seqs(h), (std::vector<std::uint64_t>{8, 9, 10}));
}

TEST_F(SqliteStoreTest, RetentionByAgeDeletesOldRowsInTheBackground) {
  SqliteStore store(options(1000, milliseconds(60'000)));
  const std::int64_t old = now_ms() - 3'600'000;
  for (std::uint64_t s = 1; s <= 3; ++s) store.append(message("r", s, old));
  store.append(message("r", 4));
  store.flush();
  EXPECT_EQ(seqs(store.read("r", 0, 100)), (std::vector<std::uint64_t>{4}));  // filtered at once
  for (int i = 0; i < 50 && rows_on_disk() > 1; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(rows_on_disk(), 1);  // and deleted within a couple of expiry passes
  EXPECT_EQ(store.read("r", 0, 100).last_seq, 4u);
}

TEST_F(SqliteStoreTest, IdempotencyKeysRoundTrip) {
  {
    SqliteStore store(options());
    auto m = message("r", 1);
    m.sender_key = "ann";
    m.client_id = "c-1";
    store.append(m);
  }
  SqliteStore reopened(options());
  const auto h = reopened.read("r", 0, 10);
  ASSERT_EQ(h.messages.size(), 1u);
  EXPECT_EQ(h.messages[0].sender_key, "ann");
  EXPECT_EQ(h.messages[0].client_id, "c-1");
}

TEST_F(SqliteStoreTest, AFileThatCannotBeOpenedIsAClearError) {
  std::filesystem::create_directories(file_);  // a directory where the file should be
  try {
    SqliteStore store(options());
    FAIL() << "opened a directory as a database";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(file_.string()), std::string::npos) << e.what();
  }
}

// --- under a Hub -----------------------------------------------------------------------

class InboxSink final : public chat::Sink {
 public:
  void send(chat::ConnectionId to, std::string payload) override {
    std::lock_guard lock(mutex);
    inbox[to].push_back(json::parse(payload).as_object());
  }
  void broadcast(const chat::MemberSnapshot& members, std::string payload,
                 chat::ConnectionId except) override {
    std::lock_guard lock(mutex);
    const auto doc = json::parse(payload).as_object();
    for (auto id : *members) {
      if (id != except) inbox[id].push_back(doc);
    }
  }
  void close(chat::ConnectionId, std::uint16_t, std::string) override {}
  std::vector<json::object> of_type(chat::ConnectionId who, std::string_view type) {
    std::lock_guard lock(mutex);
    std::vector<json::object> out;
    for (auto& m : inbox[who]) {
      if (m.at("type").as_string() == type) out.push_back(m);
    }
    return out;
  }
  std::mutex mutex;
  std::map<chat::ConnectionId, std::vector<json::object>> inbox;
};

TEST_F(SqliteStoreTest, HubAcksOnceDurableAndReloadsAForgottenRoom) {
  SqliteStore store(options());
  InboxSink sink;
  base::ManualClock clock;
  chat::Hub hub(sink, clock, {}, &store);
  hub.connect(1);
  hub.receive(1, R"({"type":"join_room","room":"r","username":"ann"})");
  for (int i = 1; i <= 3; ++i) {
    hub.receive(1, R"({"type":"chat_message","message":"hi","id":"id)" + std::to_string(i) + "\"}");
  }
  hub.flush_history();
  const auto acks = sink.of_type(1, "ack");
  ASSERT_EQ(acks.size(), 3u);
  EXPECT_EQ(acks[2].at("seq"), 3);
  EXPECT_EQ(acks[2].at("id"), "id3");

  // Everyone leaves; once durable the room is forgotten, and a join reads it back.
  hub.receive(1, R"({"type":"leave_room","room":"r"})");
  hub.tick();
  EXPECT_EQ(hub.stats().rooms, 0u);
  hub.connect(2);
  hub.receive(2, R"({"type":"join_room","room":"r","username":"ann","since":1})");
  const auto history = sink.of_type(2, "history");
  ASSERT_EQ(history.size(), 1u);
  EXPECT_TRUE(history[0].at("recovered").as_bool());
  EXPECT_EQ(history[0].at("messages").as_array().size(), 2u);
  // The reloaded room knows the ids (same user name) and continues the numbering.
  hub.receive(2, R"({"type":"chat_message","message":"hi","id":"id2"})");
  hub.receive(2, R"({"type":"chat_message","message":"new"})");
  hub.flush_history();
  const auto acks2 = sink.of_type(2, "ack");
  ASSERT_EQ(acks2.size(), 1u);
  EXPECT_EQ(acks2[0].at("seq"), 2);
  const auto chats = sink.of_type(2, "chat_message");
  ASSERT_EQ(chats.size(), 1u);
  EXPECT_EQ(chats[0].at("seq"), 4);
}

TEST_F(SqliteStoreTest, ANewHubOnTheSameFileContinuesTheNumbering) {
  {
    SqliteStore store(options());
    InboxSink sink;
    base::ManualClock clock;
    chat::Hub hub(sink, clock, {}, &store);
    hub.connect(1);
    hub.receive(1, R"({"type":"join_room","room":"r","username":"ann"})");
    for (int i = 0; i < 7; ++i) hub.receive(1, R"({"type":"chat_message","message":"x"})");
    hub.flush_history();
  }
  SqliteStore store(options());
  InboxSink sink;
  base::ManualClock clock;
  chat::Hub hub(sink, clock, {}, &store);
  hub.connect(1);
  hub.receive(1, R"({"type":"join_room","room":"r","username":"bob"})");
  hub.receive(1, R"({"type":"chat_message","message":"y"})");
  EXPECT_TRUE(sink.of_type(1, "chat_message").empty());  // delivered once durable, not before
  hub.flush_history();
  const auto chats = sink.of_type(1, "chat_message");
  ASSERT_EQ(chats.size(), 1u);
  EXPECT_EQ(chats[0].at("seq"), 8);
  EXPECT_EQ(sink.of_type(1, "history")[0].at("messages").as_array().size(), 7u);
}

}  // namespace
}  // namespace roomcast::store
