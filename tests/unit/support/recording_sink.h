// RecordingSink: a chat::Sink for unit tests that records what each connection would
// receive, broadcasts expanded per recipient, as parsed JSON objects. Thread-safe, since a
// Hub with a store hears from the store's thread.
#pragma once

#include <boost/json.hpp>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "chat/sink.h"

namespace roomcast::test_support {

class RecordingSink final : public chat::Sink {
 public:
  void send(chat::ConnectionId to, std::string payload) override {
    std::lock_guard lock(mutex_);
    inbox[to].push_back(boost::json::parse(payload).as_object());
  }
  void broadcast(const chat::MemberSnapshot& members, std::string payload,
                 chat::ConnectionId except) override {
    std::lock_guard lock(mutex_);
    ++broadcasts;
    const auto doc = boost::json::parse(payload).as_object();
    for (auto id : *members) {
      if (id != except) inbox[id].push_back(doc);
    }
  }
  // Records what a transport would measure of a chat message, then broadcasts it.
  void broadcast_message(const chat::MemberSnapshot& members, std::string payload,
                         chat::ConnectionId except, const chat::Delivery& delivery) override {
    {
      std::lock_guard lock(mutex_);
      deliveries.push_back(delivery);
    }
    broadcast(members, std::move(payload), except);
  }
  void broadcast_binary(const chat::MemberSnapshot& members, std::string_view payload,
                        chat::ConnectionId except) override {
    std::lock_guard lock(mutex_);
    for (auto id : *members) {
      if (id != except) binary[id].emplace_back(payload);
    }
  }
  void close(chat::ConnectionId who, std::uint16_t close_code, std::string reason) override {
    std::lock_guard lock(mutex_);
    closes[who].push_back({close_code, std::move(reason)});
  }
  void hold_reading(chat::ConnectionId who, bool hold) override {
    std::lock_guard lock(mutex_);
    holds[who].push_back(hold);
  }

  // The messages of `type` that `who` has received, in order.
  std::vector<boost::json::object> of_type(chat::ConnectionId who, std::string_view type) {
    std::lock_guard lock(mutex_);
    std::vector<boost::json::object> out;
    for (const auto& m : inbox[who]) {
      if (m.at("type").as_string() == type) out.push_back(m);
    }
    return out;
  }

  // Like of_type, and forgets them: the next take of that type sees only newer ones.
  std::vector<boost::json::object> take(chat::ConnectionId who, std::string_view type) {
    std::lock_guard lock(mutex_);
    std::vector<boost::json::object> out;
    std::erase_if(inbox[who], [&](const boost::json::object& m) {
      if (m.at("type").as_string() != type) return false;
      out.push_back(m);
      return true;
    });
    return out;
  }

  void clear() {
    std::lock_guard lock(mutex_);
    inbox.clear();
    binary.clear();
    closes.clear();
    holds.clear();
  }

  // Read directly only while no other thread can call the Hub.
  std::map<chat::ConnectionId, std::vector<boost::json::object>> inbox;
  std::map<chat::ConnectionId, std::vector<std::string>> binary;  // binary messages, in order
  struct Close {
    std::uint16_t code;
    std::string reason;
  };
  std::map<chat::ConnectionId, std::vector<Close>> closes;  // what close() asked, in order
  std::map<chat::ConnectionId, std::vector<bool>> holds;  // what hold_reading() asked, in order
  int broadcasts = 0;
  std::vector<chat::Delivery> deliveries;  // of each chat message broadcast, in order

 private:
  std::mutex mutex_;
};

}  // namespace roomcast::test_support
