// Hub::history answers through a callback; with the room in memory, no store or a store
// that reads inline (SQLite, the tests' recording stores) it answers before returning.
#pragma once

#include <gtest/gtest.h>

#include <optional>

#include "chat/hub.h"

namespace roomcast::test_support {

inline chat::HistoryResult history_now(chat::Hub& hub, std::string_view room,
                                       std::optional<std::uint64_t> since, std::size_t limit) {
  std::optional<chat::HistoryResult> result;
  hub.history(room, since, limit, [&](chat::HistoryResult r) { result = std::move(r); });
  EXPECT_TRUE(result.has_value()) << "Hub::history did not answer before returning";
  if (!result) return chat::ProtocolError{"no_answer", "no answer"};
  return std::move(*result);
}

}  // namespace roomcast::test_support
