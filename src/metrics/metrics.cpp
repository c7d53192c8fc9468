#include "metrics/metrics.h"

#include <cstdio>

#include "base/build_info.h"

namespace roomcast::metrics {
namespace {

struct Description {
  std::string_view name;  // Prometheus name, without the roomcast_ prefix
  std::string_view help;
};

constexpr std::array<Description, static_cast<std::size_t>(Counter::kCount)> kDescriptions{{
    {"tcp_connections_accepted_total", "TCP connections accepted."},
    {"connections_total", "WebSocket connections opened."},
    {"connections_closed_total", "WebSocket connections closed."},
    {"http_requests_total", "HTTP requests answered (not counting upgrades)."},
    {"messages_received_total", "WebSocket data messages received from clients."},
    {"messages_published_total", "Messages the server encoded once for one or more recipients."},
    {"deliveries_total", "Messages queued to a connection (one per recipient)."},
    {"bytes_received_total", "Bytes read from client sockets."},
    {"bytes_sent_total", "Bytes written to client sockets."},
    {"slow_consumer_closes_total", "Connections closed (1008) for exceeding the send queue bound."},
    {"idle_timeouts_total", "Connections terminated by the heartbeat for silence."},
    {"handshake_errors_total", "Upgrade requests refused (400/426) or timed out."},
    {"protocol_errors_total", "Connections closed with 1002 (protocol error)."},
    {"invalid_payload_errors_total", "Connections closed with 1007 (invalid UTF-8)."},
    {"message_too_big_errors_total", "Connections closed with 1009 (message too big)."},
    {"auth_failures_total", "Connections closed with 4001 (token missing or invalid)."},
    {"token_expirations_total", "Connections closed with 4002 (token expired, not refreshed)."},
    {"origin_refusals_total", "Upgrades refused (403) for an Origin not allowed."},
    {"connection_limit_refusals_total", "Upgrades refused (503) at a connection limit."},
    {"deflate_connections_total", "WebSocket connections opened with permessage-deflate."},
    {"compressed_frames_total",
     "Compressed frames built: one per message, shared by every recipient that takes it."},
    {"event_streams_total", "Server-sent event streams opened."},
    {"event_streams_closed_total", "Server-sent event streams closed."},
}};

}  // namespace

Registry::Registry(std::size_t workers) {
  shards_.reserve(workers);
  for (std::size_t i = 0; i < workers; ++i) shards_.push_back(std::make_unique<Shard>());
}

void Registry::collect(Snapshot& out) const {
  out.counters.fill(0);
  for (const auto& shard : shards_) {
    for (std::size_t i = 0; i < out.counters.size(); ++i) {
      out.counters[i] += shard->get(static_cast<Counter>(i));
    }
  }
  const auto opened = out.get(Counter::kWebSocketsOpened);
  const auto closed = out.get(Counter::kWebSocketsClosed);
  out.connections_active = opened > closed ? opened - closed : 0;
  const auto streams = out.get(Counter::kEventStreamsOpened);
  const auto streams_closed = out.get(Counter::kEventStreamsClosed);
  out.event_streams_active = streams > streams_closed ? streams - streams_closed : 0;
}

std::string render_prometheus(const Snapshot& s) {
  std::string out;
  out.reserve(4096);
  auto metric = [&](std::string_view name, std::string_view help, std::string_view type,
                    std::uint64_t value) {
    out.append("# HELP roomcast_").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE roomcast_").append(name).append(" ").append(type).append("\n");
    out.append("roomcast_").append(name).append(" ").append(std::to_string(value)).append("\n");
  };
  for (std::size_t i = 0; i < kDescriptions.size(); ++i) {
    metric(kDescriptions[i].name, kDescriptions[i].help, "counter", s.counters[i]);
  }
  metric("connections_active", "WebSocket connections open now.", "gauge", s.connections_active);
  metric("event_streams_active", "Server-sent event streams open now.", "gauge",
         s.event_streams_active);
  metric("rooms", "Rooms with at least one member.", "gauge", s.rooms);
  metric("users", "Chat sessions (WebSocket connections on the chat endpoint).", "gauge", s.users);
  out.append("# HELP roomcast_chat_errors_total Error replies sent to clients, by code.\n");
  out.append("# TYPE roomcast_chat_errors_total counter\n");
  for (const auto& [code, n] : s.chat_errors) {
    out.append("roomcast_chat_errors_total{code=\"").append(code).append("\"} ");
    out.append(std::to_string(n)).append("\n");
  }
  char uptime[64];
  std::snprintf(uptime, sizeof uptime, "%.3f", s.uptime_seconds);
  out.append("# HELP roomcast_uptime_seconds Seconds since the server started.\n");
  out.append("# TYPE roomcast_uptime_seconds gauge\n");
  out.append("roomcast_uptime_seconds ").append(uptime).append("\n");
  if (s.broker) {
    metric("redis_up", "1 while both connections to Redis are up (cluster mode).", "gauge",
           s.broker->up ? 1 : 0);
    metric("redis_reconnects_total", "Times the link to Redis came back after being lost.",
           "counter", s.broker->reconnects);
    metric("redis_data_losses_total",
           "Times this node found that Redis had lost its data (rooms went on in a new epoch).",
           "counter", s.broker->data_losses);
  }
  // The usual Prometheus idiom for what is running: a constant 1 labelled with the build.
  const auto build = base::build_info();
  out.append("# HELP roomcast_build_info The roomcast build running: version and git commit.\n");
  out.append("# TYPE roomcast_build_info gauge\n");
  out.append("roomcast_build_info{version=\"").append(build.version);
  out.append("\",commit=\"").append(build.commit).append("\"} 1\n");
  if (s.storage) {
    metric("storage_ok", "1 while the history store commits (0: failing disk, file gone).", "gauge",
           s.storage->ok ? 1 : 0);
  }
  return out;
}

std::string render_json(const Snapshot& s) {
  // Keys are metric names without prefix and _total suffix; all values are numbers, but for
  // "build" (the version and commit, strings).
  std::string out = "{";
  auto field = [&](std::string_view name, std::uint64_t value) {
    if (out.size() > 1) out += ',';
    out.append("\"").append(name).append("\":").append(std::to_string(value));
  };
  for (std::size_t i = 0; i < kDescriptions.size(); ++i) {
    std::string_view name = kDescriptions[i].name;
    if (name.ends_with("_total")) name.remove_suffix(6);
    field(name, s.counters[i]);
  }
  field("connections_active", s.connections_active);
  field("event_streams_active", s.event_streams_active);
  field("rooms", s.rooms);
  field("users", s.users);
  out += ",\"chat_errors\":{";
  bool first = true;
  for (const auto& [code, n] : s.chat_errors) {
    if (!first) out += ',';
    first = false;
    out.append("\"").append(code).append("\":").append(std::to_string(n));
  }
  char uptime[64];
  std::snprintf(uptime, sizeof uptime, "%.3f", s.uptime_seconds);
  out.append("},\"uptime_seconds\":").append(uptime);
  if (s.broker) {
    out.append(",\"redis\":{\"up\":").append(s.broker->up ? "true" : "false");
    out.append(",\"reconnects\":").append(std::to_string(s.broker->reconnects));
    out.append(",\"data_losses\":").append(std::to_string(s.broker->data_losses)).append("}");
  }
  if (s.storage) out.append(",\"storage_ok\":").append(s.storage->ok ? "1" : "0");
  const auto build = base::build_info();
  out.append(",\"build\":{\"version\":\"").append(build.version);
  out.append("\",\"commit\":\"").append(build.commit).append("\"}}");
  return out;
}

}  // namespace roomcast::metrics
