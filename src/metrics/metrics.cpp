#include "metrics/metrics.h"

#include <algorithm>
#include <cstdio>
#include <utility>

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
    // Shown as reasons of connections_refused_total, and summed as the one above was.
    {"", ""},
    {"", ""},
    {"", ""},
    {"deflate_connections_total", "WebSocket connections opened with permessage-deflate."},
    {"compressed_frames_total",
     "Compressed frames built: one per message, shared by every recipient that takes it."},
    {"event_streams_total", "Server-sent event streams opened."},
    {"event_streams_closed_total", "Server-sent event streams closed."},
    {"reads_held_total",
     "Times a sender's reading was held until its room loaded or the store caught up."},
    {"pings_behind_backlog_total",
     "Unanswered pings forgiven because the client was still taking the data queued before "
     "them."},
}};

// roomcast_connections_refused_total{reason}: every way a connection is refused or cut off
// before it can chat, from the counters that count each.
struct RefusalReason {
  std::string_view reason;
  Counter counter;
};
constexpr std::array<RefusalReason, 6> kRefusalReasons{{
    {"max_connections", Counter::kServerFullRefusals},
    {"max_connections_per_ip", Counter::kAddressFullRefusals},
    {"origin", Counter::kOriginRefusals},
    {"bad_handshake", Counter::kHandshakeErrors},
    {"auth", Counter::kAuthFailures},
    {"accept_error", Counter::kAcceptErrors},
}};

std::uint64_t limit_refusals(const Snapshot& s) {
  return s.get(Counter::kServerFullRefusals) + s.get(Counter::kAddressFullRefusals);
}

void append_sample(std::string& out, std::string_view name, std::string_view help,
                   std::string_view type, std::string_view value) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  out.append(name).append(" ").append(value).append("\n");
}

}  // namespace

std::string_view endpoint_label(HttpEndpoint endpoint) {
  switch (endpoint) {
    case HttpEndpoint::kStatic:
      return "static";
    case HttpEndpoint::kHealthz:
      return "healthz";
    case HttpEndpoint::kMetrics:
      return "metrics";
    case HttpEndpoint::kStats:
      return "stats";
    case HttpEndpoint::kHistory:
      return "history";
    case HttpEndpoint::kApi:
      return "api";
    case HttpEndpoint::kPoll:
      return "poll";
    case HttpEndpoint::kOther:
    case HttpEndpoint::kCount:
      break;
  }
  return "other";
}

HistogramSet::HistogramSet() {
  for (auto& h : http) h.layout = kSecondsLayout;
}

void HistogramSet::merge(const HistogramSet& other) {
  delivery.merge(other.delivery);
  fan_out.merge(other.fan_out);
  ping_rtt.merge(other.ping_rtt);
  handshake.merge(other.handshake);
  for (std::size_t i = 0; i < http.size(); ++i) http[i].merge(other.http[i]);
}

void Shard::add_histograms_to(HistogramSet& out) const {
  out.delivery.merge(delivery.values());
  out.fan_out.merge(fan_out.values());
  out.ping_rtt.merge(ping_rtt.values());
  out.handshake.merge(handshake.values());
  for (std::size_t i = 0; i < http_.size(); ++i) out.http[i].merge(http_[i].values());
}

Registry::Registry(std::size_t workers) {
  shards_.reserve(workers);
  for (std::size_t i = 0; i < workers; ++i) shards_.push_back(std::make_unique<Shard>());
}

void Registry::collect(Snapshot& out) const {
  out.counters.fill(0);
  out.gauges.fill(0);
  out.histograms = HistogramSet();
  auto& largest = out.gauges[static_cast<std::size_t>(Gauge::kLargestSendQueueBytes)];
  for (const auto& shard : shards_) {
    for (std::size_t i = 0; i < out.counters.size(); ++i) {
      out.counters[i] += shard->get(static_cast<Counter>(i));
    }
    out.gauges[static_cast<std::size_t>(Gauge::kSendQueueBytes)] +=
        shard->get(Gauge::kSendQueueBytes);
    largest = std::max(largest, shard->get(Gauge::kLargestSendQueueBytes));
    shard->add_histograms_to(out.histograms);
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
    if (kDescriptions[i].name.empty()) continue;
    metric(kDescriptions[i].name, kDescriptions[i].help, "counter", s.counters[i]);
  }
  metric("connection_limit_refusals_total",
         "Upgrades refused (503) at a connection limit (both limits; see "
         "connections_refused_total).",
         "counter", limit_refusals(s));
  out.append(
      "# HELP roomcast_connections_refused_total Connections refused or cut off before they "
      "could chat, by reason.\n");
  out.append("# TYPE roomcast_connections_refused_total counter\n");
  for (const auto& [reason, counter] : kRefusalReasons) {
    out.append("roomcast_connections_refused_total{reason=\"").append(reason).append("\"} ");
    out.append(std::to_string(s.get(counter))).append("\n");
  }
  metric("send_queue_bytes", "Bytes queued to clients and not yet written (every connection).",
         "gauge", s.get(Gauge::kSendQueueBytes));
  metric("send_queue_largest_bytes",
         "The fullest send queue of one connection, in bytes (a slow consumer is closed beyond "
         "--max-queued-bytes).",
         "gauge", s.get(Gauge::kLargestSendQueueBytes));
  const HistogramSet& h = s.histograms;
  append_histogram(out, "roomcast_delivery_latency_seconds",
                   "From a chat message accepted from its sender to its frame handed to the "
                   "sockets of a worker's recipients (one observation per message and worker).",
                   h.delivery);
  append_histogram(out, "roomcast_fanout_recipients",
                   "Recipients of a chat message on every worker and node, once per message.",
                   h.fan_out);
  append_histogram(out, "roomcast_ping_rtt_seconds",
                   "Heartbeat ping written to the client's pong read.", h.ping_rtt);
  append_histogram(out, "roomcast_websocket_handshake_seconds",
                   "TCP accept (or the previous answer) to the 101 response written.", h.handshake);
  for (std::size_t i = 0; i < h.http.size(); ++i) {
    const std::string labels =
        "endpoint=\"" + std::string(endpoint_label(static_cast<HttpEndpoint>(i))) + "\"";
    append_histogram(out, "roomcast_http_request_duration_seconds",
                     "Complete HTTP request parsed to its response written, by endpoint.",
                     h.http[i], labels, i == 0);
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
    if (s.broker->command_latency) {
      append_histogram(out, "roomcast_redis_command_seconds",
                       "A Redis command (the publish script included) sent to its reply.",
                       *s.broker->command_latency);
    }
  }
  if (s.webhooks) {
    metric("webhook_queue_events", "Webhook events waiting for delivery (the one in flight too).",
           "gauge", s.webhooks->queued);
    metric("webhook_delivered_total", "Webhook events the backend answered with 2xx.", "counter",
           s.webhooks->delivered);
    metric("webhook_retries_total", "Webhook delivery attempts that failed and were retried.",
           "counter", s.webhooks->retries);
    out.append(
        "# HELP roomcast_webhook_dropped_total Webhook events given up: queue_full (the queue "
        "was at --webhook-queue-size), attempts (--webhook-max-attempts failed), refused (the "
        "backend answered 4xx).\n");
    out.append("# TYPE roomcast_webhook_dropped_total counter\n");
    const std::pair<const char*, std::uint64_t> dropped[] = {
        {"queue_full", s.webhooks->dropped_queue_full},
        {"attempts", s.webhooks->dropped_attempts},
        {"refused", s.webhooks->dropped_refused}};
    for (const auto& [reason, n] : dropped) {
      out.append("roomcast_webhook_dropped_total{reason=\"").append(reason).append("\"} ");
      out.append(std::to_string(n)).append("\n");
    }
  }
  if (s.publish_hook) {
    const PublishHookState& hook = *s.publish_hook;
    metric("publish_hook_pending", "Messages whose publish hook question is not answered yet.",
           "gauge", hook.pending);
    out.append(
        "# HELP roomcast_publish_hook_requests_total Publish hook questions by outcome: allow, "
        "rewrite, deny (the backend's verdict), fail_open and fail_closed (no verdict: timeout, "
        "backend down, 5xx, not a verdict, a rewrite that breaks the rules; published or "
        "refused by --publish-hook-policy).\n");
    out.append("# TYPE roomcast_publish_hook_requests_total counter\n");
    const std::pair<const char*, std::uint64_t> outcomes[] = {{"allow", hook.allowed},
                                                              {"rewrite", hook.rewritten},
                                                              {"deny", hook.denied},
                                                              {"fail_open", hook.failed_open},
                                                              {"fail_closed", hook.failed_closed}};
    for (const auto& [outcome, n] : outcomes) {
      out.append("roomcast_publish_hook_requests_total{outcome=\"").append(outcome).append("\"} ");
      out.append(std::to_string(n)).append("\n");
    }
    append_histogram(out, "roomcast_publish_hook_seconds",
                     "A publish hook question, from its start to its verdict (failures included).",
                     hook.latency);
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
    metric("storage_commit_failures_total",
           "History group commits that failed (each is retried, smaller).", "counter",
           s.storage->commit_failures);
    metric("storage_queue_messages", "Messages waiting for their history commit.", "gauge",
           s.storage->queue_depth);
    append_sample(out, "roomcast_storage_last_commit_timestamp_seconds",
                  "Unix time of the last history commit that succeeded (0: none yet).", "gauge",
                  format_number(s.storage->last_commit_unix_seconds));
  }
  // One concept whichever store commits: SQLite's group commit, or the cluster's script.
  const HistogramValues* commit =
      s.storage && s.storage->commit_latency  ? &*s.storage->commit_latency
      : s.broker && s.broker->publish_latency ? &*s.broker->publish_latency
                                              : nullptr;
  if (commit != nullptr) {
    append_histogram(out, "roomcast_storage_commit_seconds",
                     "One history commit: a SQLite group commit (BEGIN to COMMIT, fsync "
                     "included), or in cluster mode the Redis publish script (sent to its reply).",
                     *commit);
  }
  if (s.process) append_process(out, *s.process);
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
    if (name.empty()) continue;
    if (name.ends_with("_total")) name.remove_suffix(6);
    field(name, s.counters[i]);
  }
  field("connection_limit_refusals", limit_refusals(s));
  field("send_queue_bytes", s.get(Gauge::kSendQueueBytes));
  field("send_queue_largest_bytes", s.get(Gauge::kLargestSendQueueBytes));
  out += ",\"connections_refused\":{";
  for (std::size_t i = 0; i < kRefusalReasons.size(); ++i) {
    if (i > 0) out += ',';
    out.append("\"").append(kRefusalReasons[i].reason).append("\":");
    out.append(std::to_string(s.get(kRefusalReasons[i].counter)));
  }
  out += "}";
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
  if (s.storage) {
    out.append(",\"storage_ok\":").append(s.storage->ok ? "1" : "0");
    out.append(",\"storage\":{\"commit_failures\":")
        .append(std::to_string(s.storage->commit_failures));
    out.append(",\"queue_messages\":").append(std::to_string(s.storage->queue_depth));
    out.append(",\"last_commit_timestamp_seconds\":")
        .append(format_number(s.storage->last_commit_unix_seconds));
    out.append("}");
  }
  if (s.process) {
    out.append(",\"process\":{\"resident_memory_bytes\":")
        .append(format_number(s.process->resident_memory_bytes));
    out.append(",\"open_fds\":").append(format_number(s.process->open_fds));
    out.append(",\"max_fds\":").append(format_number(s.process->max_fds));
    out.append(",\"cpu_seconds\":").append(format_number(s.process->cpu_seconds));
    out.append("}");
  }
  if (s.live) {
    const LiveRates& l = *s.live;
    out.append(",\"live\":{\"window_seconds\":").append(format_number(l.window_seconds));
    out.append(",\"messages_per_second\":").append(format_number(l.messages_per_second));
    out.append(",\"deliveries_per_second\":").append(format_number(l.deliveries_per_second));
    out.append(",\"errors_per_second\":").append(format_number(l.errors_per_second));
    out.append(",\"error_rate\":").append(format_number(l.error_rate));
    out.append(",\"delivery_latency_avg_seconds\":")
        .append(format_number(l.delivery_latency_avg_seconds));
    out.append(",\"delivery_latency_p50_seconds\":")
        .append(format_number(l.delivery_latency_p50_seconds));
    out.append(",\"delivery_latency_p99_seconds\":")
        .append(format_number(l.delivery_latency_p99_seconds));
    out.append("}");
  }
  const auto build = base::build_info();
  out.append(",\"build\":{\"version\":\"").append(build.version);
  out.append("\",\"commit\":\"").append(build.commit).append("\"}}");
  return out;
}

}  // namespace roomcast::metrics
