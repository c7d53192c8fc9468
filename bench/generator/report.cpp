#include "report.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <fstream>
#include <sstream>

namespace roomcast::bench {
namespace {

double ms(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e6;
}
double mib(std::uint64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

double max_of(const std::vector<double>& values) {
  double best = 0;
  for (double v : values) best = std::max(best, v);
  return best;
}

// A minimal JSON emitter: objects and arrays written in order, commas handled here.
class JsonWriter {
 public:
  explicit JsonWriter(std::ostream& out) : out_(out) {}

  JsonWriter& begin_object(const char* key = nullptr) { return open(key, '{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array(const char* key = nullptr) { return open(key, '['); }
  JsonWriter& end_array() { return close(']'); }

  JsonWriter& field(const char* key, const std::string& value) {
    prefix(key);
    quoted(value);
    return *this;
  }
  JsonWriter& field(const char* key, const char* value) { return field(key, std::string(value)); }
  JsonWriter& field(const char* key, bool value) {
    prefix(key);
    out_ << (value ? "true" : "false");
    return *this;
  }
  JsonWriter& field(const char* key, std::uint64_t value) {
    prefix(key);
    out_ << value;
    return *this;
  }
  JsonWriter& field(const char* key, int value) {
    prefix(key);
    out_ << value;
    return *this;
  }
  JsonWriter& field(const char* key, double value) {
    prefix(key);
    if (std::isfinite(value)) {
      char number[32];
      std::snprintf(number, sizeof number, "%.10g", value);
      out_ << number;
    } else {
      out_ << "null";
    }
    return *this;
  }
  template <typename T>
  JsonWriter& field(const char* key, const std::optional<T>& value) {
    if (value) return field(key, *value);
    prefix(key);
    out_ << "null";
    return *this;
  }
  JsonWriter& value(double v) { return field(nullptr, v); }
  JsonWriter& value(int v) { return field(nullptr, v); }
  JsonWriter& value(const std::string& v) { return field(nullptr, v); }

 private:
  JsonWriter& open(const char* key, char bracket) {
    prefix(key);
    out_ << bracket;
    first_ = true;
    return *this;
  }
  JsonWriter& close(char bracket) {
    out_ << bracket;
    first_ = false;
    return *this;
  }
  void prefix(const char* key) {
    if (!first_) out_ << ',';
    first_ = false;
    if (key != nullptr) {
      quoted(key);
      out_ << ':';
    }
  }
  void quoted(std::string_view text) {
    out_ << '"';
    for (char ch : text) {
      if (ch == '"' || ch == '\\') {
        out_ << '\\' << ch;
      } else if (static_cast<unsigned char>(ch) < 0x20) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(ch));
        out_ << escaped;
      } else {
        out_ << ch;
      }
    }
    out_ << '"';
  }

  std::ostream& out_;
  bool first_ = true;
};

std::string step_result_text(const StepResult& step) {
  std::string text = step.passed ? "ok" : "FAILED: " + step.failure;
  if (step.generator_bound) text += " (generator-bound)";
  return text;
}

}  // namespace

std::optional<double> RunResult::bytes_per_connection() const {
  const auto& after = server_rss_holding ? server_rss_holding : server_rss_joined;
  if (!server_rss_before || !after || connect.ok == 0) return std::nullopt;
  return (static_cast<double>(*after) - static_cast<double>(*server_rss_before)) /
         static_cast<double>(connect.ok);
}

void print_markdown(const RunResult& result, std::FILE* out) {
  const Options& options = *result.options;
  std::fprintf(out, "## roomcast-bench: %s\n\n", scenario_name(options.scenario));
  std::fprintf(out, "%d connections in %d room(s) of %d", options.connections, options.room_count(),
               options.clients_per_room);
  if (options.scenario != Scenario::kIdle) {
    std::string sending = message_kind_name(options.message_kind);
    if (!options.event_type.empty()) sending += " " + options.event_type;
    if (options.no_echo) sending += ", no echo";
    if (options.batch) sending += ", joined with batch";
    std::fprintf(out, " (%d sender(s) each, sending %s)", options.senders_per_room,
                 sending.c_str());
  }
  std::fprintf(out, ", %d process(es), %d source IPs, target %s\n\n", options.processes,
               options.source_ips, options.url.c_str());

  std::fprintf(out, "| setup | value |\n| --- | --- |\n");
  std::fprintf(out, "| connections established | %" PRIu64 " in %s s (%s handshakes/s) |\n",
               result.connect.ok, fixed(result.connect.seconds, 2).c_str(),
               fixed(result.connect.per_second(), 0).c_str());
  std::fprintf(out, "| joins welcomed (join time) | %" PRIu64 " in %s s (%s joins/s) |\n",
               result.join.ok, fixed(result.join.seconds, 2).c_str(),
               fixed(result.join.per_second(), 0).c_str());
  std::fprintf(out,
               "| presence settled (full user_list everywhere) | %" PRIu64 " of %" PRIu64
               " clients, %s s after the first join |\n",
               result.settle.ok, result.join.ok, fixed(result.settle.seconds, 2).c_str());
  if (result.server_rss_before) {
    std::fprintf(out, "| server RSS before connecting | %s MiB |\n",
                 fixed(mib(*result.server_rss_before), 1).c_str());
  }
  if (result.server_rss_joined) {
    std::fprintf(out, "| server RSS, all joined | %s MiB |\n",
                 fixed(mib(*result.server_rss_joined), 1).c_str());
  }
  if (result.server_rss_holding) {
    std::fprintf(out, "| server RSS at the end of the hold | %s MiB |\n",
                 fixed(mib(*result.server_rss_holding), 1).c_str());
  }
  if (auto per = result.bytes_per_connection()) {
    std::fprintf(out, "| server bytes per connection | %s |\n", fixed(*per, 0).c_str());
  }
  if (options.scenario == Scenario::kIdle) {
    if (result.server_cpu_holding_s) {
      std::fprintf(out, "| server CPU during the hold | %s s |\n",
                   fixed(*result.server_cpu_holding_s, 2).c_str());
    }
    std::fprintf(out, "| open after %s s hold | %" PRIu64 " of %" PRIu64 " %s |\n",
                 fixed(options.hold_seconds, 0).c_str(), result.open_after_hold, result.connect.ok,
                 result.open_after_hold == result.connect.ok ? "(all)" : "(SOME CLOSED)");
  }
  std::fprintf(out, "| pings received / pongs sent | %" PRIu64 " / %" PRIu64 " |\n",
               result.health.pings_received, result.health.pongs_sent);
  std::fprintf(out, "| connections closed by the server | %" PRIu64 " |\n",
               result.health.closed_by_server);
  std::fprintf(out, "| error messages from the server | %" PRIu64 " |\n",
               result.health.error_messages);
  std::fprintf(out, "| late deliveries (after their step's cutoff) | %" PRIu64 " |\n\n",
               result.health.late_deliveries);

  if (!result.steps.empty()) {
    std::fprintf(out,
                 "| step | target msg/s | sent msg/s | deliveries expected | received | "
                 "delivered | deliveries/s | p50 ms | p90 ms | p99 ms | max ms | server CPU | "
                 "server RSS MiB | generator CPU (max) | result |\n");
    std::fprintf(out,
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
                 "| --- | --- |\n");
    for (const StepResult& step : result.steps) {
      const std::string cpu = step.server_cpu_s && step.window_s > 0
                                  ? fixed(100 * *step.server_cpu_s / step.window_s, 0) + "%"
                                  : "-";
      const std::string rss =
          step.server_rss_bytes ? fixed(mib(*step.server_rss_bytes), 1) : std::string("-");
      std::fprintf(
          out,
          "| %u | %s | %s | %" PRIu64 " | %" PRIu64
          " | %s%% | %s | %s | %s | %s | %s | %s | %s | %s%% | %s |\n",
          step.index + 1, fixed(step.target_rate, 0).c_str(), fixed(step.sent_rate(), 0).c_str(),
          step.expected, step.received, fixed(100 * step.delivered_share(), 2).c_str(),
          fixed(step.deliveries_per_second(), 0).c_str(),
          fixed(ms(step.latency.quantile(0.50)), 2).c_str(),
          fixed(ms(step.latency.quantile(0.90)), 2).c_str(),
          fixed(ms(step.latency.quantile(0.99)), 2).c_str(),
          fixed(ms(step.latency.max()), 2).c_str(), cpu.c_str(), rss.c_str(),
          fixed(100 * max_of(step.generator_cpu), 0).c_str(), step_result_text(step).c_str());
    }
    std::fprintf(out, "\n");
  }
  for (const std::string& warning : result.warnings) {
    std::fprintf(out, "**Warning:** %s\n\n", warning.c_str());
  }
  if (!result.stop_reason.empty()) {
    std::fprintf(out, "Ramp stopped: %s\n\n", result.stop_reason.c_str());
  }
  if (!result.first_error.empty()) {
    std::fprintf(out, "First error seen: %s\n\n", result.first_error.c_str());
  }
}

std::string write_json(const RunResult& result, const std::string& path) {
  const Options& options = *result.options;
  std::ostringstream text;
  JsonWriter json(text);
  json.begin_object();
  json.field("tool", "roomcast-bench");
  json.field("scenario", scenario_name(options.scenario));
  json.field("completed", result.completed);

  json.begin_object("config");
  json.field("url", options.url);
  json.field("connections", options.connections);
  json.field("processes", options.processes);
  json.field("source_ips", options.source_ips);
  json.field("clients_per_room", options.clients_per_room);
  json.field("rooms", options.room_count());
  json.field("senders_per_room", options.senders_per_room);
  json.field("total_senders", options.total_senders());
  json.field("join_rate", options.join_rate);
  json.begin_array("rates");
  for (double rate : options.rates) json.value(rate);
  json.end_array();
  json.field("step_seconds", options.step_seconds);
  json.field("grace_seconds", options.grace_seconds);
  json.field("payload_bytes", options.payload_bytes);
  json.field("message_kind", message_kind_name(options.message_kind));
  json.field("event_type", options.event_type);
  json.field("echo", !options.no_echo);
  json.field("batch", options.batch);
  json.field("deflate", options.deflate);
  json.field("min_delivered", options.min_delivered);
  json.field("max_p99_ms", options.max_p99_ms);
  json.field("hold_seconds", options.hold_seconds);
  json.begin_array("server_pids");
  for (pid_t pid : options.server_pids) json.value(static_cast<int>(pid));
  json.end_array();
  json.end_object();

  json.begin_object("setup");
  json.field("connections_ok", result.connect.ok);
  json.field("connections_failed", result.connect.failed);
  json.field("connect_seconds", result.connect.seconds);
  json.field("handshakes_per_second", result.connect.per_second());
  json.field("joins_ok", result.join.ok);
  json.field("joins_failed", result.join.failed);
  json.field("join_seconds", result.join.seconds);
  json.field("joins_per_second", result.join.per_second());
  json.field("full_user_lists", result.settle.ok);
  json.field("presence_settled_seconds", result.settle.seconds);
  json.end_object();

  json.begin_object("server");
  json.field("rss_before_bytes", result.server_rss_before);
  json.field("rss_joined_bytes", result.server_rss_joined);
  json.field("rss_holding_bytes", result.server_rss_holding);
  json.field("bytes_per_connection", result.bytes_per_connection());
  json.field("cpu_holding_seconds", result.server_cpu_holding_s);
  json.end_object();

  if (options.scenario == Scenario::kIdle) {
    json.begin_object("hold");
    json.field("seconds", options.hold_seconds);
    json.field("open_at_end", result.open_after_hold);
    json.field("all_open", result.open_after_hold == result.connect.ok);
    json.end_object();
  }

  json.begin_array("steps");
  for (const StepResult& step : result.steps) {
    json.begin_object();
    json.field("step", static_cast<int>(step.index + 1));
    json.field("target_rate", step.target_rate);
    json.field("window_seconds", step.window_s);
    json.field("sent", step.sent);
    json.field("sent_rate", step.sent_rate());
    json.field("sent_bytes", step.sent_bytes);
    json.field("bytes_per_message_sent", step.bytes_per_message_sent());
    json.field("deliveries_expected", step.expected);
    json.field("deliveries_received", step.received);
    json.field("delivered_share", step.delivered_share());
    json.field("wire_bytes_received", step.wire_bytes);
    json.field("wire_bytes_per_delivery", step.wire_bytes_per_delivery());
    json.field("deliveries_per_second", step.deliveries_per_second());
    json.field("closed_by_server", step.closed);
    json.field("open_at_end", step.open_at_end);
    json.begin_object("latency_ms");
    json.field("p50", ms(step.latency.quantile(0.50)));
    json.field("p90", ms(step.latency.quantile(0.90)));
    json.field("p99", ms(step.latency.quantile(0.99)));
    json.field("max", ms(step.latency.max()));
    json.field("count", step.latency.count());
    json.end_object();
    json.field("server_cpu_seconds", step.server_cpu_s);
    json.field("server_rss_bytes", step.server_rss_bytes);
    json.begin_array("generator_cpu_share");
    for (double share : step.generator_cpu) json.value(share);
    json.end_array();
    json.field("generator_bound", step.generator_bound);
    json.field("passed", step.passed);
    json.field("failure", step.failure);
    json.end_object();
  }
  json.end_array();

  json.begin_object("health");
  json.field("pings_received", result.health.pings_received);
  json.field("pongs_sent", result.health.pongs_sent);
  json.field("closed_by_server", result.health.closed_by_server);
  json.field("error_messages", result.health.error_messages);
  json.field("late_deliveries", result.health.late_deliveries);
  json.field("open_connections_at_end", result.health.open_connections);
  json.field("deflate_connections", result.health.deflate_connections);
  json.end_object();

  json.field("stop_reason", result.stop_reason);
  json.field("generator_bound_steps",
             static_cast<std::uint64_t>(
                 std::count_if(result.steps.begin(), result.steps.end(),
                               [](const StepResult& step) { return step.generator_bound; })));
  json.begin_array("warnings");
  for (const std::string& warning : result.warnings) json.value(warning);
  json.end_array();
  json.field("first_error", result.first_error);
  json.end_object();
  text << '\n';

  std::ofstream file(path);
  if (!file) return "cannot open " + path + " for writing";
  file << text.str();
  file.close();
  if (!file) return "cannot write " + path;
  return {};
}

}  // namespace roomcast::bench
