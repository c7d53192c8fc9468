#include "net/connection.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <cstring>

#include "http/credentials.h"
#include "net/upgrade.h"
#include "net/worker.h"
#include "ws/frame.h"
#include "ws/handshake.h"

namespace roomcast::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using boost::system::error_code;
using metrics::Counter;

Connection::Connection(Worker& worker, Socket socket, chat::ConnectionId id)
    : worker_(worker),
      id_(id),
      last_activity_(worker.context().clock.now()),
      last_ping_or_deadline_(last_activity_),
      http_(make_http_phase(std::move(socket))),
      reader_(ws::Role::kServer, worker.context().options.max_message_size) {}

boost::intrusive_ptr<Connection::HttpPhase> Connection::make_http_phase(Socket socket) {
  SslSession tls;
  if (const TlsContext* context = worker_.context().tls) {
    tls = context->new_session(socket.native_handle());
  }
  return new HttpPhase(*this, std::move(socket), std::move(tls));
}

SSL* Connection::tls_session() const {
  if (ssl_) return ssl_.get();
  return http_ ? http_->ssl.get() : nullptr;
}

Connection::~Connection() {
  // Handlers of cancelled HTTP operations may still hold the phase: they must find no one.
  if (http_) http_->owner = nullptr;
  if (fd_ >= 0) ::close(fd_);
}

void Connection::start() {
  http_->buffer = beast::flat_buffer(worker_.context().options.max_http_header_bytes +
                                     worker_.context().options.max_http_body_bytes);
  if (worker_.context().tls == nullptr) {
    do_read_request();
    return;
  }
  // OpenSSL reads and writes the descriptor itself: it must never block the worker.
  error_code blocking_error;
  http_->socket.non_blocking(true, blocking_error);
  if (!http_->ssl || blocking_error) {  // out of memory, or the socket is already gone
    close_now();
    return;
  }
  http_->stream.async_handshake([phase = http_](error_code ec, std::size_t) {
    if (Connection* self = phase->owner) self->on_handshake(ec);
  });
}

void Connection::on_handshake(error_code ec) {
  if (state_ != State::kHttp) return;
  if (ec) {
    // Not TLS at all (plain HTTP on a TLS port), an untrusted certificate, or a reset: there
    // is no channel to answer on, so the connection just ends.
    if (ec != asio::error::operation_aborted) worker_.metrics().add(Counter::kHandshakeErrors);
    close_now();
    return;
  }
  do_read_request();
}

// ---- HTTP phase ------------------------------------------------------------------------

void Connection::do_read_request() {
  const auto& options = worker_.context().options;
  http_->parser.emplace();
  http_->parser->header_limit(static_cast<std::uint32_t>(options.max_http_header_bytes));
  http_->parser->body_limit(options.max_http_body_bytes);
  bhttp::async_read(http_->stream, http_->buffer, *http_->parser,
                    [phase = http_](error_code ec, std::size_t bytes) {
                      Connection* self = phase->owner;
                      if (self == nullptr) return;  // the connection is gone
                      self->worker_.metrics().add(Counter::kBytesReceived, bytes);
                      self->on_read_request(ec);
                    });
}

void Connection::on_read_request(error_code ec) {
  if (state_ != State::kHttp) return;
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
    close_now();
    return;
  }
  if (ec) {
    // A malformed or oversized request gets a definite answer, then the connection ends.
    do_write_response(parse_error_response(ec));
    return;
  }
  last_activity_ = worker_.context().clock.now();
  const http::Request& request = http_->parser->get();
  switch (route_request(request, worker_.context().options.echo_endpoint)) {
    case Route::kChat:
      upgrade(request, Endpoint::kChat);
      return;
    case Route::kEcho:
      upgrade(request, Endpoint::kEcho);
      return;
    case Route::kNoWebSocketHere: {
      worker_.metrics().add(Counter::kHandshakeErrors);
      auto res = http::Service::error(request, bhttp::status::not_found,
                                      "No WebSocket endpoint here; connect to / or /ws");
      res.keep_alive(false);
      do_write_response(std::move(res));
      return;
    }
    case Route::kHttp:
      worker_.metrics().add(Counter::kHttpRequests);
      // The answer may come from another thread (a history read from a cluster's Redis):
      // it finds the connection by id, on this worker, if it is still open.
      worker_.context().http.handle(request, [&worker = worker_, id = id_](http::Response res) {
        worker.post_http_response(id, std::move(res));
      });
      return;
  }
}

void Connection::answer_http(http::Response response) {
  if (state_ != State::kHttp || !http_) return;
  do_write_response(std::move(response));
}

void Connection::do_write_response(http::Response response) {
  const bool keep_alive = response.keep_alive() && !response.need_eof();
  http_->response = std::move(response);
  bhttp::async_write(http_->stream, http_->response,
                     [phase = http_, keep_alive](error_code ec, std::size_t bytes) {
                       Connection* self = phase->owner;
                       if (self == nullptr) return;
                       self->worker_.metrics().add(Counter::kBytesSent, bytes);
                       self->on_write_response(ec, keep_alive);
                     });
}

void Connection::on_write_response(error_code ec, bool keep_alive) {
  if (state_ != State::kHttp) return;
  if (ec || !keep_alive || worker_.draining()) {
    linger();
    return;
  }
  do_read_request();
}

void Connection::upgrade(const http::Request& request, Endpoint endpoint) {
  const ws::UpgradeRequest fields = upgrade_fields(request);
  const ws::HandshakeCheck check = ws::check_upgrade(fields);
  if (check.verdict != ws::HandshakeVerdict::kAccept) {
    worker_.metrics().add(Counter::kHandshakeErrors);
    do_write_response(handshake_refusal(request, check));
    return;
  }
  if (!admit(request)) return;
  if (endpoint == Endpoint::kChat) authenticate(request);
  endpoint_ = endpoint;
  state_ = State::kUpgrading;
  std::string& out = http_->upgrade_response;
  out =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  out += ws::accept_key(fields.key);
  out += "\r\nServer: roomcast\r\n\r\n";
  asio::async_write(http_->stream, asio::buffer(out),
                    [phase = http_](error_code ec, std::size_t bytes) {
                      Connection* self = phase->owner;
                      if (self == nullptr) return;
                      self->worker_.metrics().add(Counter::kBytesSent, bytes);
                      self->on_upgrade_written(ec);
                    });
}

// The policy checks a valid handshake still has to pass: Origin, then connection limits.
// Each refusal is an HTTP answer, so a browser sees a definite status.
bool Connection::admit(const http::Request& request) {
  const auto& context = worker_.context();
  if (!origin_allowed(request, context.options.allowed_origins)) {
    worker_.metrics().add(Counter::kOriginRefusals);
    do_write_response(policy_refusal(request, bhttp::status::forbidden,
                                     "WebSocket handshake refused: Origin not allowed"));
    return false;
  }
  error_code ec;
  http_->peer_address =
      http::client_address(request, http_->socket.remote_endpoint(ec).address(),
                           context.options.trusted_proxies, context.options.client_address_header);
  switch (context.gate.admit(http_->peer_address, gate_pass_)) {
    case ConnectionGate::Verdict::kAdmitted:
      return true;
    case ConnectionGate::Verdict::kServerFull:
      worker_.metrics().add(Counter::kConnectionLimitRefusals);
      do_write_response(policy_refusal(request, bhttp::status::service_unavailable,
                                       "Server at its connection limit; try again later"));
      return false;
    case ConnectionGate::Verdict::kAddressFull:
      worker_.metrics().add(Counter::kConnectionLimitRefusals);
      do_write_response(policy_refusal(request, bhttp::status::service_unavailable,
                                       "Too many connections from your address"));
      return false;
  }
  return false;
}

// Judges the handshake's token now, while the request is at hand; a refusal is sent as a
// 4001 close right after the upgrade, as in the chapter (a browser's WebSocket API shows a
// close code, not an HTTP status).
void Connection::authenticate(const http::Request& request) {
  const auto& context = worker_.context();
  auto credentials =
      http::check_credentials(request, context.authenticator, context.options.require_auth);
  switch (credentials.verdict) {
    case http::Credentials::Verdict::kAnonymous:
      return;
    case http::Credentials::Verdict::kVerified:
      http_->identity = std::move(credentials.identity);
      return;
    case http::Credentials::Verdict::kMissing:
      http_->auth_refusal = "Authentication required";
      return;
    case http::Credentials::Verdict::kInvalid:
      spdlog::info("connection {:x} from {}: invalid token: {}", id_, http_->peer_address,
                   credentials.failure);
      http_->auth_refusal = "Invalid token";
      return;
  }
}

void Connection::start_chat(HttpPhase& phase) {
  if (!phase.auth_refusal.empty()) {
    worker_.metrics().add(Counter::kAuthFailures);
    send_close(ws::CloseCode::kAuthRequired, phase.auth_refusal);
    close_after_flush_ = true;
    return;
  }
  joined_hub_ = true;
  worker_.hub().connect(
      id_, chat::ConnectInfo{std::move(phase.identity), std::move(phase.peer_address)});
}

void Connection::on_upgrade_written(error_code ec) {
  if (state_ != State::kUpgrading) return;
  if (ec) {
    close_now();
    return;
  }
  // The descriptor leaves Asio here: from now on the worker's epoll set watches it.
  fd_ = http_->socket.release(ec);
  if (!ec && ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK) != 0) {
    ec.assign(errno, boost::system::system_category());
  }
  if (ec || !worker_.watch(fd_, this)) {
    close_now();
    return;
  }
  state_ = State::kOpen;
  worker_.metrics().add(Counter::kWebSocketsOpened);
  const auto now = worker_.context().clock.now();
  last_activity_ = now;
  last_ping_or_deadline_ = now;
  // Bytes that arrived right behind the request are the first frames; after handling
  // them the HTTP phase's buffers are freed: an idle WebSocket holds no read buffer.
  const boost::intrusive_ptr<HttpPhase> phase = std::move(http_);
  ssl_ = std::move(phase->ssl);  // TLS goes on in the epoll phase, on the same session
  if (endpoint_ == Endpoint::kChat) start_chat(*phase);
  if (phase->buffer.size() > 0) {
    auto data = phase->buffer.data();
    consume({static_cast<std::uint8_t*>(data.data()), data.size()});
  }
}

// ---- WebSocket phase ---------------------------------------------------------------------

void Connection::on_events(std::uint32_t events) {
  if (state_ == State::kClosed) return;  // closed earlier in this batch of events
  if ((events & EPOLLOUT) != 0 && writing_) {
    wait_writable(false);
    flush();
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0 && state_ != State::kClosed) on_readable();
}

void Connection::on_readable() {
  if (ssl_) {
    on_tls_readable();
    return;
  }
  // Read into the worker's shared buffer: nothing per connection unless a frame is partial.
  const std::span<std::uint8_t> buffer = worker_.read_buffer();
  // While the fan-out is behind, take a small bite: a sender's whole socket buffer of
  // messages would queue hundreds of fan-outs at once, ahead of everyone else's.
  const std::size_t want = worker_.fanout_backlogged() ? kBackloggedReadBytes : buffer.size();
  const ssize_t n = ::read(fd_, buffer.data(), want);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {
    close_now();  // EOF or reset: the peer is gone
    return;
  }
  const auto bytes = static_cast<std::size_t>(n);
  worker_.metrics().add(Counter::kBytesReceived, bytes);
  last_activity_ = worker_.context().clock.now();
  if (state_ == State::kLingering) return;  // discard until the peer's FIN
  consume(buffer.first(bytes));
}

void Connection::on_tls_readable() {
  // OpenSSL may hold decrypted bytes the descriptor no longer signals (a record larger than
  // one read, several records in one segment), so read until it asks for more input.
  const std::span<std::uint8_t> buffer = worker_.read_buffer();
  for (;;) {
    std::size_t n = 0;
    switch (tls_read(ssl_.get(), buffer, n)) {
      case TlsStatus::kDone:
        break;
      case TlsStatus::kWantRead:
      case TlsStatus::kWantWrite:  // a TLS 1.2 renegotiation, which we never start
        return;
      case TlsStatus::kClosed:
      case TlsStatus::kFailed:
        close_now();
        return;
    }
    worker_.metrics().add(Counter::kBytesReceived, n);
    last_activity_ = worker_.context().clock.now();
    if (state_ == State::kLingering) continue;  // discard until the peer's close
    consume(buffer.first(n));
    if (state_ == State::kClosed) return;
  }
}

void Connection::consume(std::span<std::uint8_t> bytes) {
  const ws::ReadResult result = reader_.feed(bytes, *this);
  if (!result.ok) fail(result.close_code, result.reason);
}

void Connection::fail(ws::CloseCode code, std::string_view reason) {
  switch (code) {
    case ws::CloseCode::kProtocolError:
      worker_.metrics().add(Counter::kProtocolErrors);
      break;
    case ws::CloseCode::kInvalidPayload:
      worker_.metrics().add(Counter::kInvalidPayloadErrors);
      break;
    case ws::CloseCode::kMessageTooBig:
      worker_.metrics().add(Counter::kMessageTooBigErrors);
      break;
    default:
      break;
  }
  spdlog::debug("connection {:x}: closing with {}: {}", id_, static_cast<int>(code), reason);
  // After a protocol error nothing more the peer sends can be trusted: send our close
  // frame and end the connection without waiting for the peer's reply.
  send_close(code, reason);
  close_after_flush_ = true;
}

void Connection::on_message(std::string_view payload, bool binary) {
  worker_.metrics().add(Counter::kMessagesReceived);
  if (state_ != State::kOpen) return;  // after our close frame, data is ignored (RFC 6455 5.5.1)
  if (endpoint_ == Endpoint::kEcho) {
    auto frame = base::make_shared_frame(
        ws::make_frame(binary ? ws::Opcode::kBinary : ws::Opcode::kText, payload));
    enqueue(frame);
    return;
  }
  if (binary) {
    worker_.hub().receive_binary(id_);
  } else {
    worker_.hub().receive(id_, payload);
  }
  // The frames already read are handled; further ones wait in the socket while the
  // fan-out is behind, so one sender's burst cannot queue everyone behind it.
  if (worker_.fanout_backlogged()) pause_reading();
}

void Connection::on_ping(std::string_view payload) {
  if (state_ != State::kOpen) return;
  enqueue(base::make_shared_frame(ws::make_frame(ws::Opcode::kPong, payload)));
}

void Connection::on_pong(std::string_view) {}  // last_activity_ already counts it

void Connection::on_close(std::uint16_t code, std::string_view) {
  if (state_ == State::kClosing) {
    // The reply to our close frame: the handshake is complete.
    close_after_flush_ = true;
    if (queued_bytes_ == 0) after_flushed();
    return;
  }
  // The peer started the closing handshake: echo its code (RFC 6455 5.5.1), then end.
  const auto reply = code == static_cast<std::uint16_t>(ws::CloseCode::kNoStatus)
                         ? std::string()
                         : ws::make_close_payload(static_cast<ws::CloseCode>(code), "");
  enqueue(base::make_shared_frame(ws::make_frame(ws::Opcode::kClose, reply)));
  state_ = State::kClosing;
  last_ping_or_deadline_ = worker_.context().clock.now() + worker_.context().options.close_timeout;
  close_after_flush_ = true;
}

void Connection::send_close(ws::CloseCode code, std::string_view reason) {
  if (state_ != State::kOpen) return;
  enqueue(base::make_shared_frame(
      ws::make_frame(ws::Opcode::kClose, ws::make_close_payload(code, reason))));
  state_ = State::kClosing;
  last_ping_or_deadline_ = worker_.context().clock.now() + worker_.context().options.close_timeout;
}

// ---- sending -----------------------------------------------------------------------------

void Connection::enqueue(const base::SharedFrame& frame) {
  // Once our close frame is queued (state leaves kOpen), nothing may follow it.
  if (state_ != State::kOpen || slow_consumer_) return;
  sent_since_sweep_ = true;
  queue_.push_back(frame);
  queued_bytes_ += frame->size();
  // Over the bound while the socket is full, the peer is not reading: a slow consumer. A
  // burst (a group of messages made durable together) may pass the bound before the next
  // flush has had a chance, up to twice the bound; flush() judges again once it has written.
  const std::size_t limit = worker_.context().options.max_queued_bytes;
  if (queued_bytes_ > limit && (writing_ || queued_bytes_ > 2 * limit)) {
    mark_slow_consumer();
    return;
  }
  if (!writing_ && queue_.size() - queue_head_ == 1) worker_.schedule_flush(id_);
}

void Connection::mark_slow_consumer() {
  if (slow_consumer_) return;
  slow_consumer_ = true;
  worker_.schedule_slow_consumer_close(id_);
}

void Connection::close_slow_consumer() {
  if (state_ != State::kOpen) return;
  // Drop what the peer could not take, except a frame already partly on the wire (cutting
  // it would corrupt the framing), so the close frame goes out next.
  const std::size_t keep = front_offset_ > 0 ? 1 : 0;
  for (std::size_t i = queue_head_ + keep; i < queue_.size(); ++i) queue_[i].reset();
  queue_.resize(queue_head_ + keep);
  queued_bytes_ = keep ? queue_[queue_head_]->size() - front_offset_ : 0;
  slow_consumer_ = false;
  send_close(ws::CloseCode::kPolicyViolation, "Slow consumer: send queue limit exceeded");
  slow_consumer_ = true;
  close_after_flush_ = true;
  if (!writing_) flush();
}

void Connection::flush() {
  if (writing_ || fd_ < 0) return;
  if (ssl_) {
    flush_tls();
    return;
  }
  std::span<iovec> iovecs = worker_.iovec_scratch();
  std::size_t written_this_turn = 0;
  while (queue_head_ < queue_.size()) {
    if (written_this_turn >= kMaxFlushBytesPerTurn) {
      worker_.schedule_flush(id_);  // the rest in the next batch, after other work
      return;
    }
    std::size_t count = 0;
    std::size_t offset = front_offset_;
    for (std::size_t i = queue_head_; i < queue_.size() && count < iovecs.size(); ++i) {
      const std::string& bytes = *queue_[i];
      iovecs[count].iov_base = const_cast<char*>(bytes.data() + offset);
      iovecs[count].iov_len = bytes.size() - offset;
      ++count;
      offset = 0;
    }
    // sendmsg rather than writev for MSG_NOSIGNAL: a peer that has gone away must cost us
    // an EPIPE for this connection, not a SIGPIPE that ends the whole process.
    msghdr message{};
    message.msg_iov = iovecs.data();
    message.msg_iovlen = count;
    const ssize_t n = ::sendmsg(fd_, &message, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      socket_full();
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close_now();
      return;
    }
    written_this_turn += static_cast<std::size_t>(n);
    pop_written(static_cast<std::size_t>(n));
    if (queue_head_ < queue_.size() && front_offset_ > 0) {
      socket_full();  // the socket took less than offered
      return;
    }
  }
  queue_emptied();
}

void Connection::pop_written(std::size_t written) {
  worker_.metrics().add(Counter::kBytesSent, written);
  queued_bytes_ -= written;
  // Pop what was fully written; remember how far into the next frame we got.
  written += front_offset_;
  while (queue_head_ < queue_.size() && written >= queue_[queue_head_]->size()) {
    written -= queue_[queue_head_]->size();
    if (ping_state_ == PingState::kQueued && queue_[queue_head_] == worker_.ping_frame()) {
      // The heartbeat's clock starts now, when the peer can see the ping, not when it was
      // queued (net/heartbeat.h).
      ping_state_ = PingState::kSent;
      last_ping_or_deadline_ = worker_.context().clock.now();
    }
    queue_[queue_head_].reset();
    ++queue_head_;
  }
  front_offset_ = written;
}

void Connection::queue_emptied() {
  // Keep a small queue's capacity, so the next message costs no allocation; give back what
  // a burst grew, so an idle connection holds little.
  if (queue_.capacity() > kRetainedQueueCapacity) {
    std::vector<base::SharedFrame>().swap(queue_);
  } else {
    queue_.clear();
  }
  queue_head_ = 0;
  front_offset_ = 0;
  after_flushed();
}

// TLS has no gather write: queued frames are copied into one record-sized chunk per
// SSL_write, which also keeps the records (and their overhead) few. A retry after
// kWantWrite rebuilds the chunk from the same queue position, so it starts with the same
// bytes and is at least as long, as OpenSSL requires.
void Connection::flush_tls() {
  static thread_local std::array<std::uint8_t, kTlsChunkBytes> chunk;
  std::size_t written_this_turn = 0;
  while (queue_head_ < queue_.size()) {
    if (written_this_turn >= kMaxFlushBytesPerTurn) {
      worker_.schedule_flush(id_);
      return;
    }
    std::size_t size = 0;
    std::size_t offset = front_offset_;
    for (std::size_t i = queue_head_; i < queue_.size() && size < chunk.size(); ++i) {
      const std::string& bytes = *queue_[i];
      const std::size_t take = std::min(bytes.size() - offset, chunk.size() - size);
      std::memcpy(chunk.data() + size, bytes.data() + offset, take);
      size += take;
      offset = 0;
    }
    std::size_t written = 0;
    switch (tls_write(ssl_.get(), chunk.data(), size, written)) {
      case TlsStatus::kDone:
        break;
      case TlsStatus::kWantWrite:
      case TlsStatus::kWantRead:
        socket_full();
        return;
      case TlsStatus::kClosed:
      case TlsStatus::kFailed:
        close_now();
        return;
    }
    written_this_turn += written;
    pop_written(written);
  }
  queue_emptied();
}

void Connection::socket_full() {
  wait_writable(true);
  if (queued_bytes_ > worker_.context().options.max_queued_bytes) mark_slow_consumer();
}

void Connection::wait_writable(bool wait) {
  if (writing_ == wait) return;
  writing_ = wait;
  if (!worker_.watch_events(fd_, this, !reading_paused_, wait)) close_now();
}

void Connection::pause_reading() {
  if (reading_paused_ || fd_ < 0 || state_ != State::kOpen) return;
  reading_paused_ = true;
  worker_.remember_paused(id_);
  if (!worker_.watch_events(fd_, this, false, writing_)) close_now();
}

void Connection::resume_reading() {
  if (!reading_paused_) return;
  reading_paused_ = false;
  if (fd_ >= 0 && !worker_.watch_events(fd_, this, true, writing_)) close_now();
}

void Connection::enqueue_ping(base::SteadyTime now) {
  if (state_ != State::kOpen || slow_consumer_) return;
  // Ahead of every frame not yet started: a ping behind seconds of a busy room's backlog
  // would measure our queue, not the peer. Never inside a frame (that would corrupt the
  // framing), and on TLS, while a write waits for its retry, behind the bytes the retry
  // must repeat (flush_tls).
  std::size_t at = queue_head_ + (front_offset_ > 0 ? 1 : 0);
  if (ssl_ && writing_) {
    std::size_t retried = 0;
    for (std::size_t i = queue_head_; i < queue_.size() && retried < kTlsChunkBytes; ++i) {
      retried += queue_[i]->size() - (i == queue_head_ ? front_offset_ : 0);
      at = i + 1;
    }
  }
  const base::SharedFrame& ping = worker_.ping_frame();
  queue_.insert(queue_.begin() + static_cast<std::ptrdiff_t>(at), ping);
  queued_bytes_ += ping->size();
  sent_since_sweep_ = true;
  ping_state_ = PingState::kQueued;
  last_ping_or_deadline_ = now;
  if (!writing_ && queue_.size() - queue_head_ == 1) worker_.schedule_flush(id_);
}

bool Connection::has_unread_input() const {
  if (ssl_ && tls_pending(ssl_.get())) return true;
  int unread = 0;
  return fd_ >= 0 && ::ioctl(fd_, FIONREAD, &unread) == 0 && unread > 0;
}

void Connection::after_flushed() {
  if (close_after_flush_ && queued_bytes_ == 0) linger();
}

// Our last bytes are written: shut down our side and wait (bounded) for the peer's FIN,
// so the kernel does not answer unread input with a reset that could destroy our close
// frame before the peer reads it.
void Connection::linger() {
  if (state_ == State::kClosed || state_ == State::kLingering) return;
  leave_hub_and_gate();
  if (state_ == State::kOpen || state_ == State::kClosing) {
    worker_.metrics().add(Counter::kWebSocketsClosed);
  }
  state_ = State::kLingering;
  last_ping_or_deadline_ = worker_.context().clock.now() + worker_.context().options.close_timeout;
  if (SSL* ssl = tls_session()) tls_shutdown(ssl);  // close_notify, then the TCP FIN below
  if (fd_ < 0) {
    // Still in the HTTP phase (an answer that ends the connection): Asio owns the socket.
    error_code ec;
    http_->socket.shutdown(Socket::shutdown_send, ec);
    if (ec) {
      close_now();
      return;
    }
    drain_http_socket();
    return;
  }
  if (::shutdown(fd_, SHUT_WR) != 0) close_now();
}

void Connection::drain_http_socket() {
  http_->socket.async_wait(Socket::wait_read, [phase = http_](error_code ec) {
    Connection* self = phase->owner;
    if (self == nullptr || self->state_ != State::kLingering) return;
    if (!ec) {
      const std::span<std::uint8_t> buffer = self->worker_.read_buffer();
      self->http_->socket.read_some(asio::buffer(buffer.data(), buffer.size()), ec);
    }
    if (ec == asio::error::would_block || ec == asio::error::try_again || !ec) {
      self->drain_http_socket();
      return;
    }
    self->close_now();
  });
}

void Connection::leave_hub_and_gate() {
  if (joined_hub_) {
    joined_hub_ = false;
    worker_.hub().disconnect(id_);
  }
  worker_.context().gate.release(std::exchange(gate_pass_, nullptr));
}

void Connection::close_now() {
  if (state_ == State::kClosed) return;
  leave_hub_and_gate();
  if (state_ == State::kOpen || state_ == State::kClosing) {
    worker_.metrics().add(Counter::kWebSocketsClosed);
  }
  state_ = State::kClosed;
  error_code ec;
  if (fd_ >= 0) {
    worker_.unwatch(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  // Cancels the HTTP phase's pending operations; their handlers drop their references.
  // Its buffers stay until then: a cancelled read may still write into them as it completes.
  if (http_) http_->socket.close(ec);
  std::vector<base::SharedFrame>().swap(queue_);
  queued_bytes_ = 0;
  worker_.forget(id_);
}

void Connection::sweep(base::SteadyTime now, bool judge_idle) {
  const auto& options = worker_.context().options;
  switch (state_) {
    case State::kHttp:
    case State::kUpgrading:
      if (now - last_activity_ >= options.handshake_timeout) {
        if (state_ == State::kHttp && http_ && http_->parser && !http_->parser->got_some()) {
          // An idle keep-alive connection: not an error, just done.
        } else {
          worker_.metrics().add(Counter::kHandshakeErrors);
        }
        close_now();
      }
      break;
    case State::kOpen:
      switch (judge_heartbeat({last_activity_, last_ping_or_deadline_, ping_state_}, now,
                              {options.ping_interval, options.idle_timeout}, judge_idle)) {
        case HeartbeatAction::kNothing:
          break;
        case HeartbeatAction::kPing:
          enqueue_ping(now);
          break;
        case HeartbeatAction::kTerminate:
          if (has_unread_input()) {
            // The peer spoke; the worker just has not read it yet (level-triggered epoll
            // brings it next). Silence is judged on what the peer sent, not on our backlog.
            last_activity_ = now;
            break;
          }
          worker_.metrics().add(Counter::kIdleTimeouts);
          spdlog::debug("connection {:x}: silent {} ms, {} ms since a ping; terminating", id_,
                        (now - last_activity_) / std::chrono::milliseconds(1),
                        (now - last_ping_or_deadline_) / std::chrono::milliseconds(1));
          close_now();
          return;
      }
      // Sent nothing for a whole sweep interval: give back the queue's retained slots too,
      // so the many idle connections hold no send buffer while busy ones keep theirs.
      if (!sent_since_sweep_ && queue_.empty() && queue_.capacity() != 0) {
        std::vector<base::SharedFrame>().swap(queue_);
      }
      sent_since_sweep_ = false;
      break;
    case State::kClosing:
    case State::kLingering:
      if (now >= last_ping_or_deadline_) close_now();
      break;
    case State::kClosed:
      break;
  }
}

}  // namespace roomcast::net
