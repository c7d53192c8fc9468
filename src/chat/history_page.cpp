#include "chat/history_page.h"

namespace roomcast::chat {

void read_history_page(HistoryStore& store, const base::Clock& clock, Retention retention,
                       const ProtocolLimits& limits, std::string_view room,
                       std::optional<std::uint64_t> since, std::size_t limit, HistoryDone done) {
  auto checked = check_room_name(room, limits);
  if (auto* error = std::get_if<ProtocolError>(&checked)) {
    done(std::move(*error));
    return;
  }
  std::string name = std::move(std::get<std::string>(checked));
  const std::int64_t oldest_kept = retention.oldest_kept_ms(clock.unix_ms());
  // The whole retained window, then the page from it: the store reads the newest messages,
  // and a page with `since` wants the oldest after it.
  store.read(
      name, 0, retention.max_messages,
      [name, since, limit, oldest_kept, done = std::move(done)](std::optional<RoomHistory> stored) {
        if (!stored) {
          done(ProtocolError{error_code::kClusterUnavailable,
                             "History storage cannot be reached right now; try again"});
          return;
        }
        std::vector<const StoredMessage*> kept;
        kept.reserve(stored->messages.size());
        for (const auto& m : stored->messages) {
          if (m.timestamp_ms >= oldest_kept) kept.push_back(&m);
        }
        std::size_t first = 0;
        std::size_t end = kept.size();
        if (since) {
          while (first < end && kept[first]->seq <= *since) ++first;
          end = std::min(end, first + limit);
        } else {
          first = end - std::min(end, limit);
        }
        HistoryPage page{name, stored->last_seq, {}};
        page.messages.reserve(end - first);
        for (std::size_t i = first; i < end; ++i) {
          const StoredMessage& m = *kept[i];
          page.messages.push_back(encode_stored(m));
        }
        done(std::move(page));
      });
}

}  // namespace roomcast::chat
