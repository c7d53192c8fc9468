#include "hooks/delivery.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <charconv>

namespace roomcast::hooks {

std::variant<HttpTarget, std::string> parse_http_url(std::string_view url) {
  HttpTarget target;
  if (url.starts_with("https://")) {
    target.tls = true;
    target.port = "443";
    url.remove_prefix(std::string_view("https://").size());
  } else if (url.starts_with("http://")) {
    url.remove_prefix(std::string_view("http://").size());
  } else {
    return std::string("must start with http:// or https://");
  }
  const std::size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) target.path = std::string(url.substr(slash));
  if (target.path.find_first_of(" \r\n#") != std::string::npos) {
    return std::string("the path must not contain spaces, line breaks or a fragment");
  }
  if (authority.empty()) return std::string("names no host");
  if (authority.find('@') != std::string_view::npos) {
    return std::string("must not carry credentials (the secret signs every event)");
  }
  target.host_header = std::string(authority);
  std::string_view port;
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::string("an IPv6 host needs its ']'");
    target.host = std::string(authority.substr(1, close - 1));
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::string("expected ':PORT' after the IPv6 host");
      port = rest.substr(1);
    }
  } else {
    const std::size_t colon = authority.find(':');
    target.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (target.host.empty()) return std::string("names no host");
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return std::string("the port must be a number from 1 to 65535");
    }
    target.port = std::string(port);
  }
  return target;
}

std::string sign(std::string_view secret, std::string_view body) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac.data(), &length);
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kDigits[mac[i] >> 4]);
    hex.push_back(kDigits[mac[i] & 0xf]);
  }
  return hex;
}

std::chrono::milliseconds retry_delay(unsigned attempt, std::chrono::milliseconds first,
                                      std::chrono::milliseconds most) {
  std::chrono::milliseconds delay = first;
  for (unsigned i = 1; i < attempt && delay < most; ++i) delay *= 2;
  return std::min(delay, most);
}

bool EventQueue::push(Event event, std::size_t lane) {
  const std::lock_guard lock(mutex_);
  if (size_ >= capacity_) {
    ++dropped_;
    return false;
  }
  lanes_.at(lane).push_back(std::move(event));
  ++size_;
  return true;
}

std::optional<Event> EventQueue::pop(std::size_t lane) {
  const std::lock_guard lock(mutex_);
  auto& events = lanes_.at(lane);
  if (events.empty()) return std::nullopt;
  Event event = std::move(events.front());
  events.pop_front();
  --size_;
  return event;
}

std::size_t EventQueue::size() const {
  const std::lock_guard lock(mutex_);
  return size_;
}

std::size_t EventQueue::waiting(std::size_t lane) const {
  const std::lock_guard lock(mutex_);
  return lanes_.at(lane).size();
}

std::uint64_t EventQueue::dropped() const {
  const std::lock_guard lock(mutex_);
  return dropped_;
}

}  // namespace roomcast::hooks
