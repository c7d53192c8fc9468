// Connection: one client socket for its whole life — HTTP request(s), then perhaps the
// upgrade to WebSocket, then frames until the closing handshake.
//
// The lifetime reads as a chain of do_x / on_x handlers, each opening with its error
// check:
//
//   start -> [TLS: on_handshake] -> do_read_request -> on_read_request
//                                                |
//                                                +-> (plain HTTP) do_write_response
//                                                |      -> on_write_response -> do_read_request
//                                                +-> (upgrade) on_upgrade_written
//   WebSocket: worker's epoll -> on_events -> on_readable -> Reader -> hub / echo
//              enqueue -> (worker flush phase) flush -> [EPOLLOUT -> flush]
//              (plain and TLS alike: one read path and one flush path over a transport,
//              net/transport.h; the frames wait in a SendQueue, net/send_queue.h)
//   Closing:   send_close -> (flushed) -> linger -> close_now
//
// Two phases, two I/O styles. The HTTP phase is Asio and Beast with completion handlers,
// each holding a reference to the phase's state (socket and buffers, which a pending
// operation uses) but not to the connection: the phase points back at its connection, and
// the connection's destructor clears that pointer, so a handler that completes after the
// connection is gone finds no one. At the upgrade the descriptor leaves Asio:
// the worker registers it in its own epoll set, whose events point straight at the
// connection, so an idle WebSocket has no pending operation and no reactor state — only
// this object (see bench/OPTIMIZATIONS.md for what that saves).
//
// Worker-affine: every member is touched only by the owning worker's thread. Owned by the
// worker's slot table alone (no shared_ptr control block per connection); after close the
// worker keeps it until the current batch of events is done, so no event handler can meet
// a destroyed connection.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/shared_frame.h"
#include "chat/authenticator.h"
#include "chat/sink.h"
#include "http/service.h"
#include "net/heartbeat.h"
#include "net/send_queue.h"
#include "net/tls.h"
#include "net/transport.h"
#include "net/worker.h"
#include "ws/close_code.h"
#include "ws/deflate_negotiation.h"
#include "ws/reader.h"

namespace roomcast::net {

class Connection final : private ws::ReaderHandler {
 public:
  enum class State : std::uint8_t {
    kHttp,  // reading HTTP requests
    kUpgrading,  // 101 being written
    kOpen,  // WebSocket open
    kClosing,  // we sent a close frame and wait for the peer's
    kLingering,  // our side is shut down; draining until the peer's FIN
    kClosed,
  };
  // kEvents: a server-sent event stream (a room's, GET /api/rooms/{room}/events, or the live
  // figures', GET /api/stats/stream): after the response head the connection only writes
  // (events, keep-alive comments), never frames.
  enum class Endpoint : std::uint8_t { kChat, kEcho, kEvents };

  Connection(Worker& worker, Socket socket, chat::ConnectionId id);
  ~Connection() override;

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  chat::ConnectionId id() const { return id_; }
  // A server-sent event stream: what it is sent is events (http::event_stream_event), not frames.
  bool is_event_stream() const { return endpoint_ == Endpoint::kEvents; }

  // Writes the answer to the HTTP request being served (Worker::post_http_response).
  void answer_http(http::Response response);
  State state() const { return state_; }

  void start();

  // Appends a frame to the send queue; the worker flushes queues once per batch of work,
  // so frames queued in one loop turn leave in one gather write. Over the queue bound the
  // connection is marked for a slow-consumer close (done by the worker after the current
  // fan-out, never inside it).
  void enqueue(const base::SharedFrame& frame);
  // As enqueue, for a newer state of something this connection may still have queued (the
  // frames `previous` and `previous_compressed` of the last conflating broadcast of its key):
  // while the socket is full, that older frame, if not yet started, is dropped first.
  void enqueue_latest(const base::SharedFrame& frame, const std::string* previous,
                      const std::string* previous_compressed);

  // Writes as much of the send queue as the socket takes now (one gather write).
  void flush();

  // Whether a compressed frame of a `message_bytes` message may be sent here: the peer
  // negotiated permessage-deflate, and its bound on our window (server_max_window_bits) is
  // our compressor's 2^15, or covers the whole message (the shared frame's back-references
  // never reach before its first byte).
  // Compressed frames for this connection come from its own compressor (--compression
  // dedicated, context takeover negotiated), not from the shared one.
  bool compresses_with_context() const { return deflate_takeover_; }
  int deflate_window_bits() const { return deflate_window_bits_; }

  bool takes_compressed(std::size_t message_bytes) const {
    return deflate_window_bits_ >= ws::kMaxWindowBits ||
           (deflate_window_bits_ != 0 && message_bytes <= (std::size_t{1} << deflate_window_bits_));
  }

  // Closes a connection whose send queue overflowed: drops the backlog, sends 1008.
  void close_slow_consumer();
  // The TCP peer ("203.0.113.7:51234", "[2001:db8::1]:443"), asked of the socket: "?" when it
  // has none (before the upgrade, once closed). For logs; nothing is kept per connection.
  std::string peer() const;

  // Starts the closing handshake with `code` (no-op unless open).
  void send_close(ws::CloseCode code, std::string_view reason);

  // Drops the socket now, without a closing handshake (heartbeat timeout, shutdown).
  void close_now();

  // Bytes queued and not yet written (the worker's send-queue gauges).
  std::size_t queued_bytes() const { return queue_.bytes(); }

  // Called by the worker's periodic sweep: heartbeat, handshake and closing deadlines.
  // `judge_idle`: false when the sweep ran late; it then pings but terminates no one for
  // silence (net/heartbeat.h).
  void sweep(base::SteadyTime now, bool judge_idle);

  // Called by the worker's epoll loop with the events of this connection's descriptor.
  void on_events(std::uint32_t events);

  // Stops / resumes reading the socket (the fan-out backlog, Worker::fanout_backlogged);
  // writes go on. Bytes left unread still count as activity for the heartbeat.
  void pause_reading();
  void resume_reading();
  // The Hub's hold on this sender (chat::Sink::hold_reading, through the worker): holding
  // stops parsing after the message being handled (the reader keeps the rest of the read,
  // ws::Reader::holds_input) and stops reading the socket; releasing handles what was kept,
  // in order, then reads again. Independent of pause_reading: the socket is read only when
  // neither holds it. The heartbeat still pings a held connection, and unread bytes (its
  // pongs among them) count as the peer being alive, so a long hold does not time out a
  // healthy client; a close we start releases the hold, so that the peer's reply is read.
  void hold_reading();
  void release_reading();

 private:
  // ---- HTTP phase (state kHttp / kUpgrading); freed at the upgrade ----
  // Shared by the connection and the handlers of its pending operations; worker-affine,
  // so the count need not be atomic, and an intrusive pointer is half a shared_ptr. A TLS
  // session lives here until the upgrade (a cancelled operation may still use it after the
  // connection is gone), then moves to the connection.
  struct HttpPhase : boost::intrusive_ref_counter<HttpPhase, boost::thread_unsafe_counter> {
    HttpPhase(Connection& c, Socket s, SslSession tls)
        : owner(&c), socket(std::move(s)), ssl(std::move(tls)), stream(socket, ssl.get()) {}
    Connection* owner;  // null once the connection is destroyed
    Socket socket;
    SslSession ssl;  // null for plain TCP
    HttpStream stream;  // reads and writes `socket`, through `ssl` if there is one
    boost::beast::flat_buffer buffer;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser;
    http::Response response;
    std::string upgrade_response;
    // Decided during the handshake, used once the 101 is written.
    std::string peer_address;
    std::optional<chat::Identity> identity;  // from a valid token
    std::string_view auth_refusal;  // the 4001 close reason; empty: the connection may chat
    std::optional<ws::DeflateAgreement> deflate;  // permessage-deflate, if negotiated
    // For the handshake and request-duration histograms: when this request's wait began
    // (the accept, or the previous answer written), and, while the Service answers a request,
    // when it was parsed and its endpoint.
    base::SteadyTime waiting_since{};
    base::SteadyTime request_parsed_at{};
    std::optional<metrics::HttpEndpoint> timed_endpoint;
    std::optional<http::EventStream> events;  // the event stream to open (Endpoint::kEvents)
  };

  boost::intrusive_ptr<HttpPhase> make_http_phase(Socket socket);
  // The connection's TLS session, wherever it lives now (phase or connection); null: TCP.
  SSL* tls_session() const;
  void on_handshake(boost::system::error_code ec);
  void do_read_request();
  void on_read_request(boost::system::error_code ec);
  void do_write_response(http::Response response);
  void on_write_response(boost::system::error_code ec, bool keep_alive);
  void upgrade(const http::Request& request, Endpoint endpoint);
  // Answers with the event stream's head; once written, the connection reads the room.
  void open_event_stream(const http::Request& request, http::EventStream stream);
  bool admit(const http::Request& request);
  void authenticate(const http::Request& request);
  void start_chat(HttpPhase& phase);
  void leave_hub_and_gate();
  void on_upgrade_written(boost::system::error_code ec);
  void drain_http_socket();

  // ---- WebSocket phase ----
  void on_readable();
  // The read and flush paths, once for every transport (net/transport.h).
  template <typename Transport>
  void read_from(Transport transport);
  template <typename Transport>
  void flush_to(Transport transport);
  // A frame's last byte is written (the heartbeat watches for its ping).
  void on_frame_written(const base::SharedFrame& frame);
  void wait_writable(bool wait);
  // Tells epoll what to wait for: input unless paused or held, output while writing_.
  bool watch_interest();
  // Queues the worker's ping ahead of every frame not yet started (net/heartbeat.h).
  void enqueue_ping(base::SteadyTime now);
  // The ping in the queue waits for an answer from `now` (kQueued), measured against what
  // the peer has taken by then (peer_took_more_than_the_ping).
  void restart_ping_wait(base::SteadyTime now);
  // Bytes the peer sent that the kernel (or the TLS session) holds and we have not read.
  bool has_unread_input() const;
  // Since the ping was queued, the peer's kernel has taken more of our stream than the ping:
  // it is working through what we sent before the ping (net/heartbeat.h).
  bool peer_took_more_than_the_ping() const;
  void consume(std::span<std::uint8_t> bytes);
  void fail(ws::CloseCode code, std::string_view reason);
  // Our close frame is queued: wait (bounded) for the peer's.
  void enter_closing();
  void after_flushed();
  void linger();

  // ws::ReaderHandler
  void on_message(std::string_view payload, bool binary) override;
  void on_ping(std::string_view payload) override;
  void on_pong(std::string_view payload) override;
  void on_close(std::uint16_t code, std::string_view reason) override;
  bool holding() const override { return reading_held_; }

  // Members are ordered and packed so that an idle WebSocket, which holds nothing but
  // this object, costs as few bytes as possible (bench/OPTIMIZATIONS.md).
  Worker& worker_;
  const chat::ConnectionId id_;
  int fd_ = -1;  // the WebSocket descriptor, owned from the upgrade on
  State state_ = State::kHttp;
  Endpoint endpoint_ = Endpoint::kChat;
  bool joined_hub_ : 1 = false;
  bool writing_ : 1 = false;  // the socket is full: waiting for EPOLLOUT
  bool close_after_flush_ : 1 = false;  // once the queue is written, shut down (linger)
  PingState ping_state_ : 2 = PingState::kNone;  // kOpen: the heartbeat (net/heartbeat.h)
  bool reading_paused_ : 1 = false;  // EPOLLIN is off (pause_reading)
  bool reading_held_ : 1 = false;  // the Hub holds this sender (hold_reading)
  bool deflate_takeover_ : 1 = false;  // compresses_with_context()
  // permessage-deflate: log2 of the peer's bound on our window; 0: not negotiated. Sits in
  // what was padding before gate_pass_ (sizeof(Connection) unchanged).
  std::uint8_t deflate_window_bits_ = 0;
  ConnectionGate::Pass* gate_pass_ = nullptr;  // counted by the gate until the end
  SslSession ssl_;  // TLS from the upgrade on (before it, in the HTTP phase); null for TCP

  // kOpen: tcp_bytes_acknowledged() when the ping was queued, modulo 2^32 (what one peer
  // takes during one ping wait is far below 4 GiB). With its padding, 8 bytes per
  // connection: the price of telling a reader working through a backlog from a dead peer.
  std::uint32_t acked_at_ping_ = 0;
  base::SteadyTime last_activity_;  // last byte received (or accept time)
  // kOpen: the ping time ping_state_ speaks of (net/heartbeat.h). kClosing and kLingering:
  // when to stop waiting for the peer. No state needs both, so they share one field.
  base::SteadyTime last_ping_or_deadline_;

  boost::intrusive_ptr<HttpPhase> http_;  // the HTTP phase's socket and buffers
  ws::Reader reader_;

  // One flush writes at most this much before the rest waits for the next batch of work:
  // a reader with a deep backlog (after EPOLLOUT) must not hold the worker while reads,
  // pings and small rooms wait. A few loopback segments; a busy room's turn fits easily.
  static constexpr std::size_t kMaxFlushBytesPerTurn = 256 << 10;
  // One read takes at most this much while the fan-out is behind (a few chat messages).
  static constexpr std::size_t kBackloggedReadBytes = 2048;
  SendQueue queue_;
};

}  // namespace roomcast::net
