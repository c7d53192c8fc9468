// SqliteStore: room history in one SQLite file (WAL mode), written by a storage thread that
// commits in groups, so the I/O workers never wait for the disk.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chat/history_store.h"

struct sqlite3;

namespace roomcast::store {

struct SqliteStoreOptions {
  std::filesystem::path file;  // created with its directory if missing
  // Retention, as the Hub's: the newest history_size messages of each room, none older
  // than history_ttl (zero: no age limit). Enforced in small steps between commits.
  std::size_t history_size = 1000;
  std::chrono::milliseconds history_ttl{0};
  // true: fsync every group commit (an acked message survives power loss). false:
  // synchronous=NORMAL (survives a crash or kill -9 of the server, not of the machine).
  bool sync_every_commit = true;
};

// Durability: a message is reported durable (Listener::on_durable) once the transaction
// holding it has committed. If a commit fails (disk full, I/O error) the batch is kept and
// retried, and nothing in it is reported, so clients never get an ack for a lost message.
// Thread-safe.
class SqliteStore final : public chat::HistoryStore {
 public:
  // Opens or creates the database and starts the storage thread. Throws std::runtime_error
  // naming the file and SQLite's message if it cannot be opened.
  explicit SqliteStore(SqliteStoreOptions options);
  // Commits everything queued (retrying failed commits until it can), then stops the
  // storage thread.
  ~SqliteStore() override;

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  void set_listener(Listener* listener) override;
  void append(chat::StoredMessage message) override;
  chat::RoomHistory read(std::string_view room, std::uint64_t after_seq,
                         std::size_t limit) override;
  void flush() override;

  // Messages committed so far (for metrics and tests).
  std::uint64_t committed() const;

 private:
  void run();
  // Writes one group in one transaction; false if SQLite refused it (rolled back).
  bool commit(const std::vector<chat::StoredMessage>& batch);
  void report_durable(const std::vector<chat::StoredMessage>& batch);
  void expire_old_messages();

  const SqliteStoreOptions options_;
  sqlite3* writer_ = nullptr;  // the storage thread's
  sqlite3* reader_ = nullptr;  // shared by readers, under reader_mutex_
  std::mutex reader_mutex_;

  mutable std::mutex mutex_;
  std::condition_variable work_;  // the storage thread waits here for messages
  std::condition_variable committed_;  // flush() waits here
  std::vector<chat::StoredMessage> queue_;
  std::uint64_t appended_count_ = 0;
  std::uint64_t committed_count_ = 0;
  bool stopping_ = false;

  // Held while the listener is called, so set_listener(nullptr) waits out a call.
  std::mutex listener_mutex_;
  Listener* listener_ = nullptr;

  std::thread thread_;
};

}  // namespace roomcast::store
