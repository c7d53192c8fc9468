#include "store/sqlite_store.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <stdexcept>

namespace roomcast::store {
namespace {

// Between retries of a failed commit: the disk may come back, and a tight loop would only
// burn a core and flood the log.
constexpr auto kRetryDelay = std::chrono::seconds(1);
// Age-based expiry runs at most this often and deletes this many rows per transaction,
// so a large backlog of old messages never holds up a commit for long.
constexpr auto kExpiryInterval = std::chrono::seconds(1);
constexpr int kExpiryRowsPerStep = 500;
// How long flush() (graceful shutdown) waits for the storage thread.
constexpr auto kFlushTimeout = std::chrono::seconds(10);

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
    PRIMARY KEY (room, seq)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS messages_by_time ON messages (timestamp);
  CREATE INDEX IF NOT EXISTS messages_by_client_id ON messages (room, sender_key, client_id)
    WHERE client_id != '';
)sql";

// One prepared statement, finalized on scope exit; step/reset/bind in the caller.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
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

}  // namespace

SqliteStore::SqliteStore(SqliteStoreOptions options) : options_(std::move(options)) {
  if (options_.file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.file.parent_path(), ec);
    if (ec) {
      throw std::runtime_error("cannot create data directory " +
                               options_.file.parent_path().string() + ": " + ec.message());
    }
  }
  try {
    writer_ = open_database(options_.file);
    exec(writer_, "PRAGMA journal_mode=WAL");
    exec(writer_,
         options_.sync_every_commit ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    exec(writer_, kSchema);
    reader_ = open_database(options_.file);
  } catch (...) {
    sqlite3_close(writer_);
    sqlite3_close(reader_);
    throw;
  }
  thread_ = std::thread([this] { run(); });
}

SqliteStore::~SqliteStore() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  thread_.join();
  sqlite3_close(reader_);
  sqlite3_close(writer_);
}

void SqliteStore::set_listener(Listener* listener) {
  std::lock_guard lock(listener_mutex_);
  listener_ = listener;
}

void SqliteStore::publish(chat::Publication publication) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(publication));
    ++published_count_;
  }
  work_.notify_one();
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
    // Only a disk that keeps refusing commits gets here: those messages were never delivered
    // or acknowledged, so clients still hold them; shutting down must not hang on them.
    spdlog::error("history: {} messages still not durable after {} s; giving up waiting",
                  target - committed_count_, kFlushTimeout.count());
  }
}

std::uint64_t SqliteStore::committed() const {
  std::lock_guard lock(mutex_);
  return committed_count_;
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

chat::RoomHistory SqliteStore::read(std::string_view room, std::uint64_t after_seq,
                                    std::size_t limit) {
  chat::RoomHistory history;
  std::lock_guard lock(reader_mutex_);
  // One read transaction, so last_seq and the messages are one consistent snapshot.
  exec(reader_, "BEGIN");
  try {
    Statement last(reader_, "SELECT last_seq FROM rooms WHERE name = ?1");
    last.bind(1, room);
    if (last.step() == SQLITE_ROW) history.last_seq = static_cast<std::uint64_t>(last.integer(0));

    Statement rows(reader_,
                   "SELECT seq, timestamp, user_id, username, message, sender_key, client_id "
                   "FROM messages WHERE room = ?1 AND seq > ?2 AND timestamp >= ?3 "
                   "ORDER BY seq DESC LIMIT ?4");
    const std::int64_t oldest_kept = options_.history_ttl.count() > 0
                                         ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                                   .count() -
                                               options_.history_ttl.count()
                                         : std::numeric_limits<std::int64_t>::min();
    rows.bind(1, room).bind(2, as_int(after_seq)).bind(3, oldest_kept);
    rows.bind(4, as_int(limit));
    while (rows.step() == SQLITE_ROW) {
      history.messages.push_back({std::string(room), static_cast<std::uint64_t>(rows.integer(0)),
                                  rows.integer(1), rows.text(2), rows.text(3), rows.text(4),
                                  rows.text(5), rows.text(6)});
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
  std::vector<chat::Publication> batch;
  std::vector<Outcome> outcomes;
  std::vector<std::string> loads;
  std::vector<std::string> unloads;
  auto next_expiry = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      // Wake for messages or loads, to stop, or for the next age-based expiry step.
      const auto deadline = options_.history_ttl.count() > 0
                                ? next_expiry
                                : std::chrono::steady_clock::time_point::max();
      work_.wait_until(lock, deadline, [&] {
        return !queue_.empty() || !loads_.empty() || !batch.empty() || stopping_;
      });
      if (queue_.empty() && loads_.empty() && stopping_) return;
      // Group commit: everything that queued up while the last commit ran goes in one
      // transaction, so the cost of a commit (an fsync) is shared by the whole group.
      batch.insert(batch.end(), std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.end()));
      queue_.clear();
      loads.insert(loads.end(), std::make_move_iterator(loads_.begin()),
                   std::make_move_iterator(loads_.end()));
      loads_.clear();
      unloads.swap(unloads_);
    }
    if (!batch.empty()) {
      if (!commit(batch, outcomes)) {
        // Keep the batch (and the loads behind it, which must see it); retry with what
        // queued meanwhile.
        std::this_thread::sleep_for(kRetryDelay);
        continue;
      }
      report(batch, outcomes);
      {
        std::lock_guard lock(mutex_);
        committed_count_ += batch.size();
      }
      committed_.notify_all();
      batch.clear();
    }
    // A room is unloaded only once nothing of it is in flight, so its publications are all
    // behind us; a load of it queued later is answered below, from the file.
    for (const auto& room : unloads) last_seq_.erase(room);
    unloads.clear();
    for (const auto& room : loads) {
      try {
        chat::RoomHistory history = read(room, 0, options_.history_size);
        last_seq_[room] = history.last_seq;
        std::lock_guard lock(listener_mutex_);
        if (listener_ != nullptr) listener_->on_loaded(room, std::move(history));
      } catch (const std::exception& e) {
        // The joins wait for this room; try again rather than leave them waiting for good.
        spdlog::error("history: cannot load room '{}' ({}); retrying", room, e.what());
        std::this_thread::sleep_for(kRetryDelay);
        std::lock_guard lock(mutex_);
        loads_.push_back(room);
      }
    }
    loads.clear();
    if (options_.history_ttl.count() > 0 && std::chrono::steady_clock::now() >= next_expiry) {
      expire_old_messages();
      next_expiry = std::chrono::steady_clock::now() + kExpiryInterval;
    }
  }
}

std::uint64_t& SqliteStore::last_seq_of(const std::string& room) {
  auto [it, inserted] = last_seq_.try_emplace(room, 0);
  if (inserted) {
    Statement last(writer_, "SELECT last_seq FROM rooms WHERE name = ?1");
    last.bind(1, room);
    if (last.step() == SQLITE_ROW) it->second = static_cast<std::uint64_t>(last.integer(0));
  }
  return it->second;
}

bool SqliteStore::commit(const std::vector<chat::Publication>& batch,
                         std::vector<Outcome>& outcomes) {
  try {
    exec(writer_, "BEGIN IMMEDIATE");
  } catch (const std::exception& e) {
    spdlog::error("history: cannot begin a transaction ({}); {} messages wait, retrying", e.what(),
                  batch.size());
    return false;
  }
  try {
    Statement seen(writer_,
                   "SELECT seq FROM messages WHERE room = ?1 AND sender_key = ?2 AND "
                   "client_id = ?3 AND client_id != ''");
    Statement insert(writer_,
                     "INSERT INTO messages "
                     "(room, seq, timestamp, user_id, username, message, sender_key, client_id) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    outcomes.assign(batch.size(), {});
    std::map<std::string_view, std::uint64_t> last_seq_by_room;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const chat::Publication& p = batch[i];
      if (!p.client_id.empty()) {
        // A resend within the retained history (this transaction's rows included).
        seen.bind(1, p.room).bind(2, p.sender_key).bind(3, p.client_id);
        const bool found = seen.step() == SQLITE_ROW;
        const auto seq = found ? static_cast<std::uint64_t>(seen.integer(0)) : 0;
        seen.reset();
        if (found) {
          outcomes[i] = {seq, true};
          continue;
        }
      }
      const std::uint64_t seq = ++last_seq_of(p.room);
      outcomes[i] = {seq, false};
      insert.bind(1, p.room).bind(2, as_int(seq)).bind(3, p.timestamp_ms);
      insert.bind(4, p.user_id).bind(5, p.username).bind(6, p.message);
      insert.bind(7, p.sender_key).bind(8, p.client_id);
      if (insert.step() != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(writer_));
      insert.reset();
      last_seq_by_room[p.room] = seq;
    }
    Statement upsert(
        writer_,
        "INSERT INTO rooms (name, last_seq) VALUES (?1, ?2) "
        "ON CONFLICT (name) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)");
    Statement trim(writer_, "DELETE FROM messages WHERE room = ?1 AND seq <= ?2");
    for (const auto& [room, last] : last_seq_by_room) {
      upsert.bind(1, room).bind(2, as_int(last));
      if (upsert.step() != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(writer_));
      upsert.reset();
      // Retention by count: the newest history_size messages of the room stay.
      if (last > options_.history_size) {
        trim.bind(1, room).bind(2, as_int(last - options_.history_size));
        if (trim.step() != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(writer_));
        trim.reset();
      }
    }
    exec(writer_, "COMMIT");
    return true;
  } catch (const std::exception& e) {
    spdlog::error("history: commit of {} messages failed ({}); retrying", batch.size(), e.what());
    sqlite3_exec(writer_, "ROLLBACK", nullptr, nullptr, nullptr);
    last_seq_.clear();  // it counted the rolled-back rows: read the numbering again
    return false;
  }
}

void SqliteStore::report(const std::vector<chat::Publication>& batch,
                         const std::vector<Outcome>& outcomes) {
  std::lock_guard lock(listener_mutex_);
  if (listener_ == nullptr) return;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const chat::Publication& p = batch[i];
    if (outcomes[i].duplicate) {
      listener_->on_duplicate(p, outcomes[i].seq);
      continue;
    }
    listener_->on_committed({p.room, outcomes[i].seq, p.timestamp_ms, p.user_id, p.username,
                             p.message, p.sender_key, p.client_id},
                            p.origin);
  }
}

void SqliteStore::expire_old_messages() {
  const std::int64_t oldest_kept = std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count() -
                                   options_.history_ttl.count();
  try {
    Statement expire(writer_,
                     "DELETE FROM messages WHERE (room, seq) IN "
                     "(SELECT room, seq FROM messages WHERE timestamp < ?1 LIMIT ?2)");
    // A few steps per pass; each is its own short transaction, and the storage thread goes
    // back to committing new messages in between passes.
    for (int step = 0; step < 10; ++step) {
      expire.bind(1, oldest_kept).bind(2, std::int64_t{kExpiryRowsPerStep});
      if (expire.step() != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(writer_));
      expire.reset();
      if (sqlite3_changes(writer_) < kExpiryRowsPerStep) break;
    }
  } catch (const std::exception& e) {
    spdlog::warn("history: expiring old messages failed ({}); will try again", e.what());
  }
}

}  // namespace roomcast::store
