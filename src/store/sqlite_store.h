// SqliteStore: room history in one SQLite file (WAL mode). A storage thread numbers
// messages, commits them in groups and reports them back, so the I/O workers never wait for
// the disk.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
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

// Durability: a message is reported (Listener::on_committed) once the transaction holding
// it has committed; its seq is the room's last plus one, kept in a `rooms` table so that
// numbering survives retention and restarts. A resent (sender_key, client_id) within the
// retained history is reported as a duplicate. If a commit fails (disk full, I/O error)
// the batch is kept and retried, and nothing in it is reported, so clients never get an
// ack for a lost message. Loads are answered in order after the publications before them.
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
  void load(std::string room) override;
  void unload(std::string room) override;
  void publish(chat::Publication publication) override;
  // Reads inline (see HistoryStore::read); nullopt if SQLite fails.
  void read(std::string_view room, std::uint64_t after_seq, std::size_t limit,
            ReadDone done) override;
  void flush() override;

  // The same read, returning it; throws std::runtime_error if SQLite fails.
  chat::RoomHistory read(std::string_view room, std::uint64_t after_seq, std::size_t limit);

  // Publications reported so far, duplicates included (for metrics and tests).
  std::uint64_t committed() const;

 private:
  // What the storage thread made of one publication.
  struct Outcome {
    std::uint64_t seq = 0;
    bool duplicate = false;
  };

  void run();
  // Numbers and writes one group in one transaction; false if SQLite refused it (rolled
  // back; `outcomes` is then meaningless and the numbering cache is dropped).
  bool commit(const std::vector<chat::Publication>& batch, std::vector<Outcome>& outcomes);
  void report(const std::vector<chat::Publication>& batch, const std::vector<Outcome>& outcomes);
  std::uint64_t& last_seq_of(const std::string& room);
  void expire_old_messages();

  const SqliteStoreOptions options_;
  sqlite3* writer_ = nullptr;  // the storage thread's
  sqlite3* reader_ = nullptr;  // shared by readers, under reader_mutex_
  std::mutex reader_mutex_;

  mutable std::mutex mutex_;
  std::condition_variable work_;  // the storage thread waits here for messages
  std::condition_variable committed_;  // flush() waits here
  std::vector<chat::Publication> queue_;
  std::vector<std::string> loads_;
  std::vector<std::string> unloads_;
  std::uint64_t published_count_ = 0;
  std::uint64_t committed_count_ = 0;
  bool stopping_ = false;

  // The storage thread's: each followed room's last seq (read from `rooms` when first
  // needed, dropped at unload).
  std::unordered_map<std::string, std::uint64_t> last_seq_;

  // Held while the listener is called, so set_listener(nullptr) waits out a call.
  std::mutex listener_mutex_;
  Listener* listener_ = nullptr;

  std::thread thread_;
};

}  // namespace roomcast::store
