#include "logging/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include "ws/utf8.h"

namespace roomcast::logging {
namespace {

// "2026-12-06T10:00:00.123Z".
std::string utc_time(std::chrono::system_clock::time_point time) {
  const auto since_epoch = time.time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
  const std::time_t t = static_cast<std::time_t>(seconds.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[40];
  const std::size_t length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(text + length, sizeof text - length, ".%03dZ", static_cast<int>(millis.count()));
  return text;
}

// One JSON object a line: what a log shipper (Loki, Elasticsearch, jq) reads without a
// pattern. The fields are fixed; the message is the text line's.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto level = spdlog::level::to_string_view(msg.level);
    std::string line =
        "{\"time\":\"" + utc_time(msg.time) + "\",\"level\":\"" +
        std::string(level.data(), level.size()) + "\",\"thread\":" + std::to_string(msg.thread_id) +
        ",\"message\":" + json_string(std::string_view(msg.payload.data(), msg.payload.size())) +
        "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string json_string(std::string_view message) {
  const bool utf8 = ws::is_valid_utf8(message);
  std::string out = "\"";
  for (const char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (byte < 0x20 || byte == 0x7f || (byte >= 0x80 && !utf8)) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void start(const std::string& level, Format format) {
  spdlog::set_level(spdlog::level::from_str(level));
  if (format == Format::kJson) {
    spdlog::set_formatter(std::make_unique<JsonFormatter>());
  } else {
    // UTC, like the JSON lines: logs of hosts in different zones compare as they are.
    spdlog::set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc));
  }
}

}  // namespace roomcast::logging
