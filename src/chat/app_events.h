// AppEvents: which application event types (the chapter's `document_change`, `price_update`,
// `player_moved`...) a server relays, and how. An app event is a client message whose `type` is
// not one of the chat protocol's and which names a room the sender is in; a type not listed here
// gets `unknown_type`, as any unknown type does. Immutable once parsed: each Hub keeps a copy.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "chat/rate_policy.h"

namespace roomcast::chat {

// How the server treats one app event type.
struct AppEventType {
  // Durable: numbered with the room's `seq`, kept in history, recovered with `since`, and
  // acked by `id`, exactly like a chat_message (it goes through the store). Ephemeral (false):
  // never stored, no `seq`; delivered to whoever is in the room now.
  bool durable = false;
  // Whether the sender's own connection gets its event back (a game's `player_moved` goes to
  // the others only; a document edit may want the server's order confirmed).
  bool echo = true;
  // Ephemeral types only: latest-value conflation. A reader that has fallen behind (its socket
  // full) gets the newest event of each sender in the room, not a backlog of them.
  bool conflate = false;
  // The type's own budget (`rate=N/WINDOW`): N events per person per WINDOW, spent instead of
  // the chat message budget (durable) or the signal budget (ephemeral), with the chapter's block
  // of twice the window past it; anonymous connections of one address share 60 times that.
  // nullopt: today's budgets.
  std::optional<RatePolicy> rate = std::nullopt;
};

class AppEvents {
 public:
  // The server's parse of `--app-events`: TYPE[:OPTION...][,TYPE[:OPTION...]...], an option
  // being `durable` or `ephemeral` (the default), `echo` (the default) or `no-echo`, `conflate`
  // (ephemeral only), and `rate=N/WINDOW` (N from 1 to kMaxRateEvents, WINDOW a duration such
  // as 10s or 500ms, more than 0), e.g.
  // `document_change:durable:rate=60/10s,price_update:conflate,player_moved:no-echo:conflate`.
  // A TYPE is 1 to 64 of A-Z a-z 0-9 _ - . and may not be a type of the chat protocol (client's
  // or server's). Returns the text of the first mistake, naming the type, instead.
  static std::variant<AppEvents, std::string> parse(std::string_view spec);

  // The type's treatment, or nullptr if it is not relayed.
  const AppEventType* find(std::string_view type) const {
    const auto it = types_.find(type);
    return it == types_.end() ? nullptr : &it->second;
  }
  bool empty() const { return types_.empty(); }
  // Every type and its treatment, by name.
  const std::map<std::string, AppEventType, std::less<>>& types() const { return types_; }
  static constexpr std::uint32_t kMaxRateEvents = 1'000'000;
  // The canonical spelling of the policy, as parse() reads it (for --help and logs).
  std::string describe() const;

  // Adds (or replaces) a type; for tests and programs that build a policy without a flag.
  // Requires: `type` is a name parse() would accept.
  void allow(std::string type, AppEventType treatment) { types_[std::move(type)] = treatment; }

 private:
  std::map<std::string, AppEventType, std::less<>> types_;
};

// Whether `type` is a message type of the chat protocol, either direction: such a type is
// never an app event (a client must not be able to send others an `error` or a `history`).
bool is_protocol_type(std::string_view type);

}  // namespace roomcast::chat
