// The parts of webhook delivery that need no socket: the target URL, the body's signature,
// the retry schedule and the bounded queue. hooks/webhooks.h puts them on a thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace roomcast::hooks {

// A parsed http:// URL (https is not spoken: a TLS proxy in front of the backend does it).
struct HttpTarget {
  std::string host;  // without the brackets of an IPv6 literal
  std::string port = "80";
  std::string path = "/";
  std::string host_header;  // as the URL wrote it (host[:port])
};

// The target of `url`, or why it is not one ("only http:// URLs are supported ...").
std::variant<HttpTarget, std::string> parse_http_url(std::string_view url);

// Lower-case hex of HMAC-SHA256(secret, body): the X-Roomcast-Signature of `body`.
std::string sign(std::string_view secret, std::string_view body);

// The wait before attempt `attempt` + 1 after attempt `attempt` (1-based) failed: `first`,
// doubled per attempt, never more than `most`.
std::chrono::milliseconds retry_delay(unsigned attempt, std::chrono::milliseconds first,
                                      std::chrono::milliseconds most);

// One event to deliver: its body (signed as it is) and what the headers name.
struct Event {
  std::string id;
  std::string type;
  std::string body;
};

// Events waiting for the delivery thread, at most `capacity`. Thread-safe: any thread
// pushes, the delivery thread pops. A push over the bound drops the new event and counts it
// (the older ones are already promised a place; the newest is the cheapest to lose).
class EventQueue {
 public:
  explicit EventQueue(std::size_t capacity) : capacity_(capacity) {}
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // Whether `event` was queued (false: dropped, and counted).
  bool push(Event event);
  std::optional<Event> pop();
  std::size_t size() const;
  std::uint64_t dropped() const;

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<Event> events_;
  std::uint64_t dropped_ = 0;
};

}  // namespace roomcast::hooks
