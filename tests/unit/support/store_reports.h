// StoreReports: a chat::HistoryStore::Listener for store tests: what the store reported, in
// order, from whatever thread it reports on; wait_for() blocks (bounded) until the test's
// condition holds. Refusals and failed loads are test failures unless the test expects
// refusals (refusals_expected).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "chat/history_store.h"

namespace roomcast::test_support {

class StoreReports final : public chat::HistoryStore::Listener {
 public:
  void on_loaded(std::string_view room, chat::RoomHistory history) override {
    std::lock_guard lock(mutex_);
    loaded[std::string(room)] = std::move(history);
    changed_.notify_all();
  }
  void on_committed(chat::StoredMessage message, chat::ConnectionId origin) override {
    std::lock_guard lock(mutex_);
    committed.push_back(message);
    origins.push_back(origin);
    changed_.notify_all();
  }
  void on_duplicate(const chat::Publication& p, std::uint64_t seq) override {
    std::lock_guard lock(mutex_);
    duplicates.emplace_back(p.client_id, seq);
    changed_.notify_all();
  }
  // A store refuses only on a fault (a full disk, Redis gone): tests that cause one say so.
  void on_refused(const chat::Publication& p, std::string_view reason,
                  std::string_view code) override {
    std::lock_guard lock(mutex_);
    if (!refusals_expected) ADD_FAILURE() << "the store refused a publication: " << reason;
    if (!refusal_code.empty()) {
      EXPECT_EQ(code, refusal_code);
    }
    refused.push_back(p);
    changed_.notify_all();
  }
  void on_load_failed(std::string_view room, std::string_view reason) override {
    ADD_FAILURE() << "the store failed to load " << room << ": " << reason;
  }
  bool wait_for(std::function<bool()> done) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), done);
  }
  std::vector<std::uint64_t> seqs(const std::string& room) {
    std::lock_guard lock(mutex_);
    std::vector<std::uint64_t> out;
    for (const auto& m : committed) {
      if (m.room == room) out.push_back(m.seq);
    }
    return out;
  }

  std::map<std::string, chat::RoomHistory> loaded;
  std::vector<chat::StoredMessage> committed;
  std::vector<chat::ConnectionId> origins;
  std::vector<std::pair<std::string, std::uint64_t>> duplicates;
  std::vector<chat::Publication> refused;
  bool refusals_expected = false;
  std::string refusal_code;  // with refusals_expected: the code each must carry (empty: any)

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
};

}  // namespace roomcast::test_support
