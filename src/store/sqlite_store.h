// SqliteStore: room history in one SQLite file (WAL mode). A storage thread numbers
// messages, commits them in groups and reports them back, so the I/O workers never wait for
// the disk.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "chat/history_store.h"
#include "chat/retention.h"
#include "metrics/histogram.h"
#include "store/resend_windows.h"
#include "store/sqlite_store_options.h"

struct sqlite3;

namespace roomcast::store {

// What /healthz reports for the store; ok == false: degraded, `reason` says why.
struct StorageHealth {
  bool ok = true;
  std::string reason;
};

// What /metrics shows of the store's work (SqliteStore::stats).
struct StorageStats {
  std::uint64_t commit_failures = 0;  // group commits that failed, since the start
  std::uint64_t waiting = 0;  // messages published and not yet reported
  std::int64_t last_commit_unix_ms = 0;  // the last commit that succeeded; 0: none yet
  metrics::HistogramValues commit_latency{metrics::kSecondsLayout};  // each group commit
};

// Durability: a message is reported (Listener::on_committed) once the transaction holding
// it has committed; its seq is the room's last plus one, kept in a `rooms` table so that
// numbering survives retention and restarts. A resent (sender_key, client_id) within the
// retained history (chat::Retention, as the other stores) is reported as a duplicate.
// Faults: if a commit fails (disk full, I/O error) nothing in it is reported, so no client
// gets an ack for a lost message; the group is retried at once at half its size, down to one
// message, then every retry delay, and grows again (doubling) as commits succeed, so a
// backlog drains through whatever space there is. Loads never wait behind a failing commit.
// After refuse_after of failures, waiting and new messages are refused (`unavailable`),
// one probe commit per retry excepted. If the database file is deleted or replaced under
// the server (checked every identity_check_interval and after every commit, whose messages
// are then refused rather than acked), every write is refused until a
// restart, which then numbers every room from an epoch base (chat::epoch_seq_base) so that
// no seq is reused. health() says degraded meanwhile.
// Numbering epochs: next to the database lives an id file (`<file>-id`) holding the
// database's id. A database created where the id file says one existed before, one whose id
// differs from it, or one found after the running server saw its file vanish (the id file
// then says `lost`) is a re-creation: rooms continue from chat::epoch_seq_base, not from 1.
// A brand-new data directory (no id file) numbers from 1.
// Thread-safe.
class SqliteStore final : public chat::HistoryStore {
 public:
  // Opens or creates the database and starts the storage thread. Throws std::runtime_error
  // naming the file and SQLite's message if it cannot be opened. `clock` judges the age of
  // messages (retention) and dates numbering epochs; it must outlive the store. (The storage
  // thread's own pacing, retry delays and fault durations run on std::chrono::steady_clock:
  // it sleeps on a condition variable until those deadlines, which a test clock cannot wake.)
  SqliteStore(SqliteStoreOptions options, const base::Clock& clock);
  // Commits everything queued (retrying failed commits until it can, or until the fault
  // outlasts refuse_after and the rest is refused), then stops the storage thread.
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
  // Reads inline, like read().
  void conversations(std::string_view user_id, std::size_t limit, ConversationsDone done) override;
  void flush() override;

  // The same read, returning it; throws std::runtime_error if SQLite fails.
  chat::RoomHistory read(std::string_view room, std::uint64_t after_seq, std::size_t limit);

  // Publications reported so far, duplicates and refusals included (for metrics and tests).
  std::uint64_t committed() const;
  // Degraded while commits fail or after the database file vanished. Thread-safe.
  StorageHealth health() const;
  // Commits, failures, backlog. Thread-safe.
  StorageStats stats() const;
  // The floor below which no room's numbering goes in this database (0: none): the last
  // seq of an epoch base, see "Numbering epochs" above.
  std::uint64_t last_seq_floor() const { return last_seq_floor_; }
  // Test seam: lets the database grow by at most `extra_pages` pages from now on (PRAGMA
  // max_page_count), so a test can make commits fail as on a full disk; kNoPageLimit lifts
  // the limit. Applied by the storage thread before its next commit.
  static constexpr std::uint64_t kNoPageLimit = UINT64_MAX;
  void limit_growth_for_test(std::uint64_t extra_pages);

 private:
  // What the storage thread made of one publication.
  struct Outcome {
    std::uint64_t seq = 0;
    bool duplicate = false;
  };

  void open_and_check_epoch();
  void run();
  // Answers queued loads from the file; those that fail are put back for the next turn.
  void answer_loads(std::vector<std::string>& loads);
  // Commits the front of `pending` (a group of at most group_limit_), or on failure shrinks
  // the group and schedules a retry, and refuses what waits once the fault outlasts the bound.
  void commit_some(std::deque<chat::Publication>& pending);
  // Numbers and writes one group in one transaction; false if SQLite refused it (rolled
  // back; `outcomes` is then meaningless and the numbering cache is dropped).
  bool commit(const std::vector<chat::Publication>& batch, std::vector<Outcome>& outcomes,
              std::string& error);
  // Inside commit's transaction: the seq of the kept message `p` resends (its sender and id,
  // not older than oldest_kept), if any. Fills the room's resend window when first touched.
  std::optional<std::uint64_t> find_resend(const chat::Publication& p, std::int64_t oldest_kept);
  // Reports a committed group; moves the committed publications' text out of `batch`.
  void report(std::vector<chat::Publication>& batch, const std::vector<Outcome>& outcomes);
  // After a commit that succeeded: ends a fault, lets groups grow again.
  void commits_succeed(std::chrono::steady_clock::time_point now);
  // While commits fail and nothing waits: a small write that ends the fault if it succeeds.
  void probe();
  // Refuses (Listener::on_refused) and counts as reported everything in `pending`.
  void refuse(std::deque<chat::Publication>& pending, std::string_view reason);
  // Counts `n` publications as reported (committed, duplicate or refused), for flush().
  void count_reported(std::size_t n);
  std::uint64_t& last_seq_of(const std::string& room);
  void expire_old_messages();
  // Marks the store lost (once) if the path no longer names the file opened.
  void check_identity();

  const SqliteStoreOptions options_;
  const base::Clock& clock_;
  sqlite3* writer_ = nullptr;  // the storage thread's
  // The writer's statements of every commit, prepared once (the storage thread's; finalized
  // before writer_ is closed).
  struct Statements;
  std::unique_ptr<Statements> statements_;
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
  std::optional<std::uint64_t> page_limit_;  // limit_growth_for_test, not yet applied
  // Fault state, written by the storage thread, read by health().
  std::optional<std::chrono::steady_clock::time_point> failing_since_;
  std::string last_error_;  // SQLite's message for the last failed commit
  bool lost_ = false;  // the database file was deleted or replaced under us

  // Set at construction: the identity of the file opened, and the numbering floor.
  struct FileIdentity {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
  };
  FileIdentity identity_;
  std::uint64_t last_seq_floor_ = 0;
  std::string id_;  // this database's id, as the id file holds it

  // The storage thread's: the largest group the next commit may take (halved on failure,
  // doubled on success), when the next retry may run, and when to log the fault again.
  std::size_t group_limit_ = SIZE_MAX;
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::steady_clock::time_point next_fault_log_{};
  std::uint64_t failed_commits_ = 0;  // since the fault began, for the log
  // For stats(): written by the storage thread only, read by any.
  metrics::Histogram commit_latency_{metrics::kSecondsLayout};
  std::atomic<std::uint64_t> commit_failures_total_{0};
  std::atomic<std::int64_t> last_commit_unix_ms_{0};

  // The storage thread's: each followed room's last seq (read from `rooms` when first
  // needed, dropped at unload).
  std::unordered_map<std::string, std::uint64_t> last_seq_;
  // The storage thread's: the ids of each touched room's kept messages (dropped at unload).
  ResendWindows resend_windows_;

  // Held while the listener is called, so set_listener(nullptr) waits out a call.
  std::mutex listener_mutex_;
  Listener* listener_ = nullptr;

  std::thread thread_;
};

}  // namespace roomcast::store
