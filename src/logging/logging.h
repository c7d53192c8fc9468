// How the process logs (spdlog's default logger, to standard output): the level, and the
// format of a line, text or one JSON object, both with UTC timestamps. Called once by main,
// before any other thread starts.
#pragma once

#include <string>
#include <string_view>

namespace roomcast::logging {

enum class Format {
  kText,  // 2026-12-06T10:00:00.123Z info roomcast listening on ...
  kJson,  // {"time":"2026-12-06T10:00:00.123Z","level":"info","thread":42,"message":"..."}
};

// `level`: spdlog's level names (trace, debug, info, warn, error, critical or off).
void start(const std::string& level, Format format);

// `message` as a JSON string (quoted), every byte of it kept: invalid UTF-8 (a client's
// bytes quoted in a message) is written byte by byte as \u00XX, so the line still parses.
std::string json_string(std::string_view message);

}  // namespace roomcast::logging
