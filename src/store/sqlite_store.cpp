#include "store/sqlite_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <stdexcept>

namespace roomcast::store {
namespace {

// Between retries of a failed one-message commit (and of a failed load): the disk may come
// back, and a tight loop would only burn a core. Larger groups are retried at once, halved.
constexpr auto kRetryDelay = std::chrono::milliseconds(250);
// A fault that lasts is logged again this often (with counts), not at every retry.
constexpr auto kFaultLogInterval = std::chrono::seconds(10);
// What a refused sender reads (the details are in the log and in /healthz).
constexpr std::string_view kFailingReason =
    "history storage is failing (see the server's health); the message was not stored, "
    "send it again later";
constexpr std::string_view kLostReason =
    "the history database was deleted or replaced; the message was not stored, send it "
    "again after the server restarts";
// The id file's content after the running server saw its database vanish.
constexpr std::string_view kLostMarker = "lost";
// Age-based expiry runs every max_age / 60, within these bounds (reads hide expired rows at
// once: the pass only frees their space), and deletes at most this many rows of a room per
// transaction, so a large backlog of old messages never holds up a commit for long.
constexpr auto kMinExpiryInterval = std::chrono::seconds(1);
constexpr auto kMaxExpiryInterval = std::chrono::seconds(60);
constexpr int kExpiryRowsPerStep = 500;
// The resend windows' ids in all (ResendWindows): at most about 64 MiB; past it, the windows
// of the rooms touched longest ago are dropped and filled again from their rows when next
// touched. A thousand rooms' full windows at the default --history-size.
constexpr std::size_t kMaxResendIds = std::size_t{1} << 20;
// How long flush() (graceful shutdown) waits for the storage thread.
constexpr auto kFlushTimeout = std::chrono::seconds(10);

// The schema's version (PRAGMA user_version). 0: made before versions were kept (a time
// index on messages, and rooms.last_seq written by every commit). 1: no time index, and a
// room's last seq is the larger of its newest row and rooms.last_seq, which is written only
// where rows that may hold it are deleted (see SqliteStore). 2: no resend index (ids are
// looked up in ResendWindows, then on the row). A file of a later version, made by a newer
// roomcast, is refused at start rather than misread.
constexpr int kSchemaVersion = 2;

// Rooms: the numbering a room's rows no longer show (its newest deleted by retention). A
// room's last seq is max(rooms.last_seq, max(messages.seq)): see kLastSeqSql.
constexpr const char* kSchema = R"sql(
  CREATE TABLE IF NOT EXISTS rooms (
    name     TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS messages (
    room       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    timestamp  INTEGER NOT NULL,
    user_id    TEXT NOT NULL,
    username   TEXT NOT NULL,
    message    TEXT NOT NULL,
    sender_key TEXT NOT NULL DEFAULT '',
    client_id  TEXT NOT NULL DEFAULT '',
    event_type TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (room, seq)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS conversations (
    user_id        TEXT NOT NULL,
    peer_id        TEXT NOT NULL,
    peer_username  TEXT NOT NULL DEFAULT '',
    last_seq       INTEGER NOT NULL,
    last_timestamp INTEGER NOT NULL,
    PRIMARY KEY (user_id, peer_id)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value NOT NULL
  ) WITHOUT ROWID;
)sql";

// A room's last seq (?1: its name): its newest row, or what rooms keeps of rows deleted.
constexpr const char* kLastSeqSql =
    "SELECT max(coalesce((SELECT last_seq FROM rooms WHERE name = ?1), 0), "
    "coalesce((SELECT max(seq) FROM messages WHERE room = ?1), 0))";
// Writes a room's last seq (?1) into rooms before rows that may hold it are deleted.
constexpr const char* kKeepLastSeqSql =
    "INSERT INTO rooms (name, last_seq) VALUES (?1, ?2) "
    "ON CONFLICT (name) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)";

// One prepared statement, finalized on scope exit; step/reset/bind in the caller.
class Statement {
 public:
  // `persistent`: kept and reused for the store's life (SQLite then allocates it apart from
  // its lookaside memory).
  Statement(sqlite3* db, const char* sql, bool persistent = false) : db_(db) {
    const unsigned flags = persistent ? SQLITE_PREPARE_PERSISTENT : 0;
    if (sqlite3_prepare_v3(db, sql, -1, flags, &stmt_, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("SQLite: cannot prepare statement: ") +
                               sqlite3_errmsg(db));
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& bind(int index, std::int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  // Steps a statement that returns no row, then resets it; throws with SQLite's message.
  void run() {
    const int rc = sqlite3_step(stmt_);
    reset();
    if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db_));
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  std::string text(int column) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return p == nullptr
               ? std::string()
               : std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : sqlite3_errmsg(db);
    sqlite3_free(error);
    throw std::runtime_error("SQLite: " + message);
  }
}

sqlite3* open_database(const std::filesystem::path& file) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    throw std::runtime_error("cannot open history database " + file.string() + ": " + message);
  }
  // A checkpoint or a long read can hold a lock briefly; wait rather than fail.
  sqlite3_busy_timeout(db, 5000);
  return db;
}

std::int64_t as_int(std::uint64_t v) {
  return static_cast<std::int64_t>(v);
}

std::filesystem::path id_file_of(const std::filesystem::path& database) {
  return database.string() + "-id";
}

std::optional<std::string> read_id_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  std::string id;
  std::getline(in, id);
  return id;
}

// Replaces the id file durably (write, fsync, rename), so a crash leaves the old or the new.
void write_id_file(const std::filesystem::path& file, std::string_view content) {
  const std::string temporary = file.string() + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = fd >= 0;
  const std::string line = std::string(content) + "\n";
  if (ok) ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  if (ok) ok = ::fsync(fd) == 0;
  const int saved = errno;
  if (fd >= 0) ::close(fd);
  if (ok) ok = ::rename(temporary.c_str(), file.c_str()) == 0;
  if (!ok) {
    throw std::runtime_error("cannot write " + file.string() + ": " +
                             std::strerror(ok ? errno : saved));
  }
}

std::string random_id() {
  std::random_device device;
  std::string id;
  for (int i = 0; i < 4; ++i) id += fmt::format("{:08x}", device());
  return id;
}

// Databases made before app events have no event_type column: add it (every row they hold
// is a chat message, which the column's default says). Idempotent.
void add_event_type_column(sqlite3* db) {
  Statement columns(db, "SELECT 1 FROM pragma_table_info('messages') WHERE name = 'event_type'");
  if (columns.step() == SQLITE_ROW) return;
  exec(db, "ALTER TABLE messages ADD COLUMN event_type TEXT NOT NULL DEFAULT ''");
}

// Brings a database of an earlier schema version to kSchemaVersion, or refuses one of a later
// version (a newer roomcast's) with a message that says so.
void migrate(sqlite3* db, const std::filesystem::path& file) {
  std::int64_t found = 0;
  {
    // Finalized before the migration: a statement still active would lock the schema.
    Statement version(db, "PRAGMA user_version");
    if (version.step() == SQLITE_ROW) found = version.integer(0);
  }
  if (found > kSchemaVersion) {
    throw std::runtime_error(fmt::format(
        "history database {} has schema version {}, made by a newer roomcast; this one reads "
        "versions up to {} (run the newer version, or move the data directory aside)",
        file.string(), found, kSchemaVersion));
  }
  add_event_type_column(db);
  if (found == kSchemaVersion) return;
  // Version 0 -> 1: the time index goes (age-based expiry walks each room's oldest rows by
  // the primary key instead). rooms.last_seq was kept up to date by every commit then, so it
  // holds as the floor it is now. 1 -> 2: the resend index goes (ResendWindows).
  exec(db, "BEGIN IMMEDIATE");
  try {
    exec(db, "DROP INDEX IF EXISTS messages_by_time");
    exec(db, "DROP INDEX IF EXISTS messages_by_client_id");
    exec(db, fmt::format("PRAGMA user_version = {}", kSchemaVersion).c_str());
    exec(db, "COMMIT");
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::optional<std::string> meta_text(sqlite3* db, std::string_view key) {
  Statement get(db, "SELECT value FROM meta WHERE key = ?1");
  get.bind(1, key);
  if (get.step() != SQLITE_ROW) return std::nullopt;
  return get.text(0);
}

void set_meta(sqlite3* db, std::string_view key, std::string_view text) {
  Statement set(db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)");
  set.bind(1, key).bind(2, text);
  if (set.step() != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db));
}

void set_meta(sqlite3* db, std::string_view key, std::int64_t value) {
  Statement set(db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)");
  set.bind(1, key).bind(2, value);
  if (set.step() != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db));
}

}  // namespace

// Preparing a statement costs more than running it once (parsing, planning): the commit path
// runs these for every group, so they are prepared with the store and kept.
struct SqliteStore::Statements {
  explicit Statements(sqlite3* db)
      : begin(db, "BEGIN IMMEDIATE", true),
        commit(db, "COMMIT", true),
        // A candidate of the room's resend window, confirmed on its row (one primary-key
        // seek), with the retention bound.
        is_resend(db,
                  "SELECT 1 FROM messages WHERE room = ?1 AND seq = ?2 AND sender_key = ?3 AND "
                  "client_id = ?4 AND timestamp >= ?5",
                  true),
        // A room's window, when first touched: its kept rows with an id, oldest first (the
        // primary key's room prefix).
        ids_of_room(db,
                    "SELECT seq, timestamp, sender_key, client_id FROM messages WHERE room = ?1 "
                    "AND client_id != '' AND timestamp >= ?2 ORDER BY seq",
                    true),
        insert(db,
               "INSERT INTO messages "
               "(room, seq, timestamp, user_id, username, message, sender_key, client_id, "
               "event_type) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
               true),
        upsert(db, kKeepLastSeqSql, true),
        trim(db, "DELETE FROM messages WHERE room = ?1 AND seq <= ?2", true),
        last_seq(db, kLastSeqSql, true),
        conversation(db,
                     "INSERT INTO conversations "
                     "(user_id, peer_id, peer_username, last_seq, last_timestamp) "
                     "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user_id, peer_id) DO UPDATE SET "
                     "last_seq = excluded.last_seq, last_timestamp = excluded.last_timestamp, "
                     "peer_username = CASE WHEN excluded.peer_username != '' "
                     "THEN excluded.peer_username ELSE peer_username END "
                     "WHERE excluded.last_seq > last_seq",
                     true) {}

  // After a failure part-way: no statement may stay active (bound to the dead transaction).
  void reset_all() {
    for (Statement* s : {&begin, &commit, &is_resend, &ids_of_room, &insert, &upsert, &trim,
                         &last_seq, &conversation}) {
      s->reset();
    }
  }

  Statement begin;
  Statement commit;
  Statement is_resend;  // a resend within the retained history
  Statement ids_of_room;
  Statement insert;
  Statement upsert;  // the room's last seq, before a trim that deletes its newest row
  Statement trim;  // retention by count
  Statement last_seq;
  Statement conversation;  // a user's entry for one of their conversations
};

SqliteStore::SqliteStore(SqliteStoreOptions options, const base::Clock& clock)
    : options_(std::move(options)), clock_(clock), resend_windows_(kMaxResendIds) {
  if (options_.file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.file.parent_path(), ec);
    if (ec) {
      throw std::runtime_error("cannot create data directory " +
                               options_.file.parent_path().string() + ": " + ec.message());
    }
  }
  try {
    open_and_check_epoch();
    statements_ = std::make_unique<Statements>(writer_);
    reader_ = open_database(options_.file);
  } catch (...) {
    statements_.reset();
    sqlite3_close(writer_);
    sqlite3_close(reader_);
    throw;
  }
  thread_ = std::thread([this] { run(); });
}

void SqliteStore::open_and_check_epoch() {
  const std::filesystem::path& file = options_.file;
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  const bool existed = !ec && size > 0;
  const std::optional<std::string> id_file = read_id_file(id_file_of(file));
  if (!existed) {
    // A WAL or shared-memory file without its database belongs to a file that is gone:
    // it must not be applied to the new one.
    std::filesystem::remove(file.string() + "-wal", ec);
    std::filesystem::remove(file.string() + "-shm", ec);
  }
  writer_ = open_database(file);
  exec(writer_, "PRAGMA journal_mode=WAL");
  exec(writer_,
       options_.sync_every_commit ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  exec(writer_, kSchema);
  migrate(writer_, file);

  std::optional<std::string> id = meta_text(writer_, "id");
  if (const auto floor = meta_text(writer_, "last_seq_floor")) {
    last_seq_floor_ = std::stoull(*floor);
  }
  // A database is a re-creation if one existed here before (the id file says so) and this
  // is not it: clients may hold seqs of the lost one, so numbering must not restart.
  std::string why;
  if (!existed && id_file) {
    why = "is new, but " + id_file_of(file).string() + " says a database existed before";
  } else if (id_file && *id_file == kLostMarker) {
    why = "replaces one this server saw deleted or replaced while it ran";
  } else if (id_file && id && *id_file != *id) {
    why = "is not the database " + id_file_of(file).string() + " names (restored or copied?)";
  }
  bool changed = !id.has_value();
  if (!why.empty()) {
    Statement highest(writer_,
                      "SELECT max(coalesce((SELECT max(last_seq) FROM rooms), 0), "
                      "coalesce((SELECT max(seq) FROM messages), 0))");
    const auto known = highest.step() == SQLITE_ROW ? highest.integer(0) : 0;
    const std::uint64_t base = chat::epoch_seq_base(
        std::max(static_cast<std::uint64_t>(known), last_seq_floor_), clock_.unix_ms());
    last_seq_floor_ = base - 1;
    spdlog::warn(
        "history database {} {}: every room continues from seq {} so that no seq a client "
        "holds names another message (clients resuming an older `since` get recovered:false)",
        file.string(), why, base);
    changed = true;
  }
  if (changed) {
    id = random_id();
    exec(writer_, "BEGIN IMMEDIATE");
    try {
      set_meta(writer_, "id", *id);
      set_meta(writer_, "last_seq_floor", as_int(last_seq_floor_));
      exec(writer_, "COMMIT");
    } catch (...) {
      sqlite3_exec(writer_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  id_ = *id;
  if (id_file != id_) write_id_file(id_file_of(file), id_);
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    throw std::runtime_error("cannot stat " + file.string() + ": " + std::strerror(errno));
  }
  identity_ = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
}

SqliteStore::~SqliteStore() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  thread_.join();
  statements_.reset();  // a connection with statements left does not close
  sqlite3_close(reader_);
  sqlite3_close(writer_);
}

void SqliteStore::set_listener(Listener* listener) {
  std::lock_guard lock(listener_mutex_);
  listener_ = listener;
}

void SqliteStore::publish(chat::Publication publication) {
  bool was_empty = false;
  {
    std::lock_guard lock(mutex_);
    was_empty = queue_.empty();
    queue_.push_back(std::move(publication));
    ++published_count_;
  }
  // One wake-up per batch: while the queue is not empty the storage thread has been woken
  // already, and it looks at the queue (under the lock) before it waits again.
  if (was_empty) work_.notify_one();
}

void SqliteStore::load(std::string room) {
  {
    std::lock_guard lock(mutex_);
    loads_.push_back(std::move(room));
  }
  work_.notify_one();
}

void SqliteStore::unload(std::string room) {
  std::lock_guard lock(mutex_);
  unloads_.push_back(std::move(room));  // no hurry: done with the next batch
}

void SqliteStore::flush() {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = published_count_;
  if (!committed_.wait_for(lock, kFlushTimeout, [&] { return committed_count_ >= target; })) {
    // Only a store that can neither commit nor refuse (a hung disk) gets here: those messages
    // were never delivered or acknowledged, so clients still hold them.
    spdlog::error("history: {} messages still not durable after {} s; giving up waiting",
                  target - committed_count_, kFlushTimeout.count());
  }
}

std::uint64_t SqliteStore::committed() const {
  std::lock_guard lock(mutex_);
  return committed_count_;
}

StorageStats SqliteStore::stats() const {
  StorageStats out;
  out.commit_failures = commit_failures_total_.load(std::memory_order_relaxed);
  out.last_commit_unix_ms = last_commit_unix_ms_.load(std::memory_order_relaxed);
  out.commit_latency = commit_latency_.values();
  std::lock_guard lock(mutex_);
  out.waiting = published_count_ - committed_count_;
  return out;
}

StorageHealth SqliteStore::health() const {
  std::lock_guard lock(mutex_);
  if (lost_) {
    return {false, "history database " + options_.file.string() +
                       " was deleted or replaced while the server ran; messages are refused "
                       "until a restart"};
  }
  if (failing_since_) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::steady_clock::now() - *failing_since_)
                             .count();
    return {false, fmt::format("history commits failing for {} s: {}", seconds, last_error_)};
  }
  return {};
}

void SqliteStore::limit_growth_for_test(std::uint64_t extra_pages) {
  {
    std::lock_guard lock(mutex_);
    page_limit_ = extra_pages;
  }
  work_.notify_one();
}

void SqliteStore::count_reported(std::size_t n) {
  {
    std::lock_guard lock(mutex_);
    committed_count_ += n;
  }
  committed_.notify_all();
}

void SqliteStore::read(std::string_view room, std::uint64_t after_seq, std::size_t limit,
                       ReadDone done) {
  std::optional<chat::RoomHistory> history;
  try {
    history = read(room, after_seq, limit);
  } catch (const std::runtime_error& e) {
    spdlog::error("reading the history of room {}: {}", room, e.what());
  }
  done(std::move(history));
}

void SqliteStore::conversations(std::string_view user_id, std::size_t limit,
                                ConversationsDone done) {
  std::optional<std::vector<chat::ConversationSummary>> list;
  try {
    std::lock_guard lock(reader_mutex_);
    Statement rows(reader_,
                   "SELECT peer_id, peer_username, last_seq, last_timestamp FROM conversations "
                   "WHERE user_id = ?1 ORDER BY last_timestamp DESC, peer_id LIMIT ?2");
    rows.bind(1, user_id).bind(2, as_int(limit));
    list.emplace();
    while (rows.step() == SQLITE_ROW) {
      list->push_back({rows.text(0), rows.text(1), static_cast<std::uint64_t>(rows.integer(2)),
                       rows.integer(3)});
    }
  } catch (const std::runtime_error& e) {
    spdlog::error("reading the conversations of user {}: {}", user_id, e.what());
    list.reset();
  }
  done(std::move(list));
}

chat::RoomHistory SqliteStore::read(std::string_view room, std::uint64_t after_seq,
                                    std::size_t limit) {
  chat::RoomHistory history;
  std::lock_guard lock(reader_mutex_);
  // One read transaction, so last_seq and the messages are one consistent snapshot.
  exec(reader_, "BEGIN");
  try {
    Statement last(reader_, kLastSeqSql);
    last.bind(1, room);
    if (last.step() == SQLITE_ROW) history.last_seq = static_cast<std::uint64_t>(last.integer(0));

    Statement rows(reader_,
                   "SELECT seq, timestamp, user_id, username, message, sender_key, client_id, "
                   "event_type "
                   "FROM messages WHERE room = ?1 AND seq > ?2 AND timestamp >= ?3 "
                   "ORDER BY seq DESC LIMIT ?4");
    // Rows past the age are hidden at once; expire_old_messages() deletes them later.
    const std::int64_t oldest_kept = options_.retention.oldest_kept_ms(clock_.unix_ms());
    rows.bind(1, room).bind(2, as_int(after_seq)).bind(3, oldest_kept);
    rows.bind(4, as_int(limit));
    while (rows.step() == SQLITE_ROW) {
      history.messages.push_back({std::string(room),
                                  static_cast<std::uint64_t>(rows.integer(0)),
                                  rows.integer(1),
                                  rows.text(2),
                                  rows.text(3),
                                  rows.text(4),
                                  rows.text(5),
                                  rows.text(6),
                                  {},
                                  rows.text(7)});
    }
  } catch (...) {
    exec(reader_, "ROLLBACK");
    throw;
  }
  exec(reader_, "COMMIT");
  std::reverse(history.messages.begin(), history.messages.end());
  return history;
}

void SqliteStore::run() {
  std::deque<chat::Publication> pending;  // oldest first; the front is committed first
  std::vector<std::string> loads;
  std::vector<std::string> unloads;
  const auto start = std::chrono::steady_clock::now();
  auto next_expiry = start;
  auto next_identity_check = start + options_.identity_check_interval;
  auto load_retry_at = start;
  for (;;) {
    bool stopping = false;
    std::optional<std::uint64_t> page_limit;
    {
      std::unique_lock lock(mutex_);
      // Wake for messages or loads, to stop, or when a retry, an identity check or the next
      // age-based expiry step is due.
      auto wake = next_identity_check;
      if (options_.retention.max_age.count() > 0) wake = std::min(wake, next_expiry);
      if (!pending.empty() || failing_since_) wake = std::min(wake, retry_at_);
      if (!loads.empty()) wake = std::min(wake, load_retry_at);
      work_.wait_until(lock, wake, [&] {
        return !queue_.empty() || !loads_.empty() || stopping_ || page_limit_.has_value();
      });
      stopping = stopping_;
      // Group commit: everything that queued up while the last commit ran goes in one
      // transaction, so the cost of a commit (an fsync) is shared by the whole group.
      for (auto& p : queue_) pending.push_back(std::move(p));
      queue_.clear();
      loads.insert(loads.end(), std::make_move_iterator(loads_.begin()),
                   std::make_move_iterator(loads_.end()));
      loads_.clear();
      unloads.swap(unloads_);
      page_limit.swap(page_limit_);
    }
    if (page_limit) {
      std::uint64_t pages = 4294967294;  // SQLite's largest
      if (*page_limit != kNoPageLimit) {
        Statement count(writer_, "PRAGMA page_count");
        pages = (count.step() == SQLITE_ROW ? static_cast<std::uint64_t>(count.integer(0)) : 0) +
                *page_limit;
      }
      exec(writer_, fmt::format("PRAGMA max_page_count={}", pages).c_str());
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_identity_check) {
      check_identity();
      next_identity_check = now + options_.identity_check_interval;
    }
    // A room is unloaded only once nothing of it is in flight, so its publications are all
    // behind us; a load of it queued later is answered below, from the file.
    for (const auto& room : unloads) {
      last_seq_.erase(room);
      resend_windows_.drop(room);
    }
    unloads.clear();
    // Loads first, and never behind a failing commit: a room being loaded has nothing in
    // `pending` (the Hub publishes only to loaded rooms, and unloads a room only once all
    // its messages were reported), so the file holds all of it.
    if (!loads.empty() && now >= load_retry_at) {
      answer_loads(loads);
      if (!loads.empty()) load_retry_at = now + kRetryDelay;
    }
    // Age-based expiry before this turn's commits, so that a store's first turn (due at once)
    // deletes what expired while it was closed before it does anything else.
    if (options_.retention.max_age.count() > 0 && now >= next_expiry && !failing_since_) {
      expire_old_messages();
      next_expiry = std::chrono::steady_clock::now() +
                    std::clamp<std::chrono::steady_clock::duration>(
                        options_.retention.max_age / 60, kMinExpiryInterval, kMaxExpiryInterval);
    }
    if (lost_) {
      refuse(pending, kLostReason);
    } else if (!pending.empty()) {
      commit_some(pending);
    } else if (failing_since_ && std::chrono::steady_clock::now() >= retry_at_) {
      probe();  // no message to retry: a write of its own tells when the disk is back
    }
    // Stopping: once everything is committed or refused (a failing disk refuses it all once
    // the fault outlasts refuse_after). Loads still failing are dropped: nobody waits.
    if (stopping && pending.empty()) return;
  }
}

void SqliteStore::answer_loads(std::vector<std::string>& loads) {
  std::vector<std::string> failed;
  for (auto& room : loads) {
    try {
      chat::RoomHistory history = read(room, 0, options_.retention.max_messages);
      last_seq_[room] = std::max(history.last_seq, last_seq_floor_);
      std::lock_guard lock(listener_mutex_);
      if (listener_ != nullptr) listener_->on_loaded(room, std::move(history));
    } catch (const std::exception& e) {
      // The joins wait for this room; try again rather than leave them waiting for good.
      spdlog::error("history: cannot load room '{}' ({}); retrying", room, e.what());
      failed.push_back(std::move(room));
    }
  }
  loads.swap(failed);
}

void SqliteStore::commit_some(std::deque<chat::Publication>& pending) {
  const auto now = std::chrono::steady_clock::now();
  const bool refusing = failing_since_ && now - *failing_since_ >= options_.refuse_after;
  if (now < retry_at_) {
    // Between retries of a lasting fault, new messages are answered at once.
    if (refusing) refuse(pending, kFailingReason);
    return;
  }
  // A lasting fault: one message probes whether the disk is back.
  const std::size_t n = refusing ? 1 : std::min(pending.size(), group_limit_);
  std::vector<chat::Publication> batch(std::make_move_iterator(pending.begin()),
                                       std::make_move_iterator(pending.begin() + n));
  pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n));
  std::vector<Outcome> outcomes;
  std::string error;
  const bool committed = commit(batch, outcomes, error);
  commit_latency_.record(std::chrono::steady_clock::now() - now);
  if (committed) {
    last_commit_unix_ms_.store(clock_.unix_ms(), std::memory_order_relaxed);
    // Committed to the file we opened; if that file has left its path meanwhile, the rows
    // are in a file nobody will read again: refused, not acked.
    check_identity();
    if (lost_) {
      std::deque<chat::Publication> lost(std::make_move_iterator(batch.begin()),
                                         std::make_move_iterator(batch.end()));
      refuse(lost, kLostReason);
      return;
    }
    report(batch, outcomes);
    count_reported(n);
    commits_succeed(now);
    return;
  }
  for (auto it = batch.rbegin(); it != batch.rend(); ++it) pending.push_front(std::move(*it));
  ++failed_commits_;
  commit_failures_total_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    if (!failing_since_) failing_since_ = now;
    last_error_ = error;
  }
  // Smaller groups need less space: halve down to one message, retrying at once until then.
  group_limit_ = std::max<std::size_t>(1, n / 2);
  retry_at_ = n > 1 ? now : now + kRetryDelay;
  const bool refuse_now = now - *failing_since_ >= options_.refuse_after;
  if (now >= next_fault_log_) {
    spdlog::error(
        "history: commit of {} messages failed ({}); {} failed commits in {} ms, {} messages "
        "waiting, next group at most {}{}",
        n, error, failed_commits_,
        std::chrono::duration_cast<std::chrono::milliseconds>(now - *failing_since_).count(),
        pending.size(), group_limit_,
        refuse_now ? "; refusing messages (unavailable) while it lasts" : "");
    next_fault_log_ = now + kFaultLogInterval;
  }
  if (refuse_now) refuse(pending, kFailingReason);
}

void SqliteStore::commits_succeed(std::chrono::steady_clock::time_point now) {
  if (failing_since_) {
    spdlog::info(
        "history: commits succeed again after {} failed in {} ms", failed_commits_,
        std::chrono::duration_cast<std::chrono::milliseconds>(now - *failing_since_).count());
    std::lock_guard lock(mutex_);
    failing_since_.reset();
    last_error_.clear();
  }
  failed_commits_ = 0;
  next_fault_log_ = {};
  group_limit_ = group_limit_ > SIZE_MAX / 2 ? SIZE_MAX : group_limit_ * 2;
  retry_at_ = {};
}

void SqliteStore::probe() {
  const auto now = std::chrono::steady_clock::now();
  try {
    exec(writer_, "BEGIN IMMEDIATE");
    set_meta(writer_, "probe", clock_.unix_ms());
    exec(writer_, "COMMIT");
  } catch (const std::exception& e) {
    sqlite3_exec(writer_, "ROLLBACK", nullptr, nullptr, nullptr);
    retry_at_ = now + kRetryDelay;
    std::lock_guard lock(mutex_);
    last_error_ = e.what();
    return;
  }
  commits_succeed(now);
}

void SqliteStore::refuse(std::deque<chat::Publication>& pending, std::string_view reason) {
  if (pending.empty()) return;
  {
    std::lock_guard lock(listener_mutex_);
    if (listener_ != nullptr) {
      for (const auto& p : pending)
        listener_->on_refused(p, reason, chat::error_code::kUnavailable);
    }
  }
  count_reported(pending.size());
  pending.clear();
}

void SqliteStore::check_identity() {
  if (lost_) return;
  struct stat st {};
  std::string what;
  if (::stat(options_.file.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) return;  // cannot tell; look again later
    what = "was deleted";
  } else if (static_cast<std::uint64_t>(st.st_dev) != identity_.device ||
             static_cast<std::uint64_t>(st.st_ino) != identity_.inode) {
    what = "was replaced by another file";
  } else {
    return;
  }
  {
    std::lock_guard lock(mutex_);
    lost_ = true;
  }
  spdlog::error(
      "history database {} {} while the server ran: refusing every message (unavailable) "
      "until a restart; the restart numbers every room from a new epoch so that no seq is "
      "reused",
      options_.file.string(), what);
  // Tell the next start that the database it finds (new or put back) is not the one this
  // server numbered with, also if the whole data directory went.
  try {
    std::error_code ec;
    std::filesystem::create_directories(options_.file.parent_path(), ec);
    write_id_file(id_file_of(options_.file), kLostMarker);
  } catch (const std::exception& e) {
    spdlog::error("history: {}; a restart may not know the database was lost", e.what());
  }
}

std::uint64_t& SqliteStore::last_seq_of(const std::string& room) {
  auto [it, inserted] = last_seq_.try_emplace(room, last_seq_floor_);
  if (inserted) {
    Statement& last = statements_->last_seq;
    last.bind(1, room);
    if (last.step() == SQLITE_ROW) {
      it->second = std::max(static_cast<std::uint64_t>(last.integer(0)), last_seq_floor_);
    }
    last.reset();
  }
  return it->second;
}

std::optional<std::uint64_t> SqliteStore::find_resend(const chat::Publication& p,
                                                      std::int64_t oldest_kept) {
  Statements& st = *statements_;
  if (!resend_windows_.holds(p.room)) {
    // Filled from the rows (this transaction's included) the first time the room is touched.
    resend_windows_.start(p.room);
    st.ids_of_room.bind(1, p.room).bind(2, oldest_kept);
    int stepped = SQLITE_ROW;
    while ((stepped = st.ids_of_room.step()) == SQLITE_ROW) {
      const std::string sender_key = st.ids_of_room.text(2);
      const std::string client_id = st.ids_of_room.text(3);
      resend_windows_.add(p.room,
                          {static_cast<std::uint64_t>(st.ids_of_room.integer(0)),
                           st.ids_of_room.integer(1), sender_key, client_id},
                          oldest_kept);
    }
    // A window missing rows would take a resend for a new message: fail the commit instead
    // (rolled back, every window dropped).
    if (stepped != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(writer_));
    st.ids_of_room.reset();
  }
  for (const std::uint64_t seq :
       resend_windows_.candidates(p.room, p.sender_key, p.client_id, oldest_kept)) {
    st.is_resend.bind(1, p.room).bind(2, as_int(seq)).bind(3, p.sender_key);
    st.is_resend.bind(4, p.client_id).bind(5, oldest_kept);
    const int stepped = st.is_resend.step();
    if (stepped != SQLITE_ROW && stepped != SQLITE_DONE) {
      throw std::runtime_error(sqlite3_errmsg(writer_));
    }
    st.is_resend.reset();
    if (stepped == SQLITE_ROW) return seq;
  }
  return std::nullopt;
}

bool SqliteStore::commit(const std::vector<chat::Publication>& batch,
                         std::vector<Outcome>& outcomes, std::string& error) {
  Statements& st = *statements_;
  try {
    st.begin.run();
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
  try {
    // A resend of a message retention still keeps (by count: the trim below; by age: past
    // the cut-off even if expire_old_messages() has not deleted it yet).
    const std::int64_t oldest_kept = options_.retention.oldest_kept_ms(clock_.unix_ms());
    outcomes.assign(batch.size(), {});
    std::map<std::string_view, std::uint64_t> last_seq_by_room;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const chat::Publication& p = batch[i];
      if (!p.client_id.empty()) {
        // A resend within the retained history (this transaction's rows included).
        if (const auto seq = find_resend(p, oldest_kept)) {
          outcomes[i] = {*seq, true};
          continue;
        }
      }
      const std::uint64_t seq = ++last_seq_of(p.room);
      outcomes[i] = {seq, false};
      st.insert.bind(1, p.room).bind(2, as_int(seq)).bind(3, p.timestamp_ms);
      st.insert.bind(4, p.user_id).bind(5, p.username).bind(6, p.message);
      st.insert.bind(7, p.sender_key).bind(8, p.client_id).bind(9, p.event_type);
      st.insert.run();
      if (!p.client_id.empty()) {
        resend_windows_.add(p.room, {seq, p.timestamp_ms, p.sender_key, p.client_id}, oldest_kept);
      }
      last_seq_by_room[p.room] = seq;
      if (const auto users = chat::conversation_users(p.room)) {
        // Each user's list: the peer, and the peer's name when the peer wrote this one.
        for (const std::string_view user : {users->first, users->second}) {
          const std::string_view peer = user == users->first ? users->second : users->first;
          st.conversation.bind(1, user).bind(2, peer);
          st.conversation.bind(3, p.user_id == peer ? std::string_view(p.username) : "");
          st.conversation.bind(4, as_int(seq)).bind(5, p.timestamp_ms).run();
          if (users->first == users->second) break;
        }
      }
    }
    for (const auto& [room, last] : last_seq_by_room) {
      // Retention by count: the newest max_messages of the room stay (seqs have no gaps
      // within an epoch, and an epoch's first seq is above every earlier one). The room's
      // newest row holds its numbering; rooms is written only when the trim deletes that row
      // too (max_messages 0), so a normal commit writes no page of it.
      const std::size_t keep = options_.retention.max_messages;
      if (keep == 0) st.upsert.bind(1, room).bind(2, as_int(last)).run();
      if (last > keep) {
        st.trim.bind(1, room).bind(2, as_int(last - keep)).run();
        resend_windows_.drop_through(room, last - keep);
      }
    }
    st.commit.run();
    // Conversations are never unloaded: their numbering is read again at their next message
    // rather than kept for each one ever written to.
    for (const auto& [room, last] : last_seq_by_room) {
      if (chat::is_conversation(room)) last_seq_.erase(std::string(room));
    }
    return true;
  } catch (const std::exception& e) {
    error = e.what();
    st.reset_all();
    sqlite3_exec(writer_, "ROLLBACK", nullptr, nullptr, nullptr);
    last_seq_.clear();  // it counted the rolled-back rows: read the numbering again
    resend_windows_.clear();  // they held the rolled-back rows' ids
    return false;
  }
}

void SqliteStore::report(std::vector<chat::Publication>& batch,
                         const std::vector<Outcome>& outcomes) {
  std::lock_guard lock(listener_mutex_);
  if (listener_ == nullptr) return;
  // One run of reports: each worker is woken once for the group, after its last message.
  listener_->begin_reports();
  const struct RunEnd {
    chat::HistoryStore::Listener& listener;
    ~RunEnd() { listener.end_reports(); }
  } run_end{*listener_};
  for (std::size_t i = 0; i < batch.size(); ++i) {
    chat::Publication& p = batch[i];
    if (outcomes[i].duplicate) {
      listener_->on_duplicate(p, outcomes[i].seq);
      continue;
    }
    // The batch ends here: its text moves on rather than being copied.
    listener_->on_committed(
        {std::move(p.room), outcomes[i].seq, p.timestamp_ms, std::move(p.user_id),
         std::move(p.username), std::move(p.message), std::move(p.sender_key),
         std::move(p.client_id), p.accepted_at, std::move(p.event_type)},
        p.origin);
  }
}

void SqliteStore::expire_old_messages() {
  const std::int64_t oldest_kept = options_.retention.oldest_kept_ms(clock_.unix_ms());
  try {
    // The rooms that have rows, one primary-key seek each (a skip-scan: no time index).
    std::vector<std::string> rooms;
    {
      Statement names(writer_,
                      "WITH RECURSIVE r(name) AS (SELECT min(room) FROM messages UNION ALL "
                      "SELECT (SELECT min(room) FROM messages WHERE room > r.name) FROM r "
                      "WHERE r.name IS NOT NULL) SELECT name FROM r WHERE name IS NOT NULL");
      while (names.step() == SQLITE_ROW) rooms.push_back(names.text(0));
    }
    // Per room, its oldest rows while they are past the age: the primary key's order, and
    // timestamps follow seqs (a row out of order, after a clock step back, is hidden by
    // reads all the same and deleted once the rows before it are).
    Statement oldest(writer_,
                     "SELECT seq, timestamp FROM messages WHERE room = ?1 ORDER BY seq LIMIT 1");
    Statement first_kept(writer_,
                         "SELECT seq FROM messages WHERE room = ?1 AND timestamp >= ?2 "
                         "ORDER BY seq LIMIT 1");
    Statement newest(writer_, "SELECT max(seq) FROM messages WHERE room = ?1");
    Statement keep_last(writer_, kKeepLastSeqSql);
    Statement expire(writer_, "DELETE FROM messages WHERE room = ?1 AND seq < ?2");
    for (const std::string& room : rooms) {
      // A few steps per room per pass; each is its own short transaction, and the storage
      // thread goes back to committing new messages after the pass.
      for (int step = 0; step < 10; ++step) {
        oldest.bind(1, room);
        const bool any = oldest.step() == SQLITE_ROW;
        const std::int64_t first = any ? oldest.integer(0) : 0;
        const bool expired = any && oldest.integer(1) < oldest_kept;
        oldest.reset();
        if (!expired) break;
        first_kept.bind(1, room).bind(2, oldest_kept);
        const bool kept = first_kept.step() == SQLITE_ROW;
        const std::int64_t cut =
            kept ? first_kept.integer(0) : std::numeric_limits<std::int64_t>::max();
        first_kept.reset();
        const std::int64_t end = std::min(cut, first + kExpiryRowsPerStep);
        exec(writer_, "BEGIN IMMEDIATE");
        try {
          if (!kept) {
            // Every row goes, the newest too: rooms keeps the numbering it held.
            newest.bind(1, room);
            if (newest.step() != SQLITE_ROW) throw std::runtime_error(sqlite3_errmsg(writer_));
            const std::int64_t last = newest.integer(0);
            newest.reset();
            keep_last.bind(1, room).bind(2, last).run();
          }
          expire.bind(1, room).bind(2, end).run();
          exec(writer_, "COMMIT");
        } catch (...) {
          newest.reset();
          sqlite3_exec(writer_, "ROLLBACK", nullptr, nullptr, nullptr);
          throw;
        }
        if (end == cut) break;
      }
    }
  } catch (const std::exception& e) {
    spdlog::warn("history: expiring old messages failed ({}); will try again", e.what());
  }
}

}  // namespace roomcast::store
