// RedisClusterOptions: where a RedisCluster connects and its timing, with the defaults --help
// shows. Its own header so the configuration (src/config) names it without Asio or hiredis.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace roomcast::cluster {

struct RedisClusterOptions {
  std::string url;  // redis://[[user]:password@]host[:port][/db]
  // This node's name in logs and Redis keys (a random suffix makes each process unique).
  std::string node_name = "node";
  // History kept per room in its stream (approximately: XADD MAXLEN ~).
  std::size_t history_size = 1000;
  // How long a message `id` is recognised; zero: 30 days.
  std::chrono::milliseconds id_ttl{0};
  // A node that stops refreshing its liveness key for this long is dead to the others.
  std::chrono::milliseconds node_ttl{10000};
  // How long a command may wait for Redis's reply before Redis is taken for down.
  std::chrono::milliseconds command_timeout{3000};
};

}  // namespace roomcast::cluster
