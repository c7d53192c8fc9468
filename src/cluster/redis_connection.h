// RedisConnection: one hiredis asynchronous connection driven by an Asio io_context.
//
// hiredis does the protocol; it says when it wants to read or write through its adapter
// hooks, and Asio waits for the descriptor to be ready (the adapter below). Nothing blocks
// and no thread is started: every callback runs on the thread running the io_context.
//
// A Redis that stops answering without closing the connection (SIGSTOP, a hung host, a
// partition that drops packets) would leave commands waiting forever: every connection has a
// command timeout. When the oldest command (or the connecting itself, AUTH and PING
// included) waits longer than that, the connection is dropped as if Redis had closed it.
//
// Not thread-safe: use from that thread only.
#pragma once

#include <hiredis/async.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/histogram.h"

namespace roomcast::cluster {

// Where Redis is: redis://[[user]:password@]host[:port][/db].
struct RedisEndpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string user;
  std::string password;
  int db = 0;

  // Throws std::invalid_argument naming what is wrong with `url`.
  static RedisEndpoint parse(std::string_view url);
  std::string describe() const;  // host:port/db, without the password
};

class RedisConnection {
 public:
  // Called with the reply, or with nullptr if the connection went away first.
  using ReplyHandler = std::function<void(redisReply* reply)>;

  // `timeout`: how long a command (or connecting) may wait for Redis before the connection
  // is taken for dead; zero: forever.
  RedisConnection(boost::asio::io_context& io, RedisEndpoint endpoint, std::string name,
                  std::chrono::milliseconds timeout);
  ~RedisConnection();

  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Starts connecting (AUTH and SELECT included). `on_up` runs once the connection can take
  // commands; `on_down` runs once if connecting fails, an established connection is lost or
  // a command waited longer than the timeout (every pending handler has then been called
  // with nullptr). Either may connect() again.
  void connect(std::function<void()> on_up, std::function<void(std::string reason)> on_down);
  bool connected() const { return connected_; }

  // Sends one command. Returns false (and never calls `handler`) when not connected.
  bool command(const std::vector<std::string_view>& argv, ReplyHandler handler);

  // Subscriber connections: every reply to SUBSCRIBE/UNSUBSCRIBE and every published message
  // goes to `handler` (a [kind, channel, payload-or-count] array). Set it before subscribing.
  void set_push_handler(ReplyHandler handler) { push_handler_ = std::move(handler); }
  bool subscribe_command(const std::vector<std::string_view>& argv);

  // Drops the connection without calling on_down.
  void close();

  // Commands sent to their replies (recorded on the connection's thread; any thread may
  // read its values).
  const metrics::Histogram& latency() const { return latency_; }

 private:
  class Watcher;  // the Asio adapter: one per hiredis context
  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);
  static void on_reply(redisAsyncContext* context, void* reply, void* privdata);
  static void on_push(redisAsyncContext* context, void* reply, void* privdata);
  void lost(std::string reason);
  // Checks, every quarter of the timeout, whether Redis owes a reply for too long.
  void watch();

  using Clock = std::chrono::steady_clock;

  boost::asio::io_context& io_;
  const RedisEndpoint endpoint_;
  const std::string name_;
  const std::chrono::milliseconds timeout_;
  boost::asio::steady_timer watchdog_;
  redisAsyncContext* context_ = nullptr;
  std::shared_ptr<Watcher> watcher_;
  bool connected_ = false;
  bool closing_ = false;
  bool up_ = false;  // on_up ran for this connect()
  Clock::time_point connect_started_{};
  std::deque<Clock::time_point> sent_;  // when each command still owed a reply was sent
  std::function<void()> on_up_;
  std::function<void(std::string)> on_down_;
  ReplyHandler push_handler_;
  metrics::Histogram latency_{metrics::kSecondsLayout};
};

// How the `reason` given to on_down starts when Redis did not answer within the timeout.
inline constexpr std::string_view kNoReplyReason = "no reply from Redis within ";

// A reply's text (status, error, string), or "" for other types.
std::string_view reply_text(const redisReply* reply);

}  // namespace roomcast::cluster
