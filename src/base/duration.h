// Durations as people write them in flags, config files and option strings ("250ms", "15s",
// "2m"): one spelling for every place that reads or shows one (config's flags, the rate= of
// --app-events). Header-only, like the rest of base.
#pragma once

#include <charconv>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace roomcast::base {

// "250ms", "15s", "2m", "12h", "7d" or a bare number of seconds (fractions allowed) into
// `out`. Returns the reason it is not a duration, or an empty string.
inline std::string parse_duration(std::string_view text, std::chrono::milliseconds& out) {
  double value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || value < 0) return "expected a duration such as 250ms, 15s or 2m";
  const std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  double scale = 0;
  if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "ms") {
    scale = 1;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else if (unit == "d") {
    scale = 86'400'000;
  } else {
    return "unknown unit '" + std::string(unit) + "' (use ms, s, m, h or d)";
  }
  out = std::chrono::milliseconds(static_cast<std::int64_t>(value * scale));
  return {};
}

// How a duration is shown (--help, describe()): whole days as "7d", whole seconds as "15s",
// else "250ms".
inline std::string format_duration(std::chrono::milliseconds duration) {
  const auto ms = duration.count();
  if (ms > 0 && ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace roomcast::base
