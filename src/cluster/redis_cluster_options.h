// RedisClusterOptions: where a RedisCluster connects and its timing, with the defaults --help
// shows. Its own header so the configuration (src/config) names it without Asio or hiredis.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "chat/retention.h"

namespace roomcast::cluster {

struct RedisClusterOptions {
  std::string url;  // redis://[[user]:password@]host[:port][/db]
  // This node's name in logs and Redis keys (a random suffix makes each process unique).
  std::string node_name = "node";
  // Which messages of a room history keeps (chat/retention.h). By count: a room's stream is
  // trimmed to about max_messages (XADD MAXLEN ~, cheap), and loads and reads return at most
  // max_messages, exactly. By age: loads and reads leave out messages older than max_age on
  // the store's clock (Redis keeps them until the count trims them). A message `id` is
  // recognised for max_age (30 days without an age limit), by a key that expires in Redis.
  chat::Retention retention;
  // A node that stops refreshing its liveness key for this long is dead to the others.
  std::chrono::milliseconds node_ttl{10000};
  // How long a command may wait for Redis's reply before Redis is taken for down.
  std::chrono::milliseconds command_timeout{3000};
};

}  // namespace roomcast::cluster
