// RedisConnection: one hiredis asynchronous connection driven by an Asio io_context.
//
// hiredis does the protocol; it says when it wants to read or write through its adapter
// hooks, and Asio waits for the descriptor to be ready (the adapter below). Nothing blocks
// and no thread is started: every callback runs on the thread running the io_context.
//
// Not thread-safe: use from that thread only.
#pragma once

#include <hiredis/async.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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

  RedisConnection(boost::asio::io_context& io, RedisEndpoint endpoint, std::string name);
  ~RedisConnection();

  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Starts connecting (AUTH and SELECT included). `on_up` runs once the connection can take
  // commands; `on_down` runs once if connecting fails or an established connection is lost
  // (every pending handler has then been called with nullptr). Either may connect() again.
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

 private:
  class Watcher;  // the Asio adapter: one per hiredis context
  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);
  static void on_reply(redisAsyncContext* context, void* reply, void* privdata);
  static void on_push(redisAsyncContext* context, void* reply, void* privdata);
  void lost(std::string reason);

  boost::asio::io_context& io_;
  const RedisEndpoint endpoint_;
  const std::string name_;
  redisAsyncContext* context_ = nullptr;
  std::shared_ptr<Watcher> watcher_;
  bool connected_ = false;
  bool closing_ = false;
  std::function<void()> on_up_;
  std::function<void(std::string)> on_down_;
  ReplyHandler push_handler_;
};

// A reply's text (status, error, string), or "" for other types.
std::string_view reply_text(const redisReply* reply);

}  // namespace roomcast::cluster
