#include "store/resend_windows.h"

#include <algorithm>
#include <functional>

namespace roomcast::store {

std::uint64_t ResendWindows::hash_of(std::string_view sender_key, std::string_view client_id) {
  // The two parts hashed apart and combined (no key built): the pair, not the concatenation,
  // is what is hashed, so ("ab", "c") and ("a", "bc") differ.
  const std::uint64_t sender = std::hash<std::string_view>{}(sender_key);
  const std::uint64_t id = std::hash<std::string_view>{}(client_id);
  return sender ^ (id + 0x9e3779b97f4a7c15ULL + (sender << 6) + (sender >> 2));
}

ResendWindows::Window& ResendWindows::touch(std::string_view room) {
  Window& window = rooms_.find(room)->second;
  recency_.splice(recency_.begin(), recency_, window.recency);
  return window;
}

void ResendWindows::start(std::string_view room) {
  drop(room);
  recency_.emplace_front(room);
  rooms_[recency_.front()].recency = recency_.begin();
}

std::vector<std::uint64_t> ResendWindows::candidates(std::string_view room,
                                                     std::string_view sender_key,
                                                     std::string_view client_id,
                                                     std::int64_t oldest_kept_ms) {
  Window& window = touch(room);
  std::vector<std::uint64_t> seqs;
  const auto [first, last] = window.seq_by_hash.equal_range(hash_of(sender_key, client_id));
  for (auto it = first; it != last; ++it) seqs.push_back(it->second);
  if (seqs.empty()) return seqs;
  // The age bound, on the window's own timestamps (by_seq is in seq order: a binary search).
  std::erase_if(seqs, [&](std::uint64_t seq) {
    const auto at = std::lower_bound(window.by_seq.begin(), window.by_seq.end(), seq,
                                     [](const Entry& e, std::uint64_t s) { return e.seq < s; });
    return at == window.by_seq.end() || at->seq != seq || at->timestamp_ms < oldest_kept_ms;
  });
  std::sort(seqs.begin(), seqs.end(), std::greater<>());
  return seqs;
}

void ResendWindows::add(std::string_view room, const Kept& message, std::int64_t oldest_kept_ms) {
  Window& window = touch(room);
  // Retention by age, from the oldest: timestamps follow seqs (one out of order, after a
  // clock step back, waits for those before it, as the rows' expiry does).
  while (!window.by_seq.empty() && window.by_seq.front().timestamp_ms < oldest_kept_ms) {
    pop_oldest(window);
  }
  const std::uint64_t hash = hash_of(message.sender_key, message.client_id);
  window.by_seq.push_back({message.seq, message.timestamp_ms, hash});
  window.seq_by_hash.emplace(hash, message.seq);
  ++ids_;
  drop_least_recent_beyond_limit();
}

void ResendWindows::drop_through(std::string_view room, std::uint64_t seq) {
  const auto it = rooms_.find(room);
  if (it == rooms_.end()) return;
  Window& window = it->second;
  while (!window.by_seq.empty() && window.by_seq.front().seq <= seq) pop_oldest(window);
}

void ResendWindows::pop_oldest(Window& window) {
  const Entry& oldest = window.by_seq.front();
  const auto [first, last] = window.seq_by_hash.equal_range(oldest.hash);
  for (auto it = first; it != last; ++it) {
    if (it->second == oldest.seq) {
      window.seq_by_hash.erase(it);
      break;
    }
  }
  window.by_seq.pop_front();
  --ids_;
}

void ResendWindows::drop(std::string_view room) {
  const auto it = rooms_.find(room);
  if (it == rooms_.end()) return;
  ids_ -= it->second.by_seq.size();
  recency_.erase(it->second.recency);
  rooms_.erase(it);
}

void ResendWindows::clear() {
  rooms_.clear();
  recency_.clear();
  ids_ = 0;
}

void ResendWindows::drop_least_recent_beyond_limit() {
  // The room in hand was just touched: it is the front, never the one dropped.
  while (ids_ > max_ids_ && recency_.size() > 1) drop(std::string(recency_.back()));
}

}  // namespace roomcast::store
