// Worker: one I/O thread with its own io_context, listening sockets (SO_REUSEPORT),
// connections and chat::Hub. A connection lives on one worker for life, and the worker's Hub
// holds the chat state of exactly its connections, so neither needs a lock; other threads
// reach a worker only by posting to its io_context, and other workers' Hubs only through its
// Port of the chat::Exchange.
#pragma once

#include <sys/epoll.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/shared_frame.h"
#include "chat/authenticator.h"
#include "chat/exchange.h"
#include "chat/hub.h"
#include "chat/sink.h"
#include "http/service.h"
#include "metrics/metrics.h"
#include "net/connection_gate.h"
#include "net/heartbeat.h"
#include "net/options.h"
#include "net/slot_table.h"
#include "net/sweep_schedule.h"
#include "ws/close_code.h"
#include "ws/deflate.h"

namespace roomcast::net {

class Connection;
class TransportSink;

// A socket bound to one worker's io_context. Naming the concrete executor (instead of the
// type-erased any_io_executor) saves ~40 bytes in every socket and every pending operation.
using Socket =
    boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

// What every worker shares, all owned by the Server and outliving the workers.
class TlsContext;

struct WorkerContext {
  const ServerOptions& options;
  const chat::HubOptions& hub_options;
  chat::RateBudgets& budgets;  // the node's: a user's or an address's, whatever the worker
  const http::Service& http;
  const base::Clock& clock;
  ConnectionGate& gate;
  // Verifies tokens; nullptr when no key is configured (tokens are then ignored).
  const chat::Authenticator* authenticator;
  const TlsContext* tls;  // https/wss on every connection; null for plain TCP
  // Fan-out owed over the whole server and not yet handed to connections: in the Exchange's
  // inboxes, and behind the history store (what every Hub's messages will cost once the store
  // reports them back). When it passes ServerOptions::max_pending_deliveries, workers stop
  // reading from the connections that feed it (Connection::pause_reading) until it is half
  // drained: the backlog then waits in those senders' sockets (TCP pushes back on them), not
  // in our memory; pongs are read as usual, and a join or a small room's message waits
  // behind at most the bound. Thread-safe and approximate: a threshold is all it serves.
  std::function<std::size_t()> pending_deliveries;
  // The backend's events (webhooks), shared by every worker's Hub; nullptr: none.
  chat::BackendEvents* backend_events = nullptr;
  // Asked before each member's message is published (--publish-hook); nullptr: none.
  chat::PublishHook* publish_hook = nullptr;
};

// Also the Hub's chat::EventLog: its events go to the debug log with the connection's peer.
class Worker final : private chat::EventLog {
 public:
  // Read buffer shared by all of this worker's connections: a read lands here, whole
  // frames are handled in place, and only a partial frame is copied out.
  static constexpr std::size_t kReadBufferSize = 64 << 10;
  // Frames per gather write; Linux takes up to 1024 iovecs, 64 covers a busy queue.
  static constexpr std::size_t kMaxIovecs = 64;

  // `port`: this worker's Port of the node's Exchange, which its Hub uses as history store and
  // presence (it must outlive the worker).
  Worker(std::size_t index, WorkerContext context, metrics::Shard& metrics,
         chat::Exchange::Port& port);
  ~Worker() override;

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Binds a listening socket of the worker (SO_REUSEPORT, so every worker binds the same
  // port); called once per address the server listens on, before start(). Returns the bound
  // port, or throws boost::system::system_error (and then keeps no socket for `endpoint`).
  std::uint16_t listen(const boost::asio::ip::tcp::endpoint& endpoint);

  // Runs the event loop on a new thread until stop_after_drain() finishes.
  void start();
  void join();

  // Thread-safe. Stops accepting, closes every WebSocket with 1001 and every HTTP
  // connection, and ends the loop when all are gone or shutdown_timeout has passed.
  void stop_after_drain();

  // ---- Called from any thread ----
  // The answer to the HTTP request connection `who` is waiting for; dropped if it closed.
  void post_http_response(chat::ConnectionId who, http::Response response);
  // The worker's Hub's counters (chat::Hub::stats, deliveries_awaiting_store) and its sink's.
  const chat::Hub& hub_for_stats() const { return *hub_; }
  std::uint64_t messages_published() const;

  // Readers of the live figures' stream (GET /api/stats/stream) on this worker, for the
  // server to skip a worker that has none.
  std::size_t stats_readers() const { return stats_reader_count_.load(std::memory_order_relaxed); }

  // ---- Worker thread only ----
  chat::Hub& hub() { return *hub_; }
  // Connection `who` reads the stats stream: it gets every send_stats() event until it closes.
  void add_stats_reader(chat::ConnectionId who);
  // Queues `event` (one event made once for every reader of the node) to the stats readers.
  void send_stats(const base::SharedFrame& event);
  // An id for one server API publication (chat::Hub::publish_from_server): this worker's,
  // so the store's report of it comes back here, in a slot no connection ever has (slots
  // are numbered from 0 and never reach 2^32 - 1); unique until 2^24 more are made.
  chat::ConnectionId next_ticket() {
    ticket_ = (ticket_ + 1) & SlotTable<Connection>::kGenerationMask;
    return (static_cast<std::uint64_t>(index_ + 1) << 56) |
           (static_cast<std::uint64_t>(ticket_) << 32) | 0xFFFFFFFFu;
  }
  boost::asio::io_context& io() { return io_; }
  const WorkerContext& context() const { return context_; }
  metrics::Shard& metrics() { return metrics_; }
  bool draining() const { return draining_; }
  std::span<std::uint8_t> read_buffer() { return read_buffer_; }
  std::span<iovec> iovec_scratch() { return iovecs_; }
  const base::SharedFrame& ping_frame() const { return ping_frame_; }
  // The worker's compressor for permessage-deflate (net/message_frames.h), made on first use:
  // zlib's deflate state is about 256 KiB, which a server without deflate peers never pays.
  ws::Deflater& deflater();
  // The compressor of connection `who` alone (--compression dedicated), made on first use with
  // a window of at most 2^`max_window_bits`; dropped when the connection is forgotten. Kept
  // here, not in the Connection, so connections without one pay nothing for it.
  ws::Deflater& dedicated_deflater(chat::ConnectionId who, int max_window_bits);
  // Asks for `who` to be flushed at the end of this batch of work.
  void schedule_flush(chat::ConnectionId who);
  // A chat message accepted at `accepted_at` was queued to this worker's recipients: its
  // delivery latency is recorded at the end of this batch's flush phase, with one clock read
  // for every message of the batch.
  void note_delivery(base::SteadyTime accepted_at);
  // Asks for `who` to be closed with 1008 after the current fan-out.
  void schedule_slow_consumer_close(chat::ConnectionId who);
  // Asks for `who` to be closed with `code` once the current batch of work is done (the Hub
  // asks from inside its own calls, which the close must not re-enter).
  void close_after_batch(chat::ConnectionId who, ws::CloseCode code, std::string reason);
  // Whether the fan-out backlog is over its bound: a connection that just sent a message
  // then pauses its reads (Connection::pause_reading), and the worker resumes them all once
  // the backlog is half drained.
  bool fanout_backlogged() const {
    return pending_deliveries() > context_.options.max_pending_deliveries;
  }
  // Fan-out owed and not yet handed to connections: in the workers' mailboxes, and behind
  // the history store (messages it has not yet numbered and made durable).
  std::size_t pending_deliveries() const { return context_.pending_deliveries(); }
  void remember_paused(chat::ConnectionId who) { paused_readers_.push_back(who); }
  // The lead of the first ping of the connection opening now (net/heartbeat.h): each
  // connection this worker opens gets the next of a sequence that spreads them evenly.
  std::chrono::milliseconds next_first_ping_lead() {
    return first_ping_lead(opened_++, context_.options.ping_interval);
  }
  // The Hub's backpressure on one sender (chat::Sink::hold_reading): holding stops reading
  // `who` at once (Connection::hold_reading) and cancels a release not yet done; a release
  // happens at the end of this batch of work (Connection::release_reading), outside any Hub
  // call, since it handles what was held.
  void hold_reading(chat::ConnectionId who);
  void release_reading_after_batch(chat::ConnectionId who);
  // The connection has closed its socket; forget it. The object itself lives until the
  // current batch of work is done, so callers up the stack may still touch it.
  void forget(chat::ConnectionId who);

  // The worker's own epoll set, for upgraded WebSocket descriptors. Each returns false
  // (and logs) if the kernel refuses, which the caller treats as a dead connection.
  bool watch(int fd, Connection* connection);
  bool watch_events(int fd, Connection* connection, bool readable, bool writable);
  void unwatch(int fd);

  // The live connection `id` names, or nullptr (closed, or its slot reused since).
  Connection* find(chat::ConnectionId id);

  // Which worker a connection id belongs to.
  static std::size_t worker_of(chat::ConnectionId id) { return (id >> 56) - 1; }

 private:
  struct Close {
    chat::ConnectionId who;
    ws::CloseCode code;
    std::string reason;
  };
  // chat::EventLog: at debug level, "connection ID from PEER: EVENT".
  bool enabled() const override;
  void note(chat::ConnectionId who, std::string_view event) override;

  // Hands the Hub what the Exchange reported (rooms loaded, messages committed, ...).
  void drain_port();
  void do_hub_tick();

  // epoll_wait batch size: enough to drain a busy worker in a few calls.
  static constexpr int kMaxEvents = 256;

  struct Listener;
  void do_accept(Listener& listener);
  void on_accept(Listener& listener, boost::system::error_code ec, Socket socket);
  void do_sweep();
  void trim_after_burst();
  void do_wait_events();
  void dispatch_events();
  void run_deferred();
  // Posts run_deferred for the end of this batch, once.
  void defer();
  // Resumes the paused readers once the fan-out backlog is half drained.
  void maybe_resume_reading();
  void destroy_retired();
  void begin_drain();
  void maybe_finish_drain();

  const std::size_t index_;
  WorkerContext context_;
  metrics::Shard& metrics_;
  boost::asio::io_context io_{1};
  // One per listening address (--host may name several, e.g. localhost: 127.0.0.1 and ::1),
  // each with its own back-off so one failing listener does not stall another.
  struct Listener {
    explicit Listener(boost::asio::io_context& io) : acceptor(io), backoff(io) {}
    boost::asio::ip::tcp::acceptor acceptor;
    boost::asio::steady_timer backoff;
  };
  std::vector<std::unique_ptr<Listener>> listeners_;
  boost::asio::steady_timer sweep_timer_{io_};
  SweepSchedule sweep_;
  // The send queues summed over the sweep's round so far, for /metrics.
  std::uint64_t round_queued_bytes_ = 0;
  std::uint64_t round_largest_queue_ = 0;
  boost::asio::steady_timer drain_deadline_{io_};
  std::thread thread_;

  // Upgraded descriptors live here; Asio watches only the epoll descriptor itself.
  int epoll_fd_ = -1;
  boost::asio::posix::stream_descriptor epoll_watch_{io_};
  std::array<epoll_event, kMaxEvents> events_{};

  SlotTable<Connection> slots_;
  std::vector<std::uint32_t> retired_;  // slots of connections closed during this batch
  std::size_t live_connections_ = 0;
  std::uint64_t opened_ = 0;  // connections opened (upgraded) so far: next_first_ping_lead
  // Activity since the last sweep and since the last malloc_trim (see trim_after_burst).
  std::size_t accepted_since_trim_ = 0;
  std::size_t accepted_since_sweep_ = 0;
  std::size_t events_since_sweep_ = 0;
  bool draining_ = false;

  std::vector<std::uint8_t> read_buffer_storage_;
  std::span<std::uint8_t> read_buffer_;
  std::array<iovec, kMaxIovecs> iovecs_{};
  base::SharedFrame ping_frame_;
  std::unique_ptr<ws::Deflater> deflater_;
  std::unordered_map<chat::ConnectionId, std::unique_ptr<ws::Deflater>> dedicated_deflaters_;

  // The chat of this worker's connections. The sink writes to the worker's connections, the
  // Hub speaks through the sink, and the port brings the other workers' news.
  chat::Exchange::Port& port_;
  std::unique_ptr<TransportSink> sink_;
  std::unique_ptr<chat::Hub> hub_;
  boost::asio::steady_timer hub_tick_{io_};

  // Deferred work, run once per batch (Redis's "before sleep"): flushes coalesce every
  // frame queued during the batch into one write per connection, and slow-consumer closes
  // happen outside any fan-out loop.
  std::vector<chat::ConnectionId> to_flush_;
  std::vector<chat::ConnectionId> to_close_;
  std::vector<Close> closes_after_batch_;
  bool deferred_posted_ = false;
  std::vector<chat::ConnectionId> paused_readers_;  // reads paused for the fan-out backlog
  std::vector<chat::ConnectionId> to_release_;  // held readers to release (hold_reading)
  std::vector<chat::ConnectionId> stats_readers_;  // add_stats_reader, until forgotten
  std::atomic<std::size_t> stats_reader_count_{0};  // stats_readers_.size(), for any thread
  // When the chat messages queued in this batch were accepted (note_delivery).
  std::vector<base::SteadyTime> deliveries_to_time_;
  std::uint32_t ticket_ = 0;  // the last next_ticket()
};

}  // namespace roomcast::net
