// Counters for /metrics (Prometheus text) and /api/stats (JSON).
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
#include <vector>

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
  kConnectionLimitRefusals,  // 503 answers to an upgrade over a connection limit
  kDeflateNegotiated,  // WebSockets opened with permessage-deflate
  kCompressedFrames,  // compressed frames built (one per message, shared by its recipients)
  kEventStreamsOpened,  // server-sent event streams opened (GET /api/rooms/{room}/events)
  kEventStreamsClosed,
  kCount,
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

 private:
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Counter::kCount)> values_{};
};

// Cluster mode: the link to the broker (Redis).
struct BrokerState {
  bool up = false;
  std::uint64_t reconnects = 0;  // times the link came back after being lost
  std::uint64_t data_losses = 0;  // times a node found that Redis had lost its data
  // Why it is down (empty while up): "unreachable", or "not_answering" when Redis keeps the
  // connection but a command waited longer than --redis-timeout.
  std::string reason;
};

// The local history store (SQLite): ok == false while commits fail or after its file
// vanished; `reason` says which, for /healthz.
struct StorageState {
  bool ok = true;
  std::string reason;
};

// The values one scrape reports.
struct Snapshot {
  std::array<std::uint64_t, static_cast<std::size_t>(Counter::kCount)> counters{};
  std::uint64_t connections_active = 0;
  std::uint64_t event_streams_active = 0;
  std::uint64_t rooms = 0;
  std::uint64_t users = 0;
  std::map<std::string, std::uint64_t> chat_errors;  // error replies by code
  double uptime_seconds = 0;
  std::optional<BrokerState> broker;  // cluster mode only
  std::optional<StorageState> storage;  // with the SQLite history store only

  std::uint64_t get(Counter c) const { return counters[static_cast<std::size_t>(c)]; }
};

// Owns one Shard per worker. Created before the workers, outlives them.
class Registry {
 public:
  explicit Registry(std::size_t workers);
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Shard& shard(std::size_t worker) { return *shards_[worker]; }
  // Sums every shard into `out.counters` and derives connections_active.
  void collect(Snapshot& out) const;

 private:
  std::vector<std::unique_ptr<Shard>> shards_;
};

// Prometheus text exposition format 0.0.4.
std::string render_prometheus(const Snapshot& s);
// The same values as one JSON object.
std::string render_json(const Snapshot& s);

}  // namespace roomcast::metrics
