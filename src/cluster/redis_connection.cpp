#include "cluster/redis_connection.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <charconv>
#include <stdexcept>

namespace roomcast::cluster {

namespace asio = boost::asio;

// ---------------------------------------------------------------------------------------
// The adapter. hiredis calls add/del read/write when it starts or stops wanting to; each
// wanted direction keeps one Asio readiness wait outstanding, and readiness hands the
// descriptor back to hiredis. Handlers hold the Watcher, so it outlives the hiredis context
// (which may be freed inside redisAsyncHandleRead); cleanup() detaches it.
// ---------------------------------------------------------------------------------------
class RedisConnection::Watcher : public std::enable_shared_from_this<Watcher> {
 public:
  Watcher(asio::io_context& io, redisAsyncContext* context)
      : descriptor_(io, context->c.fd), context_(context) {}

  ~Watcher() { detach(); }

  void attach() {
    context_->ev.data = this;
    context_->ev.addRead = [](void* w) { static_cast<Watcher*>(w)->want(kRead, true); };
    context_->ev.delRead = [](void* w) { static_cast<Watcher*>(w)->want(kRead, false); };
    context_->ev.addWrite = [](void* w) { static_cast<Watcher*>(w)->want(kWrite, true); };
    context_->ev.delWrite = [](void* w) { static_cast<Watcher*>(w)->want(kWrite, false); };
    context_->ev.cleanup = [](void* w) { static_cast<Watcher*>(w)->detach(); };
  }

 private:
  enum Direction { kRead = 0, kWrite = 1 };

  void want(Direction d, bool on) {
    wanted_[d] = on;
    if (on && !waiting_[d]) wait(d);
  }

  void wait(Direction d) {
    waiting_[d] = true;
    descriptor_.async_wait(
        d == kRead ? asio::posix::descriptor_base::wait_read
                   : asio::posix::descriptor_base::wait_write,
        [self = shared_from_this(), d](boost::system::error_code ec) { self->ready(d, ec); });
  }

  void ready(Direction d, boost::system::error_code ec) {
    waiting_[d] = false;
    if (ec || context_ == nullptr || !wanted_[d]) return;
    if (d == kRead) {
      redisAsyncHandleRead(context_);
    } else {
      redisAsyncHandleWrite(context_);
    }
    // hiredis may have freed the context (detach() ran) or lost interest meanwhile.
    if (context_ != nullptr && wanted_[d] && !waiting_[d]) wait(d);
  }

  // The hiredis context is going away (it closes the descriptor itself).
  void detach() {
    if (context_ == nullptr) return;
    context_ = nullptr;
    wanted_[kRead] = wanted_[kWrite] = false;
    boost::system::error_code ignored;
    descriptor_.cancel(ignored);
    descriptor_.release();
  }

  asio::posix::stream_descriptor descriptor_;
  redisAsyncContext* context_;
  bool wanted_[2] = {false, false};
  bool waiting_[2] = {false, false};
};

// ---------------------------------------------------------------------------------------

namespace {

// `url` for an error message: whatever precedes the last '@' (credentials) is hidden.
std::string redacted(std::string_view url) {
  const auto at = url.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  const auto scheme = url.find("://");
  const auto start = scheme == std::string_view::npos || scheme > at ? 0 : scheme + 3;
  return std::string(url.substr(0, start)) + "***" + std::string(url.substr(at));
}

}  // namespace

RedisEndpoint RedisEndpoint::parse(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) {
    throw std::invalid_argument(
        "--redis must look like redis://[:password@]host[:port][/db], got '" + redacted(url) + "'");
  }
  RedisEndpoint endpoint;
  std::string_view rest = url.substr(kScheme.size());
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view credentials = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (const auto colon = credentials.find(':'); colon != std::string_view::npos) {
      endpoint.user = credentials.substr(0, colon);
      endpoint.password = credentials.substr(colon + 1);
    } else {
      endpoint.password = credentials;
    }
  }
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      const auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), endpoint.db);
      if (ec != std::errc() || end != db.data() + db.size() || endpoint.db < 0) {
        throw std::invalid_argument("--redis: database must be a number, got '" + std::string(db) +
                                    "'");
      }
    }
  }
  if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    const std::string_view port = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      throw std::invalid_argument("--redis: port must be 1..65535, got '" + std::string(port) +
                                  "'");
    }
    endpoint.port = static_cast<std::uint16_t>(value);
  }
  if (!rest.empty()) endpoint.host = rest;
  return endpoint;
}

std::string RedisEndpoint::describe() const {
  return host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

std::string_view reply_text(const redisReply* reply) {
  if (reply == nullptr) return {};
  switch (reply->type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STRING:
      return {reply->str, reply->len};
    default:
      return {};
  }
}

RedisConnection::RedisConnection(asio::io_context& io, RedisEndpoint endpoint, std::string name,
                                 std::chrono::milliseconds timeout)
    : io_(io),
      endpoint_(std::move(endpoint)),
      name_(std::move(name)),
      timeout_(timeout),
      watchdog_(io) {}

RedisConnection::~RedisConnection() {
  close();
}

void RedisConnection::connect(std::function<void()> on_up,
                              std::function<void(std::string)> on_down) {
  close();
  closing_ = false;
  up_ = false;
  sent_.clear();
  connect_started_ = Clock::now();
  on_up_ = std::move(on_up);
  on_down_ = std::move(on_down);
  context_ = redisAsyncConnect(endpoint_.host.c_str(), endpoint_.port);
  if (context_ == nullptr || context_->err != 0) {
    std::string reason = context_ != nullptr ? context_->errstr : "out of memory";
    if (context_ != nullptr) redisAsyncFree(context_);
    context_ = nullptr;
    lost("cannot connect: " + reason);
    return;
  }
  context_->data = this;
  watcher_ = std::make_shared<Watcher>(io_, context_);
  watcher_->attach();
  redisAsyncSetDisconnectCallback(context_, &RedisConnection::on_disconnect);
  // Setting the connect callback arms the first write readiness, which completes connect(2).
  redisAsyncSetConnectCallback(context_, &RedisConnection::on_connect);
  watch();
}

void RedisConnection::watch() {
  if (timeout_.count() <= 0) return;
  watchdog_.expires_after(std::max(timeout_ / 4, std::chrono::milliseconds(10)));
  watchdog_.async_wait([this](boost::system::error_code ec) {
    if (ec || context_ == nullptr) return;
    const auto now = Clock::now();
    // A Redis that accepts connections but does not answer (stopped, hung) is no better
    // than one that is gone: what waits on it must be told, and the link tried again.
    const bool overdue = (!up_ && now - connect_started_ > timeout_) ||
                         (!sent_.empty() && now - sent_.front() > timeout_);
    if (!overdue) {
      watch();
      return;
    }
    lost(std::string(kNoReplyReason) + std::to_string(timeout_.count()) + " ms");
    close();
  });
}

void RedisConnection::on_connect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<RedisConnection*>(context->data);
  if (status != REDIS_OK) {
    // hiredis frees the context when this returns.
    self->context_ = nullptr;
    self->lost(std::string("cannot connect: ") +
               (context->errstr != nullptr ? context->errstr : ""));
    return;
  }
  self->connected_ = true;
  const auto check = [self](std::string_view what) {
    return [self, what](redisReply* reply) {
      if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) {
        spdlog::error("redis {}: {} refused: {}", self->name_, what, reply_text(reply));
        self->lost(std::string(what) + " refused");
        self->close();
      }
    };
  };
  if (!self->endpoint_.password.empty()) {
    if (self->endpoint_.user.empty()) {
      self->command({"AUTH", self->endpoint_.password}, check("AUTH"));
    } else {
      self->command({"AUTH", self->endpoint_.user, self->endpoint_.password}, check("AUTH"));
    }
  }
  if (self->endpoint_.db != 0) {
    const std::string db = std::to_string(self->endpoint_.db);
    self->command({"SELECT", db}, check("SELECT"));
  }
  // Replies come in order: once PING answers, AUTH and SELECT have succeeded.
  self->command({"PING"}, [self](redisReply* reply) {
    if (reply == nullptr || reply->type == REDIS_REPLY_ERROR) return;
    self->up_ = true;
    if (self->on_up_) self->on_up_();
  });
}

void RedisConnection::on_disconnect(const redisAsyncContext* context, int /*status*/) {
  auto* self = static_cast<RedisConnection*>(context->data);
  std::string reason =
      context->errstr != nullptr && context->err != 0 ? context->errstr : "connection closed";
  // hiredis frees the context when this returns.
  self->context_ = nullptr;
  self->connected_ = false;
  if (!self->closing_) self->lost(std::move(reason));
}

void RedisConnection::lost(std::string reason) {
  connected_ = false;
  if (closing_) return;
  closing_ = true;  // one on_down per connect()
  // Not from inside hiredis: on_down may connect again.
  asio::post(io_, [on_down = on_down_, reason = std::move(reason)] {
    if (on_down) on_down(reason);
  });
}

bool RedisConnection::command(const std::vector<std::string_view>& argv, ReplyHandler handler) {
  if (context_ == nullptr || !connected_) return false;
  std::vector<const char*> args;
  std::vector<std::size_t> lengths;
  args.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const auto arg : argv) {
    args.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  auto* owned = new ReplyHandler(std::move(handler));
  if (redisAsyncCommandArgv(context_, &RedisConnection::on_reply, owned,
                            static_cast<int>(args.size()), args.data(),
                            lengths.data()) != REDIS_OK) {
    delete owned;
    return false;
  }
  sent_.push_back(Clock::now());
  return true;
}

bool RedisConnection::subscribe_command(const std::vector<std::string_view>& argv) {
  if (context_ == nullptr || !connected_) return false;
  std::vector<const char*> args;
  std::vector<std::size_t> lengths;
  for (const auto arg : argv) {
    args.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  return redisAsyncCommandArgv(context_, &RedisConnection::on_push, this,
                               static_cast<int>(args.size()), args.data(),
                               lengths.data()) == REDIS_OK;
}

void RedisConnection::on_reply(redisAsyncContext* context, void* reply, void* privdata) {
  const std::unique_ptr<ReplyHandler> handler(static_cast<ReplyHandler*>(privdata));
  // Replies come in the order of the commands: this one answers the oldest.
  auto* self = static_cast<RedisConnection*>(context->data);
  if (self != nullptr && !self->sent_.empty()) {
    // nullptr: no reply (the connection went away), so no latency to speak of.
    if (reply != nullptr) self->latency_.record(Clock::now() - self->sent_.front());
    self->sent_.pop_front();
  }
  if (*handler) (*handler)(static_cast<redisReply*>(reply));
}

void RedisConnection::on_push(redisAsyncContext* /*context*/, void* reply, void* privdata) {
  auto* self = static_cast<RedisConnection*>(privdata);
  // nullptr: the connection is going away; on_disconnect reports it.
  if (reply != nullptr && self->push_handler_) self->push_handler_(static_cast<redisReply*>(reply));
}

void RedisConnection::close() {
  closing_ = true;
  connected_ = false;
  if (context_ != nullptr) {
    redisAsyncContext* context = context_;
    context_ = nullptr;
    // Calls every pending handler with nullptr; deferred by hiredis if inside a callback.
    redisAsyncFree(context);
  }
  sent_.clear();
}

}  // namespace roomcast::cluster
