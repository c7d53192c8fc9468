// chat::read_history_page answers through a callback; with a store that reads inline (the
// memory store, SQLite, the tests' recording stores) it answers before returning.
#pragma once

#include <gtest/gtest.h>

#include <optional>

#include "base/clock.h"
#include "chat/history_page.h"
#include "chat/hub.h"

namespace roomcast::test_support {

inline chat::HistoryResult history_now(chat::HistoryStore& store, const base::Clock& clock,
                                       const chat::HubOptions& options, std::string_view room,
                                       std::optional<std::uint64_t> since, std::size_t limit) {
  std::optional<chat::HistoryResult> result;
  chat::read_history_page(store, clock, options.retention(), options.limits, room, since, limit,
                          [&](chat::HistoryResult r) { result = std::move(r); });
  EXPECT_TRUE(result.has_value()) << "read_history_page did not answer before returning";
  if (!result) return chat::ProtocolError{"no_answer", "no answer"};
  return std::move(*result);
}

}  // namespace roomcast::test_support
