#include "net/connection.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>

#include "http/credentials.h"
#include "net/message_frames.h"
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
  auto* phase = new HttpPhase(*this, std::move(socket), std::move(tls));
  phase->waiting_since = last_activity_;  // the accept
  return phase;
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
      if (auto stream = worker_.context().http.event_stream(request)) {
        if (auto* refusal = std::get_if<http::Response>(&*stream)) {
          worker_.metrics().add(Counter::kHttpRequests);
          do_write_response(std::move(*refusal));
        } else {
          open_event_stream(request, std::get<http::EventStream>(std::move(*stream)));
        }
        return;
      }
      worker_.metrics().add(Counter::kHttpRequests);
      http_->request_parsed_at = last_activity_;
      http_->timed_endpoint = http::Service::endpoint_of(request);
      // A long-poll holds the connection while it waits, as a WebSocket or an event stream
      // does: the same Origin check and connection limits, until its answer is written.
      if (http_->timed_endpoint == metrics::HttpEndpoint::kPoll && !admit(request)) return;
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
  // A long-poll's place at the gate ends with its answer (the next request on this
  // connection may be another poll, admitted again).
  worker_.context().gate.release(std::exchange(gate_pass_, nullptr));
  if (metrics::kHistogramsRecorded && http_->timed_endpoint) {
    const auto now = worker_.context().clock.now();
    worker_.metrics().http(*http_->timed_endpoint).record(now - http_->request_parsed_at);
    http_->timed_endpoint.reset();
    http_->waiting_since = now;  // a handshake on this connection waits from here
  }
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
  if (worker_.context().options.compression != Compression::kOff) {
    ws::DeflatePolicy policy;
    policy.server_context_takeover =
        worker_.context().options.compression == Compression::kDedicated;
    http_->deflate = ws::negotiate_deflate(extension_offers(request), policy);
  }
  endpoint_ = endpoint;
  state_ = State::kUpgrading;
  std::string& out = http_->upgrade_response;
  out =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  out += ws::accept_key(fields.key);
  if (http_->deflate) {
    out += "\r\nSec-WebSocket-Extensions: ";
    out += ws::deflate_response(*http_->deflate);
  }
  out += "\r\nServer: roomcast\r\n\r\n";
  asio::async_write(http_->stream, asio::buffer(out),
                    [phase = http_](error_code ec, std::size_t bytes) {
                      Connection* self = phase->owner;
                      if (self == nullptr) return;
                      self->worker_.metrics().add(Counter::kBytesSent, bytes);
                      self->on_upgrade_written(ec);
                    });
}

void Connection::open_event_stream(const http::Request& request, http::EventStream stream) {
  // A stream holds a connection as a WebSocket does: the same Origin and connection limits.
  if (!admit(request)) return;
  http_->events = std::move(stream);
  endpoint_ = Endpoint::kEvents;
  state_ = State::kUpgrading;
  http_->upgrade_response = http::event_stream_head(request);
  asio::async_write(http_->stream, asio::buffer(http_->upgrade_response),
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
    do_write_response(policy_refusal(request, bhttp::status::forbidden, "forbidden_origin",
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
      worker_.metrics().add(Counter::kServerFullRefusals);
      do_write_response(policy_refusal(request, bhttp::status::service_unavailable,
                                       chat::error_code::kUnavailable,
                                       "Server at its connection limit; try again later"));
      return false;
    case ConnectionGate::Verdict::kAddressFull:
      worker_.metrics().add(Counter::kAddressFullRefusals);
      do_write_response(policy_refusal(request, bhttp::status::service_unavailable,
                                       chat::error_code::kUnavailable,
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
  worker_.metrics().add(endpoint_ == Endpoint::kEvents ? Counter::kEventStreamsOpened
                                                       : Counter::kWebSocketsOpened);
  const auto now = worker_.context().clock.now();
  worker_.metrics().handshake.record(now - http_->waiting_since);
  last_activity_ = now;
  // As if the last ping were a little older than now, so the first one comes within the
  // first interval, at a point of it of its own (net/heartbeat.h, first_ping_lead).
  last_ping_or_deadline_ = now - worker_.next_first_ping_lead();
  // Bytes that arrived right behind the request are the first frames; after handling
  // them the HTTP phase's buffers are freed: an idle WebSocket holds no read buffer.
  const boost::intrusive_ptr<HttpPhase> phase = std::move(http_);
  ssl_ = std::move(phase->ssl);  // TLS goes on in the epoll phase, on the same session
  if (phase->deflate) {
    // Before the first frame is read: it may be compressed already.
    reader_.enable_inflate(!phase->deflate->client_no_context_takeover);
    deflate_window_bits_ = phase->deflate->server_max_window_bits.value_or(ws::kMaxWindowBits);
    deflate_takeover_ = !phase->deflate->server_no_context_takeover;
    worker_.metrics().add(Counter::kDeflateNegotiated);
  }
  if (endpoint_ == Endpoint::kEvents) {
    // Whatever the client sent after its request is not ours to read: a stream only writes.
    if (phase->events->stats) {
      worker_.add_stats_reader(id_);  // not the Hub's: it reads no room
      return;
    }
    joined_hub_ = true;
    http::EventStream& stream = *phase->events;
    worker_.hub().watch(id_, std::move(stream.room), stream.since,
                        {std::move(stream.user_id), stream.expires_at_unix_s});
    return;
  }
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
    read_from(TlsTransport(ssl_.get(), fd_));
  } else {
    read_from(PlainTransport(fd_));
  }
}

template <typename Transport>
void Connection::read_from(Transport transport) {
  // Read into the worker's shared buffer: nothing per connection unless a frame is partial.
  const std::span<std::uint8_t> buffer = worker_.read_buffer();
  // While the fan-out is behind, take a small bite: a sender's whole socket buffer of
  // messages would queue hundreds of fan-outs at once, ahead of everyone else's.
  const std::size_t want = worker_.fanout_backlogged() ? kBackloggedReadBytes : buffer.size();
  do {
    const IoResult result = transport.read(buffer.first(want));
    switch (result.status) {
      case IoStatus::kDone:
        break;
      case IoStatus::kWantRead:
      case IoStatus::kWantWrite:  // TLS: a renegotiation, which we never start
        return;
      case IoStatus::kClosed:
      case IoStatus::kFailed:
        close_now();  // EOF, close_notify or reset: the peer is gone
        return;
    }
    worker_.metrics().add(Counter::kBytesReceived, result.bytes);
    last_activity_ = worker_.context().clock.now();
    if (state_ != State::kLingering) {  // lingering: discard until the peer's FIN or close
      consume(buffer.first(result.bytes));
      if (state_ == State::kClosed || reading_held_) return;
    }
  } while (Transport::kMayHoldInput);
}

void Connection::consume(std::span<std::uint8_t> bytes) {
  if (endpoint_ == Endpoint::kEvents) return;  // an event stream's client has nothing to say
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

void Connection::enter_closing() {
  state_ = State::kClosing;
  last_ping_or_deadline_ = worker_.context().clock.now() + worker_.context().options.close_timeout;
}

void Connection::on_message(std::string_view payload, bool binary) {
  worker_.metrics().add(Counter::kMessagesReceived);
  if (state_ != State::kOpen) return;  // after our close frame, data is ignored (RFC 6455 5.5.1)
  if (endpoint_ == Endpoint::kEcho) {
    MessageFrames frames(worker_, binary ? ws::Opcode::kBinary : ws::Opcode::kText, payload);
    enqueue(frames.for_connection(*this));
    return;
  }
  if (binary) {
    worker_.hub().receive_binary(id_, payload);
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

void Connection::on_pong(std::string_view) {
  // last_activity_ already counts it as an answer. The first pong after our heartbeat's ping
  // was written times the round trip, from the ping's last byte handed to the kernel to the
  // read that brought the pong (the worker's delay in reading it included); kNone then says
  // "answered", as kSent with this read would (net/heartbeat.h), so a later pong (unasked
  // for) is not taken for an answer to it.
  if (state_ != State::kOpen || ping_state_ != PingState::kSent) return;
  worker_.metrics().ping_rtt.record(last_activity_ - last_ping_or_deadline_);
  ping_state_ = PingState::kNone;
}

void Connection::on_close(std::uint16_t code, std::string_view) {
  if (state_ == State::kClosing) {
    // The reply to our close frame: the handshake is complete.
    close_after_flush_ = true;
    if (queue_.bytes() == 0) after_flushed();
    return;
  }
  // The peer started the closing handshake: echo its code (RFC 6455 5.5.1), then end.
  const auto reply = code == static_cast<std::uint16_t>(ws::CloseCode::kNoStatus)
                         ? std::string()
                         : ws::make_close_payload(static_cast<ws::CloseCode>(code), "");
  enqueue(base::make_shared_frame(ws::make_frame(ws::Opcode::kClose, reply)));
  enter_closing();
  close_after_flush_ = true;
}

void Connection::send_close(ws::CloseCode code, std::string_view reason) {
  if (state_ != State::kOpen) return;
  if (endpoint_ == Endpoint::kEvents) {
    // No close frame in an event stream: what is queued goes out, then an event saying why,
    // then the connection ends.
    enqueue(base::make_shared_frame(
        http::event_stream_close(static_cast<std::uint16_t>(code), reason)));
    enter_closing();
    close_after_flush_ = true;
    if (!writing_) flush();
    return;
  }
  enqueue(base::make_shared_frame(
      ws::make_frame(ws::Opcode::kClose, ws::make_close_payload(code, reason))));
  enter_closing();
  // The peer's reply may be behind held input: read on (data is ignored once closing).
  if (reading_held_) worker_.release_reading_after_batch(id_);
}

// ---- sending -----------------------------------------------------------------------------

void Connection::enqueue(const base::SharedFrame& frame) {
  // Once our close frame is queued (state leaves kOpen), nothing may follow it.
  if (state_ != State::kOpen) return;
  switch (queue_.push(frame, worker_.context().options.max_queued_bytes, writing_)) {
    case SendQueue::Push::kFirst:
      if (!writing_) worker_.schedule_flush(id_);  // else EPOLLOUT brings the flush
      return;
    case SendQueue::Push::kQueued:
    case SendQueue::Push::kRefused:
      return;
    case SendQueue::Push::kSlowConsumer:
      // Closed after the current fan-out, never inside it.
      worker_.schedule_slow_consumer_close(id_);
      return;
  }
}

void Connection::enqueue_latest(const base::SharedFrame& frame, const std::string* previous,
                                const std::string* previous_compressed) {
  // Only a reader that is behind has an older state waiting; a compression context of its own
  // ties each frame to the ones before it, so nothing of its queue may go.
  if (writing_ && state_ == State::kOpen && !compresses_with_context()) {
    // How far back an older state is looked for: a room's other streams interleave with it.
    constexpr std::size_t kScanFrames = 256;
    const std::size_t keep_bytes = ssl_ ? TlsTransport::kRetryRepeatsBytes : 0;
    if (previous == nullptr || !queue_.drop_unsent(previous, keep_bytes, kScanFrames)) {
      if (previous_compressed != nullptr) {
        queue_.drop_unsent(previous_compressed, keep_bytes, kScanFrames);
      }
    }
  }
  enqueue(frame);
}

std::string Connection::peer() const {
  sockaddr_storage address{};
  socklen_t size = sizeof address;
  if (fd_ < 0 || ::getpeername(fd_, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    return "?";
  }
  asio::ip::tcp::endpoint endpoint;
  if (size > endpoint.capacity()) return "?";
  std::memcpy(endpoint.data(), &address, size);
  endpoint.resize(size);
  const auto ip = endpoint.address();
  return (ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string()) + ":" +
         std::to_string(endpoint.port());
}

void Connection::close_slow_consumer() {
  if (state_ != State::kOpen) return;
  if (endpoint_ == Endpoint::kEvents) {
    // Nothing to say first: the reader reconnects with its Last-Event-ID and resumes.
    close_now();
    return;
  }
  // Drop what the peer could not take, so the close frame goes out next.
  queue_.close_after_loop(base::make_shared_frame(ws::make_frame(
      ws::Opcode::kClose, ws::make_close_payload(ws::CloseCode::kPolicyViolation,
                                                 "Slow consumer: send queue limit exceeded"))));
  enter_closing();
  close_after_flush_ = true;
  if (!writing_) flush();
}

void Connection::flush() {
  if (writing_ || fd_ < 0) return;
  if (ssl_) {
    flush_to(TlsTransport(ssl_.get(), fd_));
  } else {
    flush_to(PlainTransport(fd_));
  }
}

void Connection::on_frame_written(const base::SharedFrame& frame) {
  if (ping_state_ == PingState::kQueued && frame == worker_.ping_frame()) {
    // The heartbeat's clock starts now, when the peer can see the ping, not when it was
    // queued (net/heartbeat.h).
    ping_state_ = PingState::kSent;
    last_ping_or_deadline_ = worker_.context().clock.now();
  }
}

// Forced inline: see SendQueue::flush.
template <typename Transport>
[[gnu::always_inline]] inline void Connection::flush_to(Transport transport) {
  const SendQueue::Limits limits{.max_queued_bytes = worker_.context().options.max_queued_bytes,
                                 .max_bytes_per_turn = kMaxFlushBytesPerTurn};
  const auto [outcome, written] =
      queue_.flush(transport, worker_.iovec_scratch(), limits,
                   [this](const base::SharedFrame& frame) { on_frame_written(frame); });
  worker_.metrics().add(Counter::kBytesSent, written);
  switch (outcome) {
    case SendQueue::Flushed::kEmptied:
      after_flushed();
      return;
    case SendQueue::Flushed::kTurnOver:
      worker_.schedule_flush(id_);  // the rest in the next batch, after other work
      return;
    case SendQueue::Flushed::kBlocked:
      wait_writable(true);
      return;
    case SendQueue::Flushed::kSlowConsumer:
      wait_writable(true);
      worker_.schedule_slow_consumer_close(id_);
      return;
    case SendQueue::Flushed::kFailed:
      close_now();
      return;
  }
}

void Connection::wait_writable(bool wait) {
  if (writing_ == wait) return;
  writing_ = wait;
  if (!watch_interest()) close_now();
}

bool Connection::watch_interest() {
  return worker_.watch_events(fd_, this, !reading_paused_ && !reading_held_, writing_);
}

void Connection::pause_reading() {
  if (reading_paused_ || fd_ < 0 || state_ != State::kOpen) return;
  reading_paused_ = true;
  worker_.remember_paused(id_);
  if (!watch_interest()) close_now();
}

void Connection::resume_reading() {
  if (!reading_paused_) return;
  reading_paused_ = false;
  if (fd_ >= 0 && !watch_interest()) close_now();
}

void Connection::hold_reading() {
  if (reading_held_ || fd_ < 0 || state_ != State::kOpen) return;
  reading_held_ = true;
  worker_.metrics().add(Counter::kReadsHeld);
  if (!watch_interest()) close_now();
}

void Connection::release_reading() {
  if (!reading_held_) return;
  reading_held_ = false;
  if (state_ == State::kClosed || fd_ < 0) return;
  // What the reader kept, as if it had just been read; it may hold again part-way.
  const ws::ReadResult result = reader_.resume(*this);
  if (!result.ok) {
    fail(result.close_code, result.reason);
    return;
  }
  if (state_ == State::kClosed || reading_held_) return;
  if (!watch_interest()) {
    close_now();
    return;
  }
  // A TLS session may hold decrypted input that no epoll event will announce: read now.
  if (!reading_paused_ && state_ != State::kLingering) on_readable();
}

void Connection::enqueue_ping(base::SteadyTime now) {
  if (state_ != State::kOpen || queue_.slow_consumer()) return;
  // Ahead of every frame not yet started: a ping behind seconds of a busy room's backlog
  // would measure our queue, not the peer. While a TLS write waits for its retry, behind the
  // bytes the retry must repeat.
  const std::size_t keep_bytes = writing_ && ssl_ ? TlsTransport::kRetryRepeatsBytes : 0;
  const SendQueue::Push pushed = queue_.push_ahead(worker_.ping_frame(), keep_bytes);
  restart_ping_wait(now);
  if (!writing_ && pushed == SendQueue::Push::kFirst) worker_.schedule_flush(id_);
}

bool Connection::has_unread_input() const {
  if (fd_ < 0) return false;
  return ssl_ ? TlsTransport(ssl_.get(), fd_).has_unread_input()
              : PlainTransport(fd_).has_unread_input();
}

void Connection::restart_ping_wait(base::SteadyTime now) {
  ping_state_ = PingState::kQueued;
  last_ping_or_deadline_ = now;
  acked_at_ping_ = static_cast<std::uint32_t>(tcp_bytes_acknowledged(fd_));
}

bool Connection::peer_took_more_than_the_ping() const {
  // A ping frame is 2 bytes, a TLS record around it under 64; more than this since the ping
  // was queued is data the peer's kernel took: the peer consumed, or had room for, a backlog.
  constexpr std::uint32_t kMoreThanThePing = 256;
  const auto taken = static_cast<std::uint32_t>(tcp_bytes_acknowledged(fd_)) - acked_at_ping_;
  return taken > kMoreThanThePing;
}

void Connection::after_flushed() {
  if (close_after_flush_ && queue_.bytes() == 0) linger();
}

// Our last bytes are written: shut down our side and wait (bounded) for the peer's FIN,
// so the kernel does not answer unread input with a reset that could destroy our close
// frame before the peer reads it.
void Connection::linger() {
  if (state_ == State::kClosed || state_ == State::kLingering) return;
  leave_hub_and_gate();
  if (state_ == State::kOpen || state_ == State::kClosing) {
    worker_.metrics().add(endpoint_ == Endpoint::kEvents ? Counter::kEventStreamsClosed
                                                         : Counter::kWebSocketsClosed);
  }
  state_ = State::kLingering;
  last_ping_or_deadline_ = worker_.context().clock.now() + worker_.context().options.close_timeout;
  // close_notify, then the TCP FIN below.
  if (SSL* ssl = tls_session()) TlsTransport(ssl, fd_).shutdown();
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
    worker_.metrics().add(endpoint_ == Endpoint::kEvents ? Counter::kEventStreamsClosed
                                                         : Counter::kWebSocketsClosed);
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
  queue_.clear();
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
    case State::kOpen: {
      if (endpoint_ == Endpoint::kEvents) {
        // No pings in an event stream, and a reader is silent by nature: a comment every ping
        // interval keeps proxies from closing it, and a peer gone shows as a failed write.
        if (now - last_ping_or_deadline_ >= options.ping_interval) {
          static const base::SharedFrame keep_alive =
              base::make_shared_frame(std::string(http::kEventStreamKeepAlive));
          enqueue(keep_alive);
          last_ping_or_deadline_ = now;
        }
        queue_.sweep();
        break;
      }
      const HeartbeatTimes times{last_activity_, last_ping_or_deadline_, ping_state_};
      const HeartbeatLimits limits{options.ping_interval, options.idle_timeout};
      switch (judge_heartbeat(times, now, limits, judge_idle)) {
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
          if (may_forgive_behind_backlog(times, now, limits) && peer_took_more_than_the_ping()) {
            // The ping sits behind what our kernel and the peer's already hold, and the
            // peer is taking its way towards it: alive, only behind. Ask again from here.
            worker_.metrics().add(Counter::kPingsBehindBacklog);
            if (ping_state_ == PingState::kQueued) {
              restart_ping_wait(now);  // still in our queue: no second ping behind it
            } else {
              enqueue_ping(now);
            }
            break;
          }
          worker_.metrics().add(Counter::kIdleTimeouts);
          spdlog::debug("connection {:x}: silent {} ms, {} ms since a ping; terminating", id_,
                        (now - last_activity_) / std::chrono::milliseconds(1),
                        (now - last_ping_or_deadline_) / std::chrono::milliseconds(1));
          close_now();
          return;
      }
      queue_.sweep();
      break;
    }
    case State::kClosing:
    case State::kLingering:
      if (now >= last_ping_or_deadline_) close_now();
      break;
    case State::kClosed:
      break;
  }
}

}  // namespace roomcast::net
