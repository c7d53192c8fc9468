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
#include <vector>

namespace roomcast::hooks {

// A parsed http:// or https:// URL.
struct HttpTarget {
  bool tls = false;  // https://
  std::string host;  // without the brackets of an IPv6 literal
  std::string port = "80";  // 443 for https:// unless the URL names one
  std::string path = "/";
  std::string host_header;  // as the URL wrote it (host[:port])
};

// The target of `url`, or why it is not one ("must start with http:// or https://").
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

// Events waiting for the delivery thread, at most `capacity` in all, in `lanes` queues (a
// lane is delivered in order, one event at a time; the lanes side by side). Thread-safe: any
// thread pushes, the delivery thread pops. A push over the bound drops the new event and
// counts it (the older ones are already promised a place; the newest is the cheapest to lose).
class EventQueue {
 public:
  explicit EventQueue(std::size_t capacity, std::size_t lanes = 1)
      : capacity_(capacity), lanes_(lanes == 0 ? 1 : lanes) {}
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // Whether `event` was queued on `lane` (< lanes) (false: dropped, and counted).
  bool push(Event event, std::size_t lane = 0);
  // The oldest event of `lane`, if any.
  std::optional<Event> pop(std::size_t lane = 0);
  // Events waiting, in all lanes; in `lane`.
  std::size_t size() const;
  std::size_t waiting(std::size_t lane) const;
  std::uint64_t dropped() const;

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::vector<std::deque<Event>> lanes_;
  std::size_t size_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace roomcast::hooks
