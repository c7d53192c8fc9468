#include "net/worker.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "net/connection.h"
#include "net/transport_sink.h"
#include "ws/frame.h"

namespace roomcast::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// How often the Hub does its periodic work (coalesced user lists, typing expiry, budget
// reports, token expiry).
constexpr std::chrono::milliseconds kHubTickInterval{20};

// How often the sweep looks at each connection's heartbeat and deadlines: a quarter of the
// shortest interval it enforces, within [10 ms, 1 s] (in slices: net/sweep_schedule.h).
std::chrono::milliseconds sweep_interval(const ServerOptions& o) {
  auto shortest = std::min({o.ping_interval, o.idle_timeout, o.handshake_timeout, o.close_timeout});
  return std::clamp(shortest / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
}

// The worker's scratch vectors grow to the largest burst they have seen (10,000 clients
// connecting at once leave ~100 KB in each) and would keep that for good; a sweep that
// finds one empty gives back what a burst grew beyond a few kilobytes.
template <typename T>
void release_burst_capacity(std::vector<T>& scratch) {
  constexpr std::size_t kRetainedBytes = 4096;
  if (scratch.empty() && scratch.capacity() * sizeof(T) > kRetainedBytes) {
    std::vector<T>().swap(scratch);
  }
}

}  // namespace

Worker::Worker(std::size_t index, WorkerContext context, metrics::Shard& metrics,
               chat::Exchange::Port& port)
    : index_(index),
      context_(std::move(context)),
      metrics_(metrics),
      sweep_(sweep_interval(context_.options)),
      read_buffer_storage_(kReadBufferSize),
      read_buffer_(read_buffer_storage_),
      ping_frame_(base::make_shared_frame(ws::make_frame(ws::Opcode::kPing, {}))),
      port_(port),
      sink_(std::make_unique<TransportSink>(*this)),
      hub_(std::make_unique<chat::Hub>(*sink_, context_.clock, context_.hub_options, port_, &port_,
                                       context_.authenticator, &context_.budgets)) {
  hub_->set_event_log(this);
  hub_->set_backend_events(context_.backend_events);
  if (context_.publish_hook != nullptr) {
    hub_->set_publish_hook(context_.publish_hook,
                           [this](std::function<void()> f) { asio::post(io_, std::move(f)); });
  }
  // One drain per batch of reports, however many arrive before it runs.
  port_.set_wake([this] { asio::post(io_, [this] { drain_port(); }); });
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    throw boost::system::system_error(errno, boost::system::system_category(), "epoll_create1");
  }
  epoll_watch_.assign(epoll_fd_);
}

bool Worker::enabled() const {
  return spdlog::should_log(spdlog::level::debug);
}

void Worker::note(chat::ConnectionId who, std::string_view event) {
  const Connection* connection = find(who);
  spdlog::debug("connection {:x} from {}: {}", who,
                connection != nullptr ? connection->peer() : std::string("?"), event);
}

Worker::~Worker() {
  join();
  port_.set_wake(nullptr);  // reports that still come wait in the inbox, unread
  // Connections close their own descriptors; epoll_watch_ closes the epoll descriptor.
  slots_.clear();
  retired_.clear();
}

std::uint16_t Worker::listen(const tcp::endpoint& endpoint) {
  auto listener = std::make_unique<Listener>(io_);
  tcp::acceptor& acceptor = listener->acceptor;
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.set_option(ReusePort(true));
  acceptor.bind(endpoint);
  acceptor.listen(context_.options.listen_backlog);
  const std::uint16_t port = acceptor.local_endpoint().port();
  listeners_.push_back(std::move(listener));
  return port;
}

void Worker::start() {
  for (auto& listener : listeners_) do_accept(*listener);
  do_sweep();
  do_hub_tick();
  do_wait_events();
  thread_ = std::thread([this] {
    try {
      io_.run();
    } catch (const std::exception& e) {
      spdlog::critical("worker {} stopped by an exception: {}", index_, e.what());
      std::abort();
    }
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::stop_after_drain() {
  asio::post(io_, [this] { begin_drain(); });
}

// ---- accepting ---------------------------------------------------------------------------

void Worker::do_accept(Listener& listener) {
  listener.acceptor.async_accept(io_.get_executor(),
                                 [this, &listener](boost::system::error_code ec, Socket socket) {
                                   on_accept(listener, ec, std::move(socket));
                                 });
}

void Worker::on_accept(Listener& listener, boost::system::error_code ec, Socket socket) {
  if (draining_ || ec == asio::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors (EMFILE/ENFILE) or memory: retrying at once would spin a core on
    // the same error. Back off; connections that close meanwhile free descriptors.
    metrics_.add(metrics::Counter::kAcceptErrors);
    spdlog::warn("accept failed: {}; retrying in 100 ms", ec.message());
    listener.backoff.expires_after(std::chrono::milliseconds(100));
    listener.backoff.async_wait([this, &listener](boost::system::error_code wait_ec) {
      if (!wait_ec && !draining_) do_accept(listener);
    });
    return;
  }
  metrics_.add(metrics::Counter::kConnectionsAccepted);
  ++accepted_since_trim_;
  ++accepted_since_sweep_;
  boost::system::error_code opt_ec;
  socket.set_option(tcp::no_delay(true), opt_ec);  // chat frames are small: never wait
  const std::uint32_t slot = slots_.acquire();
  ++live_connections_;
  // Layout: worker+1 (8 bits) | generation (24 bits) | slot (32 bits). The generation
  // makes an id stale once its slot is reused, so late deliveries cannot hit a stranger.
  const chat::ConnectionId id = (static_cast<std::uint64_t>(index_ + 1) << 56) |
                                (static_cast<std::uint64_t>(slots_.generation(slot)) << 32) | slot;
  slots_.construct(slot, *this, std::move(socket), id).start();
  do_accept(listener);
}

void Worker::add_stats_reader(chat::ConnectionId who) {
  stats_readers_.push_back(who);
  stats_reader_count_.store(stats_readers_.size(), std::memory_order_relaxed);
}

void Worker::send_stats(const base::SharedFrame& event) {
  for (const chat::ConnectionId who : stats_readers_) {
    if (Connection* reader = find(who)) reader->enqueue(event);
  }
}

void Worker::forget(chat::ConnectionId who) {
  const auto slot = static_cast<std::uint32_t>(who & 0xFFFFFFFF);
  if (find(who) == nullptr) return;
  dedicated_deflaters_.erase(who);
  if (!stats_readers_.empty() && std::erase(stats_readers_, who) != 0) {
    stats_reader_count_.store(stats_readers_.size(), std::memory_order_relaxed);
  }
  slots_.retire(slot);
  retired_.push_back(slot);
  --live_connections_;
  if (draining_) maybe_finish_drain();
}

// The end of a batch of work: no handler is inside a connection closed during it.
void Worker::destroy_retired() {
  for (const std::uint32_t slot : retired_) slots_.destroy(slot);
  retired_.clear();
}

ws::Deflater& Worker::deflater() {
  if (!deflater_) deflater_ = std::make_unique<ws::Deflater>();
  return *deflater_;
}

ws::Deflater& Worker::dedicated_deflater(chat::ConnectionId who, int max_window_bits) {
  // A 2^12 window holds the last few dozen chat events, which is where the repetition is;
  // with a small hash table, zlib's state is about 30 KiB (docs/operations.md).
  constexpr int kWindowBits = 12;
  constexpr int kMemLevel = 4;
  std::unique_ptr<ws::Deflater>& deflater = dedicated_deflaters_[who];
  if (!deflater) {
    deflater = std::make_unique<ws::Deflater>(
        ws::Deflater::WithContext{std::min(kWindowBits, max_window_bits), kMemLevel});
  }
  return *deflater;
}

Connection* Worker::find(chat::ConnectionId id) {
  return slots_.find(
      static_cast<std::uint32_t>(id & 0xFFFFFFFF),
      static_cast<std::uint32_t>((id >> 32) & SlotTable<Connection>::kGenerationMask));
}

// ---- the epoll set of upgraded connections -----------------------------------------------

bool Worker::watch(int fd, Connection* connection) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = connection;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) == 0) return true;
  spdlog::error("epoll_ctl(ADD) failed: {}", std::strerror(errno));
  return false;
}

bool Worker::watch_events(int fd, Connection* connection, bool readable, bool writable) {
  epoll_event event{};
  event.events = (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u);
  event.data.ptr = connection;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) == 0) return true;
  spdlog::error("epoll_ctl(MOD) failed: {}", std::strerror(errno));
  return false;
}

void Worker::unwatch(int fd) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Worker::do_wait_events() {
  epoll_watch_.async_wait(asio::posix::stream_descriptor::wait_read,
                          [this](boost::system::error_code ec) {
                            if (ec) return;
                            dispatch_events();
                            do_wait_events();
                          });
}

void Worker::dispatch_events() {
  // Level-triggered: a descriptor with unread bytes comes back in the next batch, so one
  // read per connection per batch keeps a flooding client from starving the others.
  const int n = ::epoll_wait(epoll_fd_, events_.data(), kMaxEvents, 0);
  if (n > 0) events_since_sweep_ += static_cast<std::size_t>(n);
  for (int i = 0; i < n; ++i) {
    const epoll_event& event = events_[static_cast<std::size_t>(i)];
    static_cast<Connection*>(event.data.ptr)->on_events(event.events);
  }
  destroy_retired();
  maybe_resume_reading();
}

// ---- delivery ----------------------------------------------------------------------------

void Worker::post_http_response(chat::ConnectionId who, http::Response response) {
  boost::asio::post(io_, [this, who, response = std::move(response)]() mutable {
    if (Connection* connection = find(who)) connection->answer_http(std::move(response));
  });
}

std::uint64_t Worker::messages_published() const {
  return sink_->published();
}

void Worker::drain_port() {
  port_.drain();
  destroy_retired();
  maybe_resume_reading();
}

void Worker::do_hub_tick() {
  hub_tick_.expires_after(kHubTickInterval);
  hub_tick_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    hub_->tick();
    destroy_retired();
    do_hub_tick();
  });
}

void Worker::defer() {
  if (!deferred_posted_) {
    deferred_posted_ = true;
    asio::post(io_, [this] { run_deferred(); });
  }
}

void Worker::close_after_batch(chat::ConnectionId who, ws::CloseCode code, std::string reason) {
  closes_after_batch_.push_back({who, code, std::move(reason)});
  defer();
}

void Worker::note_delivery(base::SteadyTime accepted_at) {
  deliveries_to_time_.push_back(accepted_at);
  // Recipients whose socket is full get no flush this batch; the latency is still taken
  // at the end of this batch's flush phase (what waits for EPOLLOUT is the reader's delay).
  defer();
}

void Worker::maybe_resume_reading() {
  if (paused_readers_.empty() ||
      pending_deliveries() > context_.options.max_pending_deliveries / 2) {
    return;
  }
  std::vector<chat::ConnectionId> paused;
  paused.swap(paused_readers_);
  for (const auto id : paused) {
    if (Connection* c = find(id)) c->resume_reading();
  }
}

void Worker::hold_reading(chat::ConnectionId who) {
  Connection* c = find(who);
  // A closing connection keeps its release: the peer's close reply must be read.
  if (c == nullptr || c->state() != Connection::State::kOpen) return;
  std::erase(to_release_, who);
  c->hold_reading();
}

void Worker::release_reading_after_batch(chat::ConnectionId who) {
  to_release_.push_back(who);
  defer();
}

void Worker::schedule_flush(chat::ConnectionId who) {
  to_flush_.push_back(who);
  defer();
}

void Worker::schedule_slow_consumer_close(chat::ConnectionId who) {
  to_close_.push_back(who);
  defer();
}

void Worker::run_deferred() {
  deferred_posted_ = false;
  // First, so that what the held input causes is flushed in this batch. One at a time: a
  // release may hold another reader again (or this one), which takes it off the list.
  while (!to_release_.empty()) {
    const chat::ConnectionId who = to_release_.back();
    to_release_.pop_back();
    if (Connection* c = find(who)) c->release_reading();
  }
  // Swap out first: flushing may schedule more work, which goes to the next batch.
  std::vector<Close> asked;
  asked.swap(closes_after_batch_);
  for (Close& close : asked) {
    if (Connection* c = find(close.who)) {
      if (close.code == ws::CloseCode::kTokenExpired) {
        metrics_.add(metrics::Counter::kTokenExpirations);
      }
      c->send_close(close.code, close.reason);
    }
  }
  std::vector<chat::ConnectionId> closes;
  closes.swap(to_close_);
  for (const auto id : closes) {
    if (Connection* c = find(id)) {
      metrics_.add(metrics::Counter::kSlowConsumerCloses);
      // One line per close is debug detail: at info, roomcast_slow_consumer_closes_total and
      // the lifecycle counts say how many.
      spdlog::debug(
          "connection {:x} from {}: closed as a slow consumer (1008): send queue over "
          "{} bytes",
          id, c->peer(), context_.options.max_queued_bytes);
      c->close_slow_consumer();
    }
  }
  std::vector<chat::ConnectionId> flushes;
  flushes.swap(to_flush_);
  for (const auto id : flushes) {
    if (Connection* c = find(id)) c->flush();
  }
  // Give the vector's capacity back for the next batch instead of reallocating.
  flushes.clear();
  if (to_flush_.empty()) to_flush_.swap(flushes);
  // Every frame of this batch has been offered to its socket (what a full socket left in its
  // queue waits for its reader): the delivery latency of the batch's messages ends here.
  if (!deliveries_to_time_.empty()) {
    const auto now = context_.clock.now();
    for (const auto accepted_at : deliveries_to_time_) metrics_.delivery.record(now - accepted_at);
    deliveries_to_time_.clear();
  }
  destroy_retired();
}

// ---- periodic work -----------------------------------------------------------------------

void Worker::do_sweep() {
  sweep_timer_.expires_after(sweep_.tick());
  sweep_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    const auto now = context_.clock.now();
    // One slice of the connections per tick, each once per sweep interval; whether this
    // tick judges silence (not right after a stall) is the schedule's (net/sweep_schedule.h).
    const SweepSchedule::Tick tick = sweep_.next(now, slots_.slots());
    // Sweep may close connections; they are only retired until the walk is done. The walk
    // also sums the send queues for /metrics, published once a round (every connection once).
    slots_.for_each_live_in(tick.begin, tick.end, [this, now, &tick](Connection& c) {
      const std::uint64_t bytes = c.queued_bytes();
      round_queued_bytes_ += bytes;
      round_largest_queue_ = std::max(round_largest_queue_, bytes);
      c.sweep(now, tick.judge);
    });
    destroy_retired();
    maybe_resume_reading();
    if (tick.round_done) {
      metrics_.set(metrics::Gauge::kSendQueueBytes, round_queued_bytes_);
      metrics_.set(metrics::Gauge::kLargestSendQueueBytes, round_largest_queue_);
      round_queued_bytes_ = 0;
      round_largest_queue_ = 0;
      release_burst_capacity(retired_);
      release_burst_capacity(to_flush_);
      release_burst_capacity(to_close_);
      release_burst_capacity(paused_readers_);
      release_burst_capacity(to_release_);
      release_burst_capacity(deliveries_to_time_);
      trim_after_burst();
    }
    do_sweep();
  });
}

// glibc keeps freed memory resident while it lies between blocks still in use, and a burst
// of handshakes leaves exactly that: each handshake's HTTP buffers (about 1.5 KB, freed at
// the upgrade) interleaved with the long-lived objects allocated meanwhile. Once a burst of
// connections is over (a whole sweep interval without an accept and with little I/O),
// malloc_trim returns the whole free pages among them to the kernel: about 40 bytes per
// connection in S1, for one call of about 0.5 ms per burst (bench/OPTIMIZATIONS.md).
void Worker::trim_after_burst() {
  constexpr std::size_t kMinBurstAccepts = 1024;  // smaller bursts leave little to return
  constexpr std::size_t kQuietEvents = 1024;  // at most this many epoll events: quiet
  const bool quiet = accepted_since_sweep_ == 0 && events_since_sweep_ < kQuietEvents;
  if (quiet && accepted_since_trim_ >= kMinBurstAccepts) {
#if defined(__GLIBC__)
    ::malloc_trim(0);
#endif
    accepted_since_trim_ = 0;
  }
  accepted_since_sweep_ = 0;
  events_since_sweep_ = 0;
}

// ---- graceful shutdown -------------------------------------------------------------------

void Worker::begin_drain() {
  draining_ = true;
  boost::system::error_code ec;
  for (auto& listener : listeners_) {
    listener->acceptor.close(ec);
    listener->backoff.cancel();
  }
  slots_.for_each_live([](Connection& c) {
    if (c.state() == Connection::State::kOpen) {
      c.send_close(ws::CloseCode::kGoingAway, "Server shutting down");
    } else if (c.state() == Connection::State::kHttp ||
               c.state() == Connection::State::kUpgrading) {
      c.close_now();
    }
  });
  drain_deadline_.expires_after(context_.options.shutdown_timeout);
  drain_deadline_.async_wait([this](boost::system::error_code wait_ec) {
    if (wait_ec) return;
    slots_.for_each_live([](Connection& c) { c.close_now(); });
    io_.stop();
  });
  maybe_finish_drain();
}

void Worker::maybe_finish_drain() {
  if (live_connections_ != 0) return;
  sweep_timer_.cancel();
  hub_tick_.cancel();
  drain_deadline_.cancel();
  io_.stop();
}

}  // namespace roomcast::net
