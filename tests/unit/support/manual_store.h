// ManualStore: a chat::HistoryStore for unit tests whose loads and publications wait until
// the test answers them through `listener` (on_loaded, on_committed, on_load_failed, ...), and
// whose reads fail as a cluster store's do when Redis cannot be reached. Single-threaded: the
// test thread calls both the Hub and the listener.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/history_store.h"

namespace roomcast::test_support {

class ManualStore final : public chat::HistoryStore {
 public:
  void set_listener(Listener* l) override { listener = l; }
  void load(std::string room) override { loads.push_back(std::move(room)); }
  void unload(std::string room) override { unloads.push_back(std::move(room)); }
  void publish(chat::Publication p) override { published.push_back(std::move(p)); }
  void read(std::string_view, std::uint64_t, std::size_t, ReadDone done) override {
    done(std::nullopt);
  }
  void conversations(std::string_view, std::size_t, ConversationsDone done) override {
    done(std::nullopt);
  }
  void flush() override {}
  Listener* listener = nullptr;
  std::vector<std::string> loads, unloads;
  std::vector<chat::Publication> published;
};

}  // namespace roomcast::test_support
