// SqliteStore against a real SQLite file in a fresh temporary directory, alone and under a Hub.
#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <boost/json.hpp>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>
#include <tuple>

#include "chat/exchange.h"
#include "chat/hub.h"
#include "support/recording_sink.h"
#include "support/store_reports.h"

namespace roomcast::store {
namespace {

namespace json = boost::json;
using chat::StoredMessage;
using std::chrono::milliseconds;

// When the fixture's clock starts (every ManualClock starts there): messages are sent then
// unless a test says otherwise.
const std::int64_t kStartMs = base::ManualClock{}.unix_ms();

chat::Publication publication(std::string room, std::int64_t ts = kStartMs,
                              std::string client_id = "", chat::ConnectionId origin = 7) {
  return {room, ts, "user-1", "ann", "text", "name:ann", client_id, origin};
}

// A message too large for a page of its own: each one needs the database to grow, so a
// store limited with limit_growth_for_test fails to commit it as on a full disk.
chat::Publication large_publication(std::string room, std::string client_id) {
  auto p = publication(std::move(room), kStartMs, std::move(client_id));
  p.message.assign(3000, 'x');
  return p;
}

using test_support::StoreReports;

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
    return {file_, chat::Retention{size, ttl}, false};
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
  // Loads `room` and waits for the answer.
  chat::RoomHistory load(SqliteStore& store, StoreReports& reports, const std::string& room) {
    store.load(room);
    EXPECT_TRUE(reports.wait_for([&] { return reports.loaded.contains(room); }));
    return reports.loaded[room];
  }

  // The stores' clock: retention by age and numbering epochs are judged by it.
  base::ManualClock clock_;
  std::string dir_;
  std::filesystem::path file_;
};

TEST_F(SqliteStoreTest, PublicationsAreNumberedPerRoomCommittedAndReportedInOrder) {
  SqliteStore store(options(), clock_);
  StoreReports reports;
  store.set_listener(&reports);
  EXPECT_EQ(load(store, reports, "a").last_seq, 0u);
  for (int i = 0; i < 5; ++i) store.publish(publication("a"));
  store.publish(publication("b", kStartMs, "", chat::kNoConnection));
  store.flush();
  EXPECT_EQ(reports.seqs("a"), (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(reports.seqs("b"), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(reports.origins.front(), 7u);
  EXPECT_EQ(reports.origins.back(), chat::kNoConnection);
  EXPECT_EQ(store.committed(), 6u);

  const auto all = store.read("a", 0, 100);
  EXPECT_EQ(all.last_seq, 5u);
  EXPECT_EQ(seqs(all), (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(all.messages[2].username, "ann");
  EXPECT_EQ(seqs(store.read("a", 0, 2)), (std::vector<std::uint64_t>{4, 5}));  // the newest
  EXPECT_EQ(seqs(store.read("a", 3, 100)), (std::vector<std::uint64_t>{4, 5}));
  EXPECT_EQ(store.read("nowhere", 0, 100).last_seq, 0u);
  store.set_listener(nullptr);
}

TEST_F(SqliteStoreTest, ResentIdsAreReportedAsDuplicatesAndStoredOnce) {
  {
    SqliteStore store(options(), clock_);
    StoreReports reports;
    store.set_listener(&reports);
    store.publish(publication("r", kStartMs, "x"));
    store.publish(publication("r", kStartMs, "x"));  // in the same group, most likely
    store.publish(publication("r", kStartMs, "y"));
    store.flush();
    store.publish(publication("r", kStartMs, "x"));  // in a later group
    store.flush();
    EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(reports.duplicates,
              (std::vector<std::pair<std::string, std::uint64_t>>{{"x", 1}, {"x", 1}}));
    store.set_listener(nullptr);
  }
  SqliteStore reopened(options(), clock_);  // ids survive a restart
  StoreReports reports;
  reopened.set_listener(&reports);
  reopened.publish(publication("r", kStartMs, "y"));
  reopened.flush();
  EXPECT_EQ(reports.duplicates, (std::vector<std::pair<std::string, std::uint64_t>>{{"y", 2}}));
  reopened.set_listener(nullptr);
}

TEST_F(SqliteStoreTest, ResentIdsAreRecognisedWithinTheCountWindowAndAfterAnUnload) {
  SqliteStore store(options(3), clock_);
  StoreReports reports;
  store.set_listener(&reports);
  load(store, reports, "r");
  for (const char* id : {"a", "b", "c", "d", "e"}) store.publish(publication("r", kStartMs, id));
  store.flush();
  store.publish(publication("r", kStartMs, "b"));  // trimmed (3 kept): a new message
  store.publish(publication("r", kStartMs, "e"));
  store.flush();
  EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(reports.duplicates, (std::vector<std::pair<std::string, std::uint64_t>>{{"e", 5}}));
  // Unloaded and loaded again: the window is filled from the rows.
  store.unload("r");
  load(store, reports, "r");
  store.publish(publication("r", kStartMs, "d"));
  store.publish(publication("r", kStartMs, "c"));  // trimmed by seq 6
  store.publish(publication("r", kStartMs, "b"));  // seq 6's id
  store.flush();
  EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(reports.duplicates,
            (std::vector<std::pair<std::string, std::uint64_t>>{{"e", 5}, {"d", 4}, {"b", 6}}));
  store.set_listener(nullptr);
}

TEST_F(SqliteStoreTest, NumberingContinuesAcrossRestartsAndRetention) {
  {
    SqliteStore store(options(3), clock_);
    for (int i = 0; i < 10; ++i) store.publish(publication("r"));
  }  // the destructor commits what is queued
  EXPECT_EQ(rows_on_disk(), 3);
  SqliteStore reopened(options(3), clock_);
  StoreReports reports;
  reopened.set_listener(&reports);
  const auto h = load(reopened, reports, "r");
  EXPECT_EQ(h.last_seq, 10u);
  EXPECT_EQ(seqs(h), (std::vector<std::uint64_t>{8, 9, 10}));
  reopened.publish(publication("r"));
  reopened.flush();
  EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{11}));
  reopened.set_listener(nullptr);
}

// The conversations a user has, as the store lists them: (peer, peer's name, last seq).
std::vector<std::tuple<std::string, std::string, std::uint64_t>> listed(chat::HistoryStore& store,
                                                                        std::string_view user) {
  std::vector<std::tuple<std::string, std::string, std::uint64_t>> out;
  store.conversations(user, 100, [&](std::optional<std::vector<chat::ConversationSummary>> list) {
    ASSERT_TRUE(list.has_value());
    for (const auto& c : *list) out.emplace_back(c.peer_id, c.peer_username, c.last_seq);
  });
  return out;
}

TEST_F(SqliteStoreTest, ConversationsAreNumberedWithoutALoadAndListedPerUserAcrossARestart) {
  const std::string key = chat::conversation_key("user-1", "bob");
  {
    SqliteStore store(options(), clock_);
    StoreReports reports;
    store.set_listener(&reports);
    store.publish(publication(key));  // from user-1 ("ann") to bob
    auto answer = publication(key, kStartMs + 5);
    answer.user_id = "bob";
    answer.username = "bob";
    store.publish(answer);
    store.publish(publication(chat::conversation_key("user-1", "cid"), kStartMs + 1));
    store.flush();
    EXPECT_EQ(reports.seqs(key), (std::vector<std::uint64_t>{1, 2}));
    store.set_listener(nullptr);
  }
  SqliteStore reopened(options(), clock_);
  using Row = std::tuple<std::string, std::string, std::uint64_t>;
  // Newest first; a peer's name once they have written.
  EXPECT_EQ(listed(reopened, "user-1"), (std::vector<Row>{{"bob", "bob", 2}, {"cid", "", 1}}));
  EXPECT_EQ(listed(reopened, "bob"), (std::vector<Row>{{"user-1", "ann", 2}}));
  EXPECT_TRUE(listed(reopened, "cid-other").empty());
  EXPECT_EQ(seqs(reopened.read(key, 1, 100)), (std::vector<std::uint64_t>{2}));
  StoreReports reports;
  reopened.set_listener(&reports);
  reopened.publish(publication(key));
  reopened.flush();
  EXPECT_EQ(reports.seqs(key), (std::vector<std::uint64_t>{3}));
  reopened.set_listener(nullptr);
}

TEST_F(SqliteStoreTest, AppEventsKeepTheirTypeAndADatabaseFromBeforeThemGainsTheColumn) {
  // A database as servers before app events made it: no event_type column.
  std::filesystem::create_directories(file_.parent_path());
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file_.c_str(), &db), SQLITE_OK);
    const char* old_schema =
        "CREATE TABLE rooms (name TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, timestamp INTEGER NOT "
        "NULL, user_id TEXT NOT NULL, username TEXT NOT NULL, message TEXT NOT NULL, sender_key "
        "TEXT NOT NULL DEFAULT '', client_id TEXT NOT NULL DEFAULT '', PRIMARY KEY (room, seq)) "
        "WITHOUT ROWID;"
        "INSERT INTO rooms VALUES ('r', 1);"
        "INSERT INTO messages VALUES ('r', 1, 0, 'u', 'ann', 'old text', '', '');";
    ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  {
    SqliteStore store(options(), clock_);
    auto event = publication("r");
    event.message = R"({"change":"a"})";
    event.event_type = "document_change";
    store.publish(std::move(event));
  }
  SqliteStore reopened(options(), clock_);
  StoreReports reports;
  reopened.set_listener(&reports);
  const auto h = load(reopened, reports, "r");
  ASSERT_EQ(h.messages.size(), 2u);
  EXPECT_EQ(h.messages[0].event_type, "");  // the old row: a chat message
  EXPECT_EQ(h.messages[0].message, "old text");
  EXPECT_EQ(h.messages[1].seq, 2u);
  EXPECT_EQ(h.messages[1].event_type, "document_change");
  EXPECT_EQ(h.messages[1].message, R"({"change":"a"})");
  reopened.set_listener(nullptr);
}

TEST_F(SqliteStoreTest, NumberingSurvivesEveryRowGoingByAgeOrByACountOfNone) {
  // By age: every row of "r" expires, and with them the newest row that held its numbering.
  const auto aged = options(1000, milliseconds(60'000));
  {
    SqliteStore store(aged, clock_);
    for (int i = 0; i < 3; ++i) store.publish(publication("r", clock_.unix_ms()));
    store.publish(publication("s", clock_.unix_ms()));
  }
  clock_.advance(milliseconds(60'001));
  { SqliteStore expiring(aged, clock_); }  // its first turn deletes what expired
  EXPECT_EQ(rows_on_disk(), 0);
  {
    SqliteStore reopened(aged, clock_);
    StoreReports reports;
    reopened.set_listener(&reports);
    EXPECT_EQ(load(reopened, reports, "r").last_seq, 3u);
    reopened.publish(publication("r", clock_.unix_ms()));
    reopened.publish(publication("s", clock_.unix_ms()));
    reopened.flush();
    EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{4}));
    EXPECT_EQ(reports.seqs("s"), (std::vector<std::uint64_t>{2}));
    reopened.set_listener(nullptr);
  }
  // By count: a history of none keeps no row, and the numbering all the same.
  {
    SqliteStore none(options(0), clock_);
    for (int i = 0; i < 2; ++i) none.publish(publication("r", clock_.unix_ms()));
  }
  EXPECT_EQ(rows_on_disk(), 1);  // s's: only the rooms of a commit are trimmed
  SqliteStore reopened(options(0), clock_);
  EXPECT_EQ(reopened.read("r", 0, 100).last_seq, 6u);
}

TEST_F(SqliteStoreTest, ADatabaseOfTheFirstSchemaIsMigratedAndOneOfALaterVersionRefused) {
  // As servers before schema versions made it: a time index, and rooms.last_seq written by
  // every commit, so above every row left after retention by count.
  std::filesystem::create_directories(file_.parent_path());
  const auto sql = [&](const char* statements) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file_.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, statements, nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  sql("CREATE TABLE rooms (name TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, timestamp INTEGER NOT "
      "NULL, user_id TEXT NOT NULL, username TEXT NOT NULL, message TEXT NOT NULL, sender_key "
      "TEXT NOT NULL DEFAULT '', client_id TEXT NOT NULL DEFAULT '', event_type TEXT NOT NULL "
      "DEFAULT '', PRIMARY KEY (room, seq)) WITHOUT ROWID;"
      "CREATE INDEX messages_by_time ON messages (timestamp);"
      "CREATE INDEX messages_by_client_id ON messages (room, sender_key, client_id) "
      "WHERE client_id != '';"
      "INSERT INTO rooms VALUES ('r', 9);"
      "INSERT INTO messages VALUES ('r', 7, 0, 'u', 'ann', 'seven', '', '', '');"
      "INSERT INTO messages VALUES ('r', 8, 1700000000000, 'user-1', 'ann', 'eight', "
      "'name:ann', 'm8', '');");
  {
    SqliteStore store(options(), clock_);
    EXPECT_EQ(store.read("r", 0, 100).last_seq, 9u);
    StoreReports reports;
    store.set_listener(&reports);
    EXPECT_EQ(load(store, reports, "r").messages.size(), 2u);
    store.publish(publication("r"));
    store.publish(publication("r", kStartMs, "m8"));  // an id the old file holds: a resend
    store.flush();
    EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{10}));
    EXPECT_EQ(reports.duplicates, (std::vector<std::pair<std::string, std::uint64_t>>{{"m8", 8}}));
    store.set_listener(nullptr);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) "
                     "FROM sqlite_master WHERE type = 'index')",
                     -1, &stmt, nullptr);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(stmt, 0), 2);  // the schema's version now
  EXPECT_EQ(sqlite3_column_int64(stmt, 1), 0);  // the time and resend indexes are gone
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  // A file a newer roomcast wrote is refused, saying so, and left as it is.
  sql("PRAGMA user_version = 3");
  try {
    SqliteStore newer(options(), clock_);
    ADD_FAILURE() << "a database of schema version 3 was opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 3, made by a newer roomcast"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(SqliteStoreTest, RetentionByAgeIsJudgedOnTheStoresClockAndOldRowsAreDeleted) {
  const auto o = options(1000, milliseconds(60'000));
  {
    SqliteStore store(o, clock_);
    StoreReports reports;
    store.set_listener(&reports);
    store.publish(publication("r", clock_.unix_ms(), "old"));
    clock_.advance(milliseconds(30'000));
    store.publish(publication("r", clock_.unix_ms(), "kept"));
    store.flush();
    EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(seqs(store.read("r", 0, 100)), (std::vector<std::uint64_t>{1, 2}));
    // 60 s after the first: exactly at the cut-off it is kept (chat::Retention::keeps)...
    clock_.advance(milliseconds(30'000));
    EXPECT_EQ(seqs(store.read("r", 0, 100)), (std::vector<std::uint64_t>{1, 2}));
    // ...one millisecond later it is left out of reads and loads at once,
    clock_.advance(milliseconds(1));
    EXPECT_EQ(seqs(store.read("r", 0, 100)), (std::vector<std::uint64_t>{2}));
    EXPECT_EQ(seqs(load(store, reports, "r")), (std::vector<std::uint64_t>{2}));
    // and its id is forgotten with it, as in every store: a resend is a new message.
    store.publish(publication("r", clock_.unix_ms(), "old"));
    store.publish(publication("r", clock_.unix_ms(), "kept"));
    store.flush();
    EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{1, 2, 3}));
    EXPECT_EQ(reports.duplicates,
              (std::vector<std::pair<std::string, std::uint64_t>>{{"kept", 2}}));
    store.set_listener(nullptr);
  }
  // The expired row itself is deleted by the store: its first turn (due at once) does it.
  { SqliteStore reopened(o, clock_); }
  EXPECT_EQ(rows_on_disk(), 2);
  SqliteStore reopened(o, clock_);
  const auto history = reopened.read("r", 0, 100);
  EXPECT_EQ(history.last_seq, 3u);
  EXPECT_EQ(seqs(history), (std::vector<std::uint64_t>{2, 3}));
}

TEST_F(SqliteStoreTest, AFileThatCannotBeOpenedIsAClearError) {
  std::filesystem::create_directories(file_);  // a directory where the file should be
  try {
    SqliteStore store(options(), clock_);
    FAIL() << "opened a directory as a database";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(file_.string()), std::string::npos) << e.what();
  }
}

// --- storage faults ----------------------------------------------------------------------

// What a store or a Hub reports comes from the store's thread: wait (bounded) for it.
bool eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 2000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return done();
}

TEST_F(SqliteStoreTest, FailingCommitsShrinkAndLoadsDoNotWaitForThem) {
  auto o = options();
  o.refuse_after = std::chrono::hours(1);  // this test is about what happens before refusing
  SqliteStore store(o, clock_);
  StoreReports reports;
  store.set_listener(&reports);
  store.limit_growth_for_test(0);  // a full disk
  // Appended: GCC 12 at -O3 takes "m" + std::to_string(i) for an overlapping copy (-Wrestrict).
  for (int i = 0; i < 100; ++i)
    store.publish(large_publication("r", std::string("m").append(std::to_string(i))));
  ASSERT_TRUE(eventually([&] { return !store.health().ok; }));
  EXPECT_NE(store.health().reason.find("full"), std::string::npos) << store.health().reason;
  // What /metrics shows meanwhile: failures counted, the backlog, no commit yet.
  const StorageStats failing = store.stats();
  EXPECT_GT(failing.commit_failures, 0u);
  EXPECT_GT(failing.waiting, 0u);
  EXPECT_EQ(failing.last_commit_unix_ms, 0);
  EXPECT_GE(failing.commit_latency.count(), failing.commit_failures);  // failed ones are timed
  // Another room loads although the commit ahead of it keeps failing.
  EXPECT_EQ(load(store, reports, "elsewhere").last_seq, 0u);
  EXPECT_TRUE(reports.seqs("r").empty());  // nothing reported, so nothing acked
  // Room for a few messages, not for the whole group: smaller groups get through.
  store.limit_growth_for_test(8);
  ASSERT_TRUE(reports.wait_for([&] { return !reports.committed.empty(); }));
  // Then the disk has room again: all of it drains, in order, each once.
  store.limit_growth_for_test(SqliteStore::kNoPageLimit);
  ASSERT_TRUE(reports.wait_for([&] { return reports.committed.size() == 100; }));
  std::vector<std::uint64_t> expected(100);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(reports.seqs("r"), expected);
  EXPECT_TRUE(eventually([&] { return store.health().ok; }));
  EXPECT_EQ(rows_on_disk(), 100);
  // The count of what waits drops once the reports are out (flush() waits on it): after them.
  ASSERT_TRUE(eventually([&] { return store.stats().waiting == 0; }));
  const StorageStats drained = store.stats();
  EXPECT_EQ(drained.last_commit_unix_ms, clock_.unix_ms());
  EXPECT_GT(drained.commit_latency.count(), failing.commit_latency.count());
  store.set_listener(nullptr);
}

TEST_F(SqliteStoreTest, ACommittedMessageCarriesBackWhenItWasAccepted) {
  SqliteStore store(options(), clock_);
  StoreReports reports;
  store.set_listener(&reports);
  EXPECT_EQ(load(store, reports, "r").last_seq, 0u);
  auto p = publication("r");
  p.accepted_at = base::SteadyTime() + std::chrono::seconds(42);
  store.publish(p);
  ASSERT_TRUE(reports.wait_for([&] { return reports.committed.size() == 1; }));
  EXPECT_EQ(reports.committed[0].accepted_at, p.accepted_at);
  // Read back from history, a message has no acceptance time: it is not delivered again.
  EXPECT_EQ(store.read("r", 0, 10).messages.at(0).accepted_at, base::SteadyTime());
  store.set_listener(nullptr);
}

TEST_F(SqliteStoreTest, ALastingFaultRefusesWaitingAndNewMessagesAndRecovers) {
  auto o = options();
  o.refuse_after = milliseconds(300);
  SqliteStore store(o, clock_);
  StoreReports reports;
  reports.refusals_expected = true;
  reports.refusal_code = chat::error_code::kUnavailable;
  store.set_listener(&reports);
  store.limit_growth_for_test(0);
  for (int i = 0; i < 5; ++i) store.publish(large_publication("r", "m" + std::to_string(i)));
  // Each waiting message gets its answer once the fault outlasts the bound.
  ASSERT_TRUE(reports.wait_for([&] { return reports.refused.size() == 5; }));
  EXPECT_EQ(reports.refused[0].client_id, "m0");
  // A new one is answered too (refused at once, or after its own probe commit fails).
  store.publish(large_publication("r", "late"));
  ASSERT_TRUE(reports.wait_for([&] { return reports.refused.size() == 6; }));
  store.flush();  // returns: refusals count as answers
  EXPECT_TRUE(reports.committed.empty());
  EXPECT_EQ(rows_on_disk(), 0);
  // The disk is back: the next message is the probe that commits, numbered 1 (nothing of
  // the refused ones was stored).
  store.limit_growth_for_test(SqliteStore::kNoPageLimit);
  // Health recovers without any message: the store probes with a write of its own.
  EXPECT_TRUE(eventually([&] { return store.health().ok; }));
  // (A message that comes between two probes is still refused: resend, as a client would.)
  for (std::size_t i = 0; i < 50 && reports.committed.empty(); ++i) {
    store.publish(large_publication("r", "again" + std::to_string(i)));
    ASSERT_TRUE(reports.wait_for(
        [&] { return !reports.committed.empty() || reports.refused.size() > 6 + i; }));
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_FALSE(reports.committed.empty());
  EXPECT_EQ(reports.committed[0].seq, 1u);
  EXPECT_TRUE(eventually([&] { return store.health().ok; }));
  store.set_listener(nullptr);
}

TEST_F(SqliteStoreTest, ADatabaseDeletedUnderTheStoreIsDetectedAndARestartStartsANewEpoch) {
  auto o = options();
  o.identity_check_interval = milliseconds(20);
  const std::int64_t before_ms = clock_.unix_ms();
  {
    SqliteStore store(o, clock_);
    EXPECT_EQ(store.last_seq_floor(), 0u);  // a new data directory numbers from 1
    StoreReports reports;
    reports.refusals_expected = true;
    reports.refusal_code = chat::error_code::kUnavailable;
    reports.refusal_code = chat::error_code::kUnavailable;
    store.set_listener(&reports);
    for (int i = 0; i < 3; ++i) store.publish(publication("r"));
    store.flush();
    EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{1, 2, 3}));
    std::filesystem::remove(file_);
    ASSERT_TRUE(eventually([&] { return !store.health().ok; }));
    EXPECT_NE(store.health().reason.find("deleted or replaced"), std::string::npos);
    store.publish(publication("r", kStartMs, "after"));
    ASSERT_TRUE(reports.wait_for([&] { return reports.refused.size() == 1; }));
    EXPECT_EQ(reports.refused[0].client_id, "after");
    EXPECT_EQ(reports.committed.size(), 3u);
    store.set_listener(nullptr);
  }
  // The restart finds no database where one was: numbering continues from an epoch base
  // above anything issued before, never from 1 again.
  SqliteStore store(o, clock_);
  // Dated by the store's clock.
  EXPECT_EQ(store.last_seq_floor() + 1, chat::epoch_seq_base(3, before_ms));
  StoreReports reports;
  store.set_listener(&reports);
  EXPECT_EQ(load(store, reports, "r").last_seq, 0u);
  store.publish(publication("r"));
  store.publish(publication("other"));
  store.flush();
  EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{store.last_seq_floor() + 1}));
  EXPECT_EQ(reports.seqs("other"), (std::vector<std::uint64_t>{store.last_seq_floor() + 1}));
  EXPECT_TRUE(store.health().ok);
  store.set_listener(nullptr);
}

TEST_F(SqliteStoreTest, ADatabaseDeletedOrSwappedWhileStoppedIsANewEpochAFreshOneIsNot) {
  {
    SqliteStore store(options(), clock_);
    for (int i = 0; i < 5; ++i) store.publish(publication("r"));
  }
  const auto copy = std::filesystem::path(dir_) / "copy.db";
  std::filesystem::copy_file(file_, copy);
  {
    // Same database, reopened: no jump.
    SqliteStore store(options(), clock_);
    EXPECT_EQ(store.last_seq_floor(), 0u);
    store.publish(publication("r"));
  }
  std::filesystem::remove(file_);
  std::filesystem::remove(file_.string() + "-wal");
  std::uint64_t floor = 0;
  {
    SqliteStore store(options(), clock_);  // deleted while stopped: the id file remembers
    floor = store.last_seq_floor();
    EXPECT_EQ(floor + 1, chat::epoch_seq_base(6, clock_.unix_ms()));
    StoreReports reports;
    store.set_listener(&reports);
    store.publish(publication("r"));
    store.flush();
    EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{floor + 1}));
    store.set_listener(nullptr);
  }
  {
    SqliteStore store(options(),
                      clock_);  // the new database, reopened: its floor stays, no new jump
    EXPECT_EQ(store.last_seq_floor(), floor);
  }
  // An older copy put back in its place (a restored backup): its id is not the id file's.
  // Time has passed since the last epoch began, which the next epoch base counts on.
  clock_.advance(milliseconds(1));
  std::filesystem::remove(file_.string() + "-wal");
  std::filesystem::remove(file_.string() + "-shm");
  std::filesystem::copy_file(copy, file_, std::filesystem::copy_options::overwrite_existing);
  {
    SqliteStore store(options(), clock_);
    EXPECT_GT(store.last_seq_floor(), floor);
  }
  EXPECT_EQ(chat::epoch_seq_base(41, 0), 42u);
  EXPECT_EQ(chat::epoch_seq_base(41, 1000), 1'000'000u);
}

// --- under a Hub -----------------------------------------------------------------------

using InboxSink = test_support::RecordingSink;

// A Hub on a store as a server's worker has one: behind a Port of an Exchange, whose reports
// (from the storage thread) the test thread hands to the Hub (drain) while it waits for what
// it expects; rate limits off.
struct HubOnStore {
  explicit HubOnStore(SqliteStore& store)
      : exchange({1, [](chat::ConnectionId) { return std::size_t{0}; }, options().history_size},
                 store, nullptr),
        hub(sink, clock, options(), exchange.port(0)) {}
  static chat::HubOptions options() {
    chat::HubOptions o;
    o.message_rate.max_events = 0;
    return o;
  }
  bool eventually(const std::function<bool()>& done) {
    return ::roomcast::store::eventually([&] {
      exchange.port(0).drain();
      return done();
    });
  }
  InboxSink sink;
  base::ManualClock clock;
  chat::Exchange exchange;
  chat::Hub hub;
};

TEST_F(SqliteStoreTest, HubWaitsForTheRoomAcksOnceCommittedAndReloadsAForgottenRoom) {
  SqliteStore store(options(), clock_);
  HubOnStore on_store(store);
  auto& sink = on_store.sink;
  auto& hub = on_store.hub;
  hub.connect(1);
  // The join waits for the store to load the room; the messages after it wait behind it.
  hub.receive(1, R"({"type":"join_room","room":"r","username":"ann"})");
  for (int i = 1; i <= 3; ++i) {
    hub.receive(1, R"({"type":"chat_message","message":"hi","id":"id)" + std::to_string(i) + "\"}");
  }
  ASSERT_TRUE(on_store.eventually([&] { return sink.of_type(1, "ack").size() == 3; }));
  EXPECT_TRUE(sink.of_type(1, "error").empty());  // not "not in room": they waited their turn
  const auto acks = sink.of_type(1, "ack");
  EXPECT_EQ(acks[2].at("seq"), 3);
  EXPECT_EQ(acks[2].at("id"), "id3");
  EXPECT_EQ(sink.of_type(1, "chat_message").size(), 3u);

  // Everyone leaves; with nothing in flight the room is forgotten, and a join reads it back.
  hub.receive(1, R"({"type":"leave_room","room":"r"})");
  hub.tick();
  EXPECT_EQ(hub.stats().rooms, 0u);
  hub.connect(2);
  hub.receive(2, R"({"type":"join_room","room":"r","username":"ann","since":1})");
  ASSERT_TRUE(on_store.eventually([&] { return sink.of_type(2, "history").size() == 1; }));
  const auto history = sink.of_type(2, "history");
  EXPECT_TRUE(history[0].at("recovered").as_bool());
  EXPECT_EQ(history[0].at("messages").as_array().size(), 2u);
  // The store knows the ids (same user name) and continues the numbering.
  hub.receive(2, R"({"type":"chat_message","message":"hi","id":"id2"})");
  hub.receive(2, R"({"type":"chat_message","message":"new"})");
  ASSERT_TRUE(on_store.eventually([&] { return sink.of_type(2, "chat_message").size() == 1; }));
  const auto acks2 = sink.of_type(2, "ack");
  ASSERT_EQ(acks2.size(), 1u);
  EXPECT_EQ(acks2[0].at("seq"), 2);
  EXPECT_EQ(sink.of_type(2, "chat_message")[0].at("seq"), 4);
}

TEST_F(SqliteStoreTest, ANewHubOnTheSameFileContinuesTheNumbering) {
  {
    SqliteStore store(options(), clock_);
    HubOnStore on_store(store);
    auto& sink = on_store.sink;
    auto& hub = on_store.hub;
    hub.connect(1);
    hub.receive(1, R"({"type":"join_room","room":"r","username":"ann"})");
    for (int i = 0; i < 7; ++i) hub.receive(1, R"({"type":"chat_message","message":"x"})");
    ASSERT_TRUE(on_store.eventually([&] { return sink.of_type(1, "chat_message").size() == 7; }));
  }
  SqliteStore store(options(), clock_);
  HubOnStore on_store(store);
  auto& sink = on_store.sink;
  auto& hub = on_store.hub;
  hub.connect(1);
  hub.receive(1, R"({"type":"join_room","room":"r","username":"bob"})");
  hub.receive(1, R"({"type":"chat_message","message":"y"})");
  ASSERT_TRUE(on_store.eventually([&] { return sink.of_type(1, "chat_message").size() == 1; }));
  EXPECT_EQ(sink.of_type(1, "chat_message")[0].at("seq"), 8);
  EXPECT_EQ(sink.of_type(1, "history")[0].at("messages").as_array().size(), 7u);
}

TEST_F(SqliteStoreTest, HubAnswersRefusedMessagesWithUnavailableNamingRoomAndId) {
  auto o = options();
  o.refuse_after = milliseconds(200);
  SqliteStore store(o, clock_);
  HubOnStore on_store(store);
  auto& sink = on_store.sink;
  auto& hub = on_store.hub;
  hub.connect(1);
  hub.receive(1, R"({"type":"join_room","room":"r","username":"ann"})");
  ASSERT_TRUE(on_store.eventually([&] { return !sink.of_type(1, "system_message").empty(); }));
  store.limit_growth_for_test(0);
  std::string big;
  for (int i = 0; i < 500; ++i) big += "\u20ac";  // 1500 bytes: each needs a page of its own
  hub.receive(1, R"({"type":"chat_message","message":")" + big + R"(","id":"a"})");
  ASSERT_TRUE(on_store.eventually([&] { return sink.of_type(1, "error").size() == 1; }));
  const auto error = sink.of_type(1, "error")[0];
  EXPECT_EQ(error.at("code"), "unavailable");
  EXPECT_EQ(error.at("room"), "r");
  EXPECT_EQ(error.at("id"), "a");
  EXPECT_TRUE(sink.of_type(1, "ack").empty());
  EXPECT_TRUE(sink.of_type(1, "chat_message").empty());
  // A join of another room is answered meanwhile.
  hub.connect(2);
  hub.receive(2, R"({"type":"join_room","room":"s","username":"bob"})");
  EXPECT_TRUE(on_store.eventually([&] { return !sink.of_type(2, "system_message").empty(); }));
  // The disk is back: the resend is stored and acked.
  store.limit_growth_for_test(SqliteStore::kNoPageLimit);
  // (The first resend may still be refused, as the probe that finds the disk back is not
  // always it; each one is answered, so resend until one is acked.)
  for (std::size_t answers = 1; answers < 20 && sink.of_type(1, "ack").empty(); ++answers) {
    hub.receive(1, R"({"type":"chat_message","message":")" + big + R"(","id":"a"})");
    ASSERT_TRUE(on_store.eventually(
        [&] { return sink.of_type(1, "ack").size() + sink.of_type(1, "error").size() > answers; }));
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_EQ(sink.of_type(1, "ack").size(), 1u);
  EXPECT_EQ(sink.of_type(1, "ack")[0].at("seq"), 1);
}

}  // namespace
}  // namespace roomcast::store
