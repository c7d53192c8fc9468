// Counters, gauges and histograms for /metrics (Prometheus text) and /api/stats (JSON).
//
// Hot-path counting must not bounce a cache line between workers, so every worker owns a
// Shard and is its only writer (relaxed load + store, no read-modify-write). A scrape
// sums the shards; a sum may be a few increments stale, never torn.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/histogram.h"
#include "metrics/process.h"
#include "metrics/rate_window.h"

namespace roomcast::metrics {

enum class Counter : std::size_t {
  kConnectionsAccepted,  // TCP connections accepted
  kWebSocketsOpened,  // successful upgrades
  kWebSocketsClosed,
  kHttpRequests,
  kMessagesReceived,  // complete WebSocket data messages from clients
  kMessagesPublished,  // distinct messages the server encoded (one per broadcast)
  kDeliveries,  // messages queued to a connection (one per recipient)
  kBytesReceived,
  kBytesSent,
  kSlowConsumerCloses,  // closed with 1008 for exceeding the send queue bound
  kIdleTimeouts,  // terminated by the heartbeat
  kHandshakeErrors,  // 400/426 answers to an upgrade, handshake timeouts
  kProtocolErrors,  // closes with 1002
  kInvalidPayloadErrors,  // closes with 1007
  kMessageTooBigErrors,  // closes with 1009
  kAuthFailures,  // closes with 4001: token missing (with --require-auth) or invalid
  kTokenExpirations,  // closes with 4002: the token expired and was not refreshed
  kOriginRefusals,  // 403 answers to an upgrade from a foreign Origin
  kServerFullRefusals,  // 503 answers to an upgrade at --max-connections
  kAddressFullRefusals,  // 503 answers to an upgrade at --max-connections-per-ip
  kAcceptErrors,  // accept() failed (out of descriptors or memory)
  kDeflateNegotiated,  // WebSockets opened with permessage-deflate
  kCompressedFrames,  // compressed frames built (one per message, shared by its recipients)
  kEventStreamsOpened,  // server-sent event streams opened (GET /api/rooms/{room}/events)
  kEventStreamsClosed,
  kReadsHeld,  // senders whose reading the Hub held (a join's wait or the store behind)
  kPingsBehindBacklog,  // unanswered pings forgiven: the peer was taking our backlog
  kCount,
};

// Worker gauges: set (not added) by their worker's periodic sweep.
enum class Gauge : std::size_t {
  kSendQueueBytes,  // bytes queued on the worker's connections, not yet written
  kLargestSendQueueBytes,  // the fullest of those queues
  kCount,
};

// Which HTTP answer a request got, for the request-duration histogram: a label with a few
// fixed values (never the raw path, which a client chooses).
enum class HttpEndpoint : std::size_t {
  kStatic,  // the web client's files
  kHealthz,
  kMetrics,
  kStats,  // /api/stats
  kHistory,  // /api/rooms/{room}/messages
  kApi,  // the server API (--api-key): publish, broadcast, disconnect, rooms, info, ...
  kPoll,  // /api/rooms/{room}/poll: long-polls, whose duration is mostly the wait
  kOther,  // refused methods, malformed requests
  kCount,
};
inline constexpr std::size_t kHttpEndpoints = static_cast<std::size_t>(HttpEndpoint::kCount);
std::string_view endpoint_label(HttpEndpoint endpoint);

// The histograms one worker records, and (HistogramSet) their values summed over workers.
struct HistogramSet {
  // From a Hub of this node accepting a chat message from its sender to the end of the
  // flush phase in which a worker handed the message's frame to its local recipients'
  // sockets: one observation per message and worker with recipients.
  HistogramValues delivery{kSecondsLayout};
  // Recipients of a chat message on every worker and node, once per message (by the
  // sender's worker).
  HistogramValues fan_out{kCountLayout};
  // From a heartbeat ping's last byte written to the socket to the read that brought the
  // client's pong.
  HistogramValues ping_rtt{kSecondsLayout};
  // From the TCP accept (or the end of the previous answer on a keep-alive connection) to
  // the 101 written: TLS, the client's request, our checks, the answer.
  HistogramValues handshake{kSecondsLayout};
  // From a complete HTTP request parsed to its response written, by endpoint.
  std::array<HistogramValues, kHttpEndpoints> http{};

  HistogramSet();
  void merge(const HistogramSet& other);
};

// One worker's counters. Single writer: the owning worker thread. Any thread may read.
class alignas(64) Shard {
 public:
  void add(Counter c, std::uint64_t n = 1) {
    auto& v = values_[static_cast<std::size_t>(c)];
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get(Counter c) const {
    return values_[static_cast<std::size_t>(c)].load(std::memory_order_relaxed);
  }
  void set(Gauge g, std::uint64_t value) {
    gauges_[static_cast<std::size_t>(g)].store(value, std::memory_order_relaxed);
  }
  std::uint64_t get(Gauge g) const {
    return gauges_[static_cast<std::size_t>(g)].load(std::memory_order_relaxed);
  }

  // The worker's histograms (see HistogramSet for what each measures). Owner thread records.
  Histogram delivery{kSecondsLayout};
  Histogram fan_out{kCountLayout};
  Histogram ping_rtt{kSecondsLayout};
  Histogram handshake{kSecondsLayout};
  Histogram& http(HttpEndpoint e) { return http_[static_cast<std::size_t>(e)]; }

  void add_histograms_to(HistogramSet& out) const;

 private:
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Counter::kCount)> values_{};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Gauge::kCount)> gauges_{};
  // One duration histogram per endpoint (Histogram has no default layout).
  template <std::size_t... I>
  static std::array<Histogram, sizeof...(I)> duration_histograms(std::index_sequence<I...>) {
    return {((void)I, Histogram{kSecondsLayout})...};
  }
  std::array<Histogram, kHttpEndpoints> http_ =
      duration_histograms(std::make_index_sequence<kHttpEndpoints>{});
};

// Cluster mode: the link to the broker (Redis).
struct BrokerState {
  bool up = false;
  std::uint64_t reconnects = 0;  // times the link came back after being lost
  std::uint64_t data_losses = 0;  // times a node found that Redis had lost its data
  // Why it is down (empty while up): "unreachable", or "not_answering" when Redis keeps the
  // connection but a command waited longer than --redis-timeout.
  std::string reason;
  // From a command sent to its reply, every command on the command connection (the publish
  // script included).
  std::optional<HistogramValues> command_latency;
  // The publish script alone: cluster mode's history commit (shown as the storage commit).
  std::optional<HistogramValues> publish_latency;
};

// The local history store (SQLite): ok == false while commits fail or after its file
// vanished; `reason` says which, for /healthz.
struct StorageState {
  bool ok = true;
  std::string reason;
  std::uint64_t commit_failures = 0;  // group commits that failed (and were retried)
  std::uint64_t queue_depth = 0;  // messages waiting for their commit
  double last_commit_unix_seconds = 0;  // the last commit that succeeded; 0: none yet
  // One group commit (BEGIN to COMMIT, fsync included), failed ones too.
  std::optional<HistogramValues> commit_latency;
};

// With --webhook-url: the delivery of the backend's events (hooks::Webhooks::stats()).
struct WebhookState {
  std::uint64_t queued = 0;  // waiting now (the one being attempted included)
  std::uint64_t delivered = 0;
  std::uint64_t retries = 0;
  std::uint64_t dropped_queue_full = 0;
  std::uint64_t dropped_attempts = 0;  // max_attempts spent
  std::uint64_t dropped_refused = 0;  // answered 4xx (not 408 or 429): retrying cannot help
};

// With --publish-hook: the questions asked (hooks::HttpPublishHook::stats()), by outcome.
struct PublishHookState {
  std::uint64_t pending = 0;  // asked, not answered yet
  std::uint64_t allowed = 0;
  std::uint64_t rewritten = 0;  // allowed with a new text
  std::uint64_t denied = 0;
  // No verdict (timeout, backend down, 5xx, not a verdict, a rewrite that breaks the rules),
  // then published (fail-open) or refused (fail-closed).
  std::uint64_t failed_open = 0;
  std::uint64_t failed_closed = 0;
  // From the question's start to its verdict (a failure's included).
  HistogramValues latency{kSecondsLayout};
};

// The values one scrape reports.
struct Snapshot {
  std::array<std::uint64_t, static_cast<std::size_t>(Counter::kCount)> counters{};
  std::array<std::uint64_t, static_cast<std::size_t>(Gauge::kCount)> gauges{};  // see collect
  HistogramSet histograms;
  std::uint64_t connections_active = 0;
  std::uint64_t event_streams_active = 0;
  std::uint64_t rooms = 0;
  std::uint64_t users = 0;
  std::map<std::string, std::uint64_t> chat_errors;  // error replies by code
  double uptime_seconds = 0;
  std::optional<BrokerState> broker;  // cluster mode only
  std::optional<StorageState> storage;  // with the SQLite history store only
  std::optional<WebhookState> webhooks;  // with --webhook-url only
  std::optional<PublishHookState> publish_hook;  // with --publish-hook only
  std::optional<ProcessStats> process;  // Linux: read from /proc/self
  std::optional<LiveRates> live;  // the last seconds' rates (/api/stats only)

  std::uint64_t get(Counter c) const { return counters[static_cast<std::size_t>(c)]; }
  std::uint64_t get(Gauge g) const { return gauges[static_cast<std::size_t>(g)]; }
};

// Owns one Shard per worker. Created before the workers, outlives them.
class Registry {
 public:
  explicit Registry(std::size_t workers);
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Shard& shard(std::size_t worker) { return *shards_[worker]; }
  // Sums every shard into `out.counters` and `out.histograms` (the largest send queue is
  // the largest of the workers', the other gauges are summed) and derives
  // connections_active.
  void collect(Snapshot& out) const;

 private:
  std::vector<std::unique_ptr<Shard>> shards_;
};

// Prometheus text exposition format 0.0.4.
std::string render_prometheus(const Snapshot& s);
// The same values as one JSON object (the histograms as the live rates over the last
// seconds, under "live").
std::string render_json(const Snapshot& s);

}  // namespace roomcast::metrics
