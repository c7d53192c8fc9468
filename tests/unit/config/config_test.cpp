// parse_config: the defaults are the options structs', flags land in their fields, and every
// refusal says which flag and why, on the channel and with the status the server has always
// used.
#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <vector>

#include "base/build_info.h"

extern char** environ;

namespace roomcast::config {
namespace {

using std::chrono::seconds;

class ParseConfigTest : public ::testing::Test {
 protected:
  // Settings must come from the test, not from the environment it was started in.
  void SetUp() override {
    std::vector<std::string> names{"PORT", "REDIS_URL", "JWT_SECRET"};
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string variable(*entry);
      if (variable.rfind("ROOMCAST_", 0) == 0)
        names.push_back(variable.substr(0, variable.find('=')));
    }
    for (const auto& name : names) unsetenv(name.c_str());
    dir_ = std::filesystem::temp_directory_path() /
           ("roomcast-config-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A file of the test's directory holding `text`; its path.
  std::string file(const std::string& name, const std::string& text) const {
    const auto path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  std::filesystem::path dir_;

  static Parsed parse(std::vector<const char*> flags) {
    flags.insert(flags.begin(), "roomcast");
    return parse_config(static_cast<int>(flags.size()), flags.data());
  }

  // The Config `flags` give; fails the test (and returns the defaults) if they give an Exit.
  static Config config(std::vector<const char*> flags) {
    auto parsed = parse(std::move(flags));
    if (const auto* exit = std::get_if<Exit>(&parsed)) {
      ADD_FAILURE() << "refused (" << exit->status << "): " << exit->text;
      return Config{};
    }
    return std::get<Config>(std::move(parsed));
  }

  // The Exit `flags` give; fails the test if they give a Config.
  static Exit refusal(std::vector<const char*> flags) {
    auto parsed = parse(std::move(flags));
    if (!std::holds_alternative<Exit>(parsed)) {
      ADD_FAILURE() << "accepted";
      return Exit{};
    }
    return std::get<Exit>(std::move(parsed));
  }
};

// A refused flag: stderr, CLI11's status, the flag named, the reason given.
void expect_refused(const Exit& exit, const std::string& message) {
  EXPECT_EQ(exit.channel, Exit::Channel::kStderr);
  EXPECT_NE(exit.status, 0);
  EXPECT_NE(exit.text.find(message), std::string::npos) << exit.text;
  EXPECT_NE(exit.text.find("Run with --help for more information."), std::string::npos)
      << exit.text;
}

TEST_F(ParseConfigTest, NoFlagsGiveTheDefaultsOfTheOptionsStructs) {
  const Config c = config({});
  const net::ServerOptions server;
  EXPECT_EQ(c.server.host, server.host);
  EXPECT_EQ(c.server.port, server.port);
  EXPECT_EQ(c.server.threads, server.threads);
  EXPECT_EQ(c.server.max_message_size, server.max_message_size);
  EXPECT_EQ(c.server.max_queued_bytes, server.max_queued_bytes);
  EXPECT_EQ(c.server.ping_interval, server.ping_interval);
  EXPECT_EQ(c.server.idle_timeout, server.idle_timeout);
  EXPECT_EQ(c.server.handshake_timeout, server.handshake_timeout);
  EXPECT_EQ(c.server.shutdown_timeout, server.shutdown_timeout);
  EXPECT_EQ(c.server.require_auth, server.require_auth);
  EXPECT_EQ(c.server.max_connections, server.max_connections);
  EXPECT_EQ(c.server.max_connections_per_ip, server.max_connections_per_ip);
  EXPECT_EQ(c.server.client_address_header, server.client_address_header);
  EXPECT_TRUE(c.server.allowed_origins.empty());
  EXPECT_FALSE(c.server.echo_endpoint);

  const chat::HubOptions hub;
  EXPECT_EQ(c.hub.typing_timeout, hub.typing_timeout);
  // A Hub of its own announces at once (tests); the server waits for a return (Config).
  EXPECT_EQ(c.hub.rejoin_grace, std::chrono::seconds(10));
  EXPECT_EQ(c.hub.history_size, hub.history_size);
  EXPECT_EQ(c.hub.history_on_join, hub.history_on_join);
  EXPECT_EQ(c.hub.message_rate.max_events, hub.message_rate.max_events);
  EXPECT_EQ(c.hub.message_rate.window, hub.message_rate.window);
  EXPECT_EQ(c.hub.signal_rate.max_events, hub.signal_rate.max_events);
  EXPECT_EQ(c.hub.signal_rate.window, hub.signal_rate.window);
  EXPECT_EQ(c.hub.address_message_rate.max_events, hub.address_message_rate.max_events);
  EXPECT_EQ(c.hub.address_signal_rate.max_events, hub.address_signal_rate.max_events);
  EXPECT_EQ(c.hub.max_rooms_per_connection, hub.max_rooms_per_connection);
  // The one default the server sets differently from the Hub's: a month of history.
  EXPECT_EQ(c.hub.history_ttl, Config{}.hub.history_ttl);
  EXPECT_EQ(c.hub.history_ttl, std::chrono::days(30));

  EXPECT_EQ(c.history_store, HistoryStore::kSqlite);
  EXPECT_EQ(c.data_dir, std::filesystem::path("data"));
  const store::SqliteStoreOptions sqlite;
  EXPECT_EQ(c.sqlite.file, std::filesystem::path("data") / "roomcast.db");
  EXPECT_EQ(c.sqlite.sync_every_commit, sqlite.sync_every_commit);
  EXPECT_EQ(c.sqlite.refuse_after, sqlite.refuse_after);
  EXPECT_EQ(c.sqlite.identity_check_interval, sqlite.identity_check_interval);

  const cluster::RedisClusterOptions redis;
  EXPECT_TRUE(c.redis.url.empty());
  EXPECT_EQ(c.redis.node_ttl, redis.node_ttl);
  EXPECT_EQ(c.redis.command_timeout, redis.command_timeout);

  EXPECT_TRUE(c.jwt.secret.empty());
  EXPECT_TRUE(c.jwt_public_key_file.empty());
  EXPECT_EQ(c.jwt.leeway, auth::JwtOptions{}.leeway);
  EXPECT_EQ(c.log_level, "info");
}

TEST_F(ParseConfigTest, HelpShowsTheStructsDefaultsOnStdout) {
  const Exit exit = refusal({"--help"});
  EXPECT_EQ(exit.channel, Exit::Channel::kStdout);
  EXPECT_EQ(exit.status, 0);
  const net::ServerOptions server;
  const auto shows = [&](const std::string& flag, const std::string& value) {
    const auto at = exit.text.find("\n  " + flag + " ");  // its own line, not a mention
    ASSERT_NE(at, std::string::npos) << flag << " missing from\n" << exit.text;
    const auto line = exit.text.substr(at + 1, exit.text.find('\n', at + 1) - at - 1);
    EXPECT_NE(line.find("=" + value), std::string::npos) << line;
  };
  shows("--port", std::to_string(server.port));
  shows("--max-queued-bytes", std::to_string(server.max_queued_bytes));
  shows("--ping-interval", format_duration(server.ping_interval));
  shows("--idle-timeout", format_duration(server.idle_timeout));
  shows("--history-ttl", "30d");
  shows("--history-size", std::to_string(chat::HubOptions{}.history_size));
  shows("--rate-limit-window", format_duration(chat::HubOptions{}.message_rate.window));
  shows("--storage-refuse-after", format_duration(store::SqliteStoreOptions{}.refuse_after));
  shows("--cluster-node-ttl", format_duration(cluster::RedisClusterOptions{}.node_ttl));
  shows("--redis-timeout", format_duration(cluster::RedisClusterOptions{}.command_timeout));
  shows("--jwt-leeway", format_duration(auth::JwtOptions{}.leeway));
  shows("--history-store", "sqlite");
  shows("--history-sync", "full");
  shows("--client-address-header", "x-forwarded-for");
  shows("--compression", "shared");
  shows("--compression-min-bytes", std::to_string(server.compression_min_bytes));
  shows("--log-level", "info");
}

TEST_F(ParseConfigTest, ServerFlagsLandInTheServerOptions) {
  const Config c = config({"--host", "127.0.0.1", "--port", "4000", "--threads", "2",
                           "--max-message-size", "4096", "--client-address-header", "forwarded",
                           "--trusted-proxies", "127.0.0.1,10.0.0.0/8", "--echo-endpoint"});
  EXPECT_EQ(c.server.host, "127.0.0.1");
  EXPECT_EQ(c.server.port, 4000);
  EXPECT_EQ(c.server.threads, 2u);
  EXPECT_EQ(c.server.max_message_size, 4096u);
  EXPECT_EQ(c.server.client_address_header, http::ForwardedHeader::kForwarded);
  EXPECT_TRUE(c.server.trusted_proxies.contains(boost::asio::ip::make_address("10.1.2.3")));
  EXPECT_FALSE(c.server.trusted_proxies.contains(boost::asio::ip::make_address("192.0.2.1")));
  EXPECT_TRUE(c.server.echo_endpoint);
}

// The header's name is case-insensitive, as HTTP's are: "Forwarded" must not quietly mean
// X-Forwarded-For (a client could then name its own address through a proxy that passes
// X-Forwarded-For on untouched).
TEST_F(ParseConfigTest, TheClientAddressHeaderIgnoresCase) {
  EXPECT_EQ(config({"--client-address-header", "Forwarded"}).server.client_address_header,
            http::ForwardedHeader::kForwarded);
  EXPECT_EQ(config({"--client-address-header", "FORWARDED"}).server.client_address_header,
            http::ForwardedHeader::kForwarded);
  EXPECT_EQ(config({"--client-address-header", "X-Forwarded-For"}).server.client_address_header,
            http::ForwardedHeader::kXForwardedFor);
  expect_refused(refusal({"--client-address-header", "x-real-ip"}), "--client-address-header");
}

TEST_F(ParseConfigTest, CompressionModesAndTheirThreshold) {
  EXPECT_EQ(config({}).server.compression, net::Compression::kShared);
  EXPECT_EQ(config({"--compression", "off"}).server.compression, net::Compression::kOff);
  EXPECT_EQ(config({"--compression", "dedicated"}).server.compression,
            net::Compression::kDedicated);
  EXPECT_EQ(config({"--compression-min-bytes", "0"}).server.compression_min_bytes, 0u);
  expect_refused(refusal({"--compression", "gzip"}), "--compression");
  expect_refused(refusal({"--compression-min-bytes", "-1"}), "--compression-min-bytes");
}

TEST_F(ParseConfigTest, OriginsAccumulateOverListsAndRepeats) {
  const Config c = config({"--allowed-origins", "https://a.example,http://b.example:8080",
                           "--allowed-origins", "https://c.example"});
  EXPECT_EQ(c.server.allowed_origins,
            (std::vector<std::string>{"https://a.example", "http://b.example:8080",
                                      "https://c.example"}));
}

TEST_F(ParseConfigTest, HistoryFlagsSetTheHubAndItsStoreAlike) {
  const Config c = config({"--history-store", "memory", "--history-sync", "normal", "--data-dir",
                           "/tmp/rc", "--history-size", "10", "--history-ttl", "7d"});
  EXPECT_EQ(c.history_store, HistoryStore::kMemory);
  EXPECT_FALSE(c.sqlite.sync_every_commit);
  EXPECT_EQ(c.hub.history_size, 10u);
  EXPECT_EQ(c.hub.history_ttl, std::chrono::days(7));
  // Retention is one setting of the Hub and whichever store keeps its history.
  EXPECT_EQ(c.sqlite.file, std::filesystem::path("/tmp/rc/roomcast.db"));
  EXPECT_EQ(c.sqlite.retention.max_messages, 10u);
  EXPECT_EQ(c.sqlite.retention.max_age, std::chrono::days(7));
  EXPECT_EQ(c.redis.retention.max_messages, 10u);
  EXPECT_EQ(c.redis.retention.max_age, std::chrono::days(7));
}

TEST_F(ParseConfigTest, RateFlagsSetAPersonsAndAnAddresssWindowAlike) {
  const Config c = config({"--rate-limit-messages", "3", "--rate-limit-window", "2m",
                           "--rate-limit-signals-window", "250ms"});
  EXPECT_EQ(c.hub.message_rate.max_events, 3u);
  EXPECT_EQ(c.hub.message_rate.window, std::chrono::minutes(2));
  EXPECT_EQ(c.hub.signal_rate.window, milliseconds(250));
  EXPECT_EQ(c.hub.address_message_rate.window, std::chrono::minutes(2));
  EXPECT_EQ(c.hub.address_signal_rate.window, milliseconds(250));
}

TEST_F(ParseConfigTest, TokenFlags) {
  const Config c = config({"--jwt-secret", "s3cret", "--jwt-leeway", "1500ms", "--require-auth",
                           "--log-level", "warn"});
  EXPECT_EQ(c.jwt.secret, "s3cret");
  EXPECT_EQ(c.jwt.leeway, seconds(1));  // whole seconds, as a token's exp
  EXPECT_TRUE(c.server.require_auth);
  EXPECT_EQ(c.log_level, "warn");
}

TEST_F(ParseConfigTest, ClusterFlagsAndTheNodeName) {
  const Config named = config({"--redis", "redis://127.0.0.1:6390/2", "--node-id", "n1",
                               "--cluster-node-ttl", "2s", "--redis-timeout", "250ms"});
  EXPECT_EQ(named.redis.url, "redis://127.0.0.1:6390/2");
  EXPECT_EQ(named.redis.node_name, "n1");
  EXPECT_EQ(named.redis.node_ttl, seconds(2));
  EXPECT_EQ(named.redis.command_timeout, milliseconds(250));

  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(config({"--redis", "redis://127.0.0.1"}).redis.node_name, host);
  EXPECT_EQ(config({"--redis", "redis://127.0.0.1", "--node-id", ""}).redis.node_name, host);
}

TEST_F(ParseConfigTest, TheEnvironmentGivesWhatAFlagDoesNot) {
  setenv("PORT", "4100", 1);
  setenv("REDIS_URL", "redis://127.0.0.1:6391", 1);
  const Config from_env = config({});
  EXPECT_EQ(from_env.server.port, 4100);
  EXPECT_EQ(from_env.redis.url, "redis://127.0.0.1:6391");
  EXPECT_EQ(config({"--port", "4200"}).server.port, 4200);  // the flag wins
}

TEST_F(ParseConfigTest, DurationsTakeTheirUnits) {
  const auto parsed = [](const std::string& text) {
    milliseconds out{-1};
    const auto error = parse_duration(text, out);
    EXPECT_EQ(error, "") << text;
    return out;
  };
  EXPECT_EQ(parsed("250ms"), milliseconds(250));
  EXPECT_EQ(parsed("15s"), seconds(15));
  EXPECT_EQ(parsed("15"), seconds(15));
  EXPECT_EQ(parsed("1.5s"), milliseconds(1500));
  EXPECT_EQ(parsed("2m"), std::chrono::minutes(2));
  EXPECT_EQ(parsed("12h"), std::chrono::hours(12));
  EXPECT_EQ(parsed("7d"), std::chrono::days(7));
  EXPECT_EQ(parsed("0"), milliseconds(0));

  milliseconds untouched{42};
  EXPECT_EQ(parse_duration("5x", untouched), "unknown unit 'x' (use ms, s, m, h or d)");
  EXPECT_EQ(parse_duration("soon", untouched), "expected a duration such as 250ms, 15s or 2m");
  EXPECT_EQ(parse_duration("-1s", untouched), "expected a duration such as 250ms, 15s or 2m");
  EXPECT_EQ(parse_duration("", untouched), "expected a duration such as 250ms, 15s or 2m");
  EXPECT_EQ(untouched, milliseconds(42));

  EXPECT_EQ(format_duration(std::chrono::days(30)), "30d");
  EXPECT_EQ(format_duration(seconds(15)), "15s");
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
  EXPECT_EQ(format_duration(milliseconds(0)), "0s");
  EXPECT_EQ(config({"--history-ttl", "0"}).hub.history_ttl, milliseconds(0));  // no age limit
}

TEST_F(ParseConfigTest, ZeroAndNonsenseAreRefusedNamingTheFlag) {
  expect_refused(refusal({"--ping-interval", "0"}), "--ping-interval: must be more than 0");
  expect_refused(refusal({"--idle-timeout", "0s"}), "--idle-timeout: must be more than 0");
  expect_refused(refusal({"--handshake-timeout", "0ms"}),
                 "--handshake-timeout: must be more than 0");
  expect_refused(refusal({"--storage-refuse-after", "5x"}),
                 "--storage-refuse-after: unknown unit 'x' (use ms, s, m, h or d)");
  expect_refused(refusal({"--redis-timeout", "0"}), "--redis-timeout: must be more than 0");
  expect_refused(refusal({"--rate-limit-window", "0"}),
                 "--rate-limit-window: must be more than 0 (--rate-limit-messages 0 turns the "
                 "limit off)");
  expect_refused(refusal({"--rate-limit-signals-window", "0"}),
                 "--rate-limit-signals-window: must be more than 0 (--rate-limit-signals 0 "
                 "turns the limit off)");
  expect_refused(refusal({"--history-ttl", "soon"}),
                 "--history-ttl: expected a duration such as 250ms, 15s or 2m");
  expect_refused(refusal({"--max-message-size", "0"}), "must be at least 1");
  expect_refused(refusal({"--max-queued-bytes", "000"}), "must be at least 1");
  // strtoull would take these for 2^64-1 (no limit) and 0.
  expect_refused(refusal({"--max-rooms-per-connection", "-1"}),
                 "--max-rooms-per-connection: must not be negative");
  expect_refused(refusal({"--history-size", "-3"}), "--history-size: must not be negative");
  expect_refused(refusal({"--max-message-size", "-0"}), "--max-message-size: must not be negative");
  expect_refused(refusal({"--host", ""}), "must not be empty");
  expect_refused(refusal({"--threads", "65"}), "--threads");
  expect_refused(refusal({"--history-store", "disk"}), "--history-store");
  expect_refused(refusal({"--history-sync", "sometimes"}), "--history-sync");
  expect_refused(refusal({"--allowed-origins", "https://a.example,"}),
                 "--allowed-origins: an empty entry in 'https://a.example,' (origins are "
                 "separated by single commas)");
  expect_refused(refusal({"--allowed-origins", "https://a.example/"}),
                 "--allowed-origins: 'https://a.example/'");
  expect_refused(refusal({"--tls-cert", "/no/such/cert.pem", "--tls-key", "/no/such/key.pem"}),
                 "--tls-cert");
}

TEST_F(ParseConfigTest, AnIdleTimeoutNotAboveThePingIntervalIsRefusedWithStatus2) {
  const Exit exit = refusal({"--ping-interval", "2s", "--idle-timeout", "2s"});
  EXPECT_EQ(exit.channel, Exit::Channel::kStderr);
  EXPECT_EQ(exit.status, 2);
  EXPECT_EQ(exit.text,
            "--idle-timeout: must be more than --ping-interval (2000 ms): a client that answers "
            "every ping needs to be pinged, and time to answer\n");
}

// A combination refused after parsing: one critical log line, status 1, at the --log-level
// the flags asked for.
TEST_F(ParseConfigTest, CombinationsAreRefusedAsACriticalLogLine) {
  const auto expect_critical = [](const Exit& exit, const std::string& text) {
    EXPECT_EQ(exit.channel, Exit::Channel::kCriticalLog);
    EXPECT_EQ(exit.status, 1);
    EXPECT_EQ(exit.text, text);
  };
  expect_critical(refusal({"--require-auth"}),
                  "--require-auth needs --jwt-secret or --jwt-public-key to verify tokens");
  const Exit proxies = refusal({"--trusted-proxies", "10.0.0.0/33", "--log-level", "off"});
  EXPECT_EQ(proxies.channel, Exit::Channel::kCriticalLog);
  EXPECT_EQ(proxies.status, 1);
  EXPECT_EQ(proxies.text.rfind("--trusted-proxies: ", 0), 0u) << proxies.text;
  EXPECT_EQ(proxies.log_level, "off");
  expect_critical(refusal({"--redis", "redis://127.0.0.1", "--redis-timeout", "50ms"}),
                  "--redis-timeout must be at least 100ms");
  expect_critical(refusal({"--redis", "redis://127.0.0.1", "--cluster-node-ttl", "100ms"}),
                  "--cluster-node-ttl must be at least 500ms");
  // Without --redis the cluster's settings are not used, and not judged.
  EXPECT_EQ(config({"--cluster-node-ttl", "100ms"}).redis.node_ttl, milliseconds(100));
}

TEST_F(ParseConfigTest, AnUnknownFlagIsRefused) {
  expect_refused(refusal({"--no-such-flag"}), "--no-such-flag");
  expect_refused(refusal({"--port"}), "--port");  // a value missing
}

TEST_F(ParseConfigTest, OneKeyKindOnly) {
  expect_refused(refusal({"--jwt-secret", "s", "--jwt-public-key", "/etc/hostname"}), "excludes");
}

// One value of every setting, none of them its default, and how to see it in a Config.
// `companions`: flags it needs to be accepted or used (--tls-key for --tls-cert).
struct Example {
  std::string name;
  std::string value;
  std::function<bool(const Config&)> applied;
  std::vector<std::string> companions{};
};

std::vector<Example> every_setting(const std::string& pem) {
  using std::chrono::minutes;
  return {
      {"host", "127.0.0.2", [](const Config& c) { return c.server.host == "127.0.0.2"; }},
      {"port", "4321", [](const Config& c) { return c.server.port == 4321; }},
      {"threads", "3", [](const Config& c) { return c.server.threads == 3; }},
      {"web-root", "/srv/web", [](const Config& c) { return c.http.web_root == "/srv/web"; }},
      {"max-message-size", "4096",
       [](const Config& c) { return c.server.max_message_size == 4096; }},
      {"compression", "dedicated",
       [](const Config& c) { return c.server.compression == net::Compression::kDedicated; }},
      {"compression-min-bytes", "99",
       [](const Config& c) { return c.server.compression_min_bytes == 99; }},
      {"max-queued-bytes", "8192",
       [](const Config& c) { return c.server.max_queued_bytes == 8192; }},
      {"ping-interval", "20s",
       [](const Config& c) { return c.server.ping_interval == seconds(20); }},
      {"idle-timeout", "45s", [](const Config& c) { return c.server.idle_timeout == seconds(45); }},
      {"handshake-timeout", "4s",
       [](const Config& c) { return c.server.handshake_timeout == seconds(4); }},
      {"shutdown-timeout", "9s",
       [](const Config& c) { return c.server.shutdown_timeout == seconds(9); }},
      {"typing-timeout", "7s", [](const Config& c) { return c.hub.typing_timeout == seconds(7); }},
      {"rejoin-grace", "3s", [](const Config& c) { return c.hub.rejoin_grace == seconds(3); }},
      {"data-dir", "/var/lib/rc", [](const Config& c) { return c.data_dir == "/var/lib/rc"; }},
      {"history-store", "memory",
       [](const Config& c) { return c.history_store == HistoryStore::kMemory; }},
      {"history-size", "77", [](const Config& c) { return c.hub.history_size == 77; }},
      {"history-ttl", "2d",
       [](const Config& c) { return c.hub.history_ttl == std::chrono::days(2); }},
      {"history-on-join", "5", [](const Config& c) { return c.hub.history_on_join == 5; }},
      {"history-sync", "normal", [](const Config& c) { return !c.sqlite.sync_every_commit; }},
      {"storage-refuse-after", "11s",
       [](const Config& c) { return c.sqlite.refuse_after == seconds(11); }},
      {"redis", "redis://127.0.0.1:6399",
       [](const Config& c) { return c.redis.url == "redis://127.0.0.1:6399"; }},
      {"node-id",
       "n7",
       [](const Config& c) { return c.redis.node_name == "n7"; },
       {"--redis", "redis://127.0.0.1"}},
      {"cluster-node-ttl", "4s", [](const Config& c) { return c.redis.node_ttl == seconds(4); }},
      {"redis-timeout", "2s",
       [](const Config& c) { return c.redis.command_timeout == seconds(2); }},
      {"tls-cert",
       pem,
       [pem](const Config& c) { return c.server.tls_cert_file == pem; },
       {"--tls-key", pem}},
      {"tls-key",
       pem,
       [pem](const Config& c) { return c.server.tls_key_file == pem; },
       {"--tls-cert", pem}},
      {"jwt-secret", "s3cret", [](const Config& c) { return c.jwt.secret == "s3cret"; }},
      {"jwt-public-key", pem, [pem](const Config& c) { return c.jwt_public_key_file == pem; }},
      {"jwt-leeway", "5s", [](const Config& c) { return c.jwt.leeway == seconds(5); }},
      {"api-key", "k3y", [](const Config& c) { return c.http.api_key == "k3y"; }},
      {"webhook-url",
       "http://127.0.0.1:9000/hooks",
       [](const Config& c) { return c.webhooks.url == "http://127.0.0.1:9000/hooks"; },
       {"--webhook-secret", "s"}},
      {"webhook-secret", "h00k", [](const Config& c) { return c.webhooks.secret == "h00k"; }},
      {"backend-ca-file", pem,
       [pem](const Config& c) {
         return c.webhooks.ca_file == pem && c.publish_hook.ca_file == pem;
       }},
      {"webhook-offline-grace", "3s",
       [](const Config& c) { return c.webhooks.offline_grace == seconds(3); }},
      {"webhook-queue-size", "12", [](const Config& c) { return c.webhooks.queue_size == 12u; }},
      {"webhook-concurrency", "9", [](const Config& c) { return c.webhooks.concurrency == 9u; }},
      {"webhook-timeout", "7s", [](const Config& c) { return c.webhooks.timeout == seconds(7); }},
      {"webhook-max-attempts", "3", [](const Config& c) { return c.webhooks.max_attempts == 3u; }},
      {"publish-hook", "http://127.0.0.1:9000/publish",
       [](const Config& c) { return c.publish_hook.url == "http://127.0.0.1:9000/publish"; }},
      {"publish-hook-timeout", "300ms",
       [](const Config& c) { return c.publish_hook.timeout == std::chrono::milliseconds(300); }},
      {"publish-hook-policy", "fail-open",
       [](const Config& c) { return c.publish_hook.policy == hooks::FailurePolicy::kFailOpen; }},
      {"publish-hook-max-pending", "7",
       [](const Config& c) { return c.hub.max_awaiting_verdict == 7u; }},
      {"require-auth",
       "true",
       [](const Config& c) { return c.server.require_auth; },
       {"--jwt-secret", "s"}},
      {"rate-limit-messages", "3",
       [](const Config& c) { return c.hub.message_rate.max_events == 3; }},
      {"rate-limit-window", "2m",
       [](const Config& c) { return c.hub.message_rate.window == minutes(2); }},
      {"rate-limit-signals", "4",
       [](const Config& c) { return c.hub.signal_rate.max_events == 4; }},
      {"rate-limit-signals-window", "3s",
       [](const Config& c) { return c.hub.signal_rate.window == seconds(3); }},
      {"rate-limit-address-messages", "9",
       [](const Config& c) { return c.hub.address_message_rate.max_events == 9; }},
      {"rate-limit-address-signals", "8",
       [](const Config& c) { return c.hub.address_signal_rate.max_events == 8; }},
      {"trusted-proxies", "10.0.0.0/8",
       [](const Config& c) {
         return c.server.trusted_proxies.contains(boost::asio::ip::make_address("10.9.8.7"));
       }},
      {"client-address-header", "forwarded",
       [](const Config& c) {
         return c.server.client_address_header == http::ForwardedHeader::kForwarded;
       }},
      {"max-rooms-per-connection", "6",
       [](const Config& c) { return c.hub.max_rooms_per_connection == 6; }},
      {"app-events", "doc:durable:no-echo,price:conflate",
       [](const Config& c) {
         const auto* doc = c.hub.app_events.find("doc");
         const auto* price = c.hub.app_events.find("price");
         return doc != nullptr && doc->durable && !doc->echo && !doc->conflate &&
                price != nullptr && !price->durable && price->echo && price->conflate;
       }},
      {"app-events", "doc:durable:rate=60/10s,price:conflate:rate=5/500ms,cursor",
       [](const Config& c) {
         const auto* doc = c.hub.app_events.find("doc");
         const auto* price = c.hub.app_events.find("price");
         const auto* cursor = c.hub.app_events.find("cursor");
         return doc != nullptr && doc->durable && doc->rate && doc->rate->max_events == 60 &&
                doc->rate->window == std::chrono::seconds(10) && price != nullptr &&
                price->conflate && price->rate && price->rate->max_events == 5 &&
                price->rate->window == std::chrono::milliseconds(500) && cursor != nullptr &&
                !cursor->rate &&
                c.hub.app_events.describe() ==
                    "cursor:ephemeral:echo,doc:durable:echo:rate=60/10s,"
                    "price:ephemeral:echo:conflate:rate=5/500ms";
       }},
      {"batch-interval", "80ms",
       [](const Config& c) { return c.hub.batch_interval == std::chrono::milliseconds(80); }},
      {"batch-size", "5", [](const Config& c) { return c.hub.batch_size == 5u; }},
      {"max-binary-bytes", "64",
       [](const Config& c) { return c.hub.limits.max_binary_bytes == 64; }},
      {"max-event-bytes", "4096",
       [](const Config& c) { return c.hub.limits.max_event_bytes == 4096; }},
      {"max-connections", "100", [](const Config& c) { return c.server.max_connections == 100; }},
      {"max-connections-per-ip", "10",
       [](const Config& c) { return c.server.max_connections_per_ip == 10; }},
      {"allowed-origins", "https://a.example",
       [](const Config& c) {
         return c.server.allowed_origins == std::vector<std::string>{"https://a.example"};
       }},
      {"echo-endpoint", "true", [](const Config& c) { return c.server.echo_endpoint; }},
      {"log-level", "warn", [](const Config& c) { return c.log_level == "warn"; }},
      {"log-format", "json",
       [](const Config& c) { return c.log_format == logging::Format::kJson; }},
  };
}

// The settings --print-config lists (set or not): every option a file or variable may set.
std::set<std::string> printed_settings(const std::string& toml) {
  std::set<std::string> names;
  std::istringstream lines(toml);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# ", 0) == 0 && line.ends_with(" = (not set)")) line = line.substr(2);
    if (line.empty() || line.front() == '#') continue;
    names.insert(line.substr(0, line.find(' ')));
  }
  return names;
}

TEST_F(ParseConfigTest, EverySettingComesFromAFlagTheEnvironmentOrTheFile) {
  const std::string pem = file("any.pem", "not read by parse_config\n");
  const auto examples = every_setting(pem);

  // Every setting is in the table: a new one must be tried from each source too.
  const Exit printed = refusal({"--print-config"});
  std::set<std::string> tried;
  for (const auto& example : examples) tried.insert(example.name);
  EXPECT_EQ(printed_settings(printed.text), tried);

  for (const auto& example : examples) {
    SCOPED_TRACE(example.name);
    std::vector<const char*> companions;
    for (const auto& companion : example.companions) companions.push_back(companion.c_str());

    const std::string flag = "--" + example.name + "=" + example.value;
    auto flags = companions;
    flags.push_back(flag.c_str());
    EXPECT_TRUE(example.applied(config(flags))) << "from the flag";

    const std::string variable = environment_name(example.name);
    setenv(variable.c_str(), example.value.c_str(), 1);
    EXPECT_TRUE(example.applied(config(companions))) << "from " << variable;
    unsetenv(variable.c_str());

    const bool flag_like = example.value == "true";
    const std::string toml =
        file("one.toml", example.name + " = " +
                             (flag_like ? example.value : "\"" + example.value + "\"") + "\n");
    auto from_file = companions;
    from_file.insert(from_file.end(), {"--config", toml.c_str()});
    EXPECT_TRUE(example.applied(config(from_file))) << "from the file";
  }
}

// The one rule: a flag over the environment over the file, option by option.
TEST_F(ParseConfigTest, FlagsWinOverTheEnvironmentWhichWinsOverTheFile) {
  const std::string toml =
      file("p.toml", "port = 4001\ndata-dir = \"/from/file\"\nhistory-size = 11\n");
  setenv("ROOMCAST_PORT", "4002", 1);
  setenv("ROOMCAST_DATA_DIR", "/from/env", 1);
  const Config all = config({"--config", toml.c_str(), "--port", "4003"});
  EXPECT_EQ(all.server.port, 4003);  // flag over environment and file
  EXPECT_EQ(all.data_dir, "/from/env");  // environment over file
  EXPECT_EQ(all.hub.history_size, 11u);  // the file, where nothing else speaks
  EXPECT_EQ(config({"--config", toml.c_str()}).server.port, 4002);
  unsetenv("ROOMCAST_PORT");
  EXPECT_EQ(config({"--config", toml.c_str()}).server.port, 4001);
}

TEST_F(ParseConfigTest, TheOlderVariableNamesStillWorkBehindTheNewOnes) {
  setenv("PORT", "4100", 1);
  setenv("JWT_SECRET", "old", 1);
  EXPECT_EQ(config({}).server.port, 4100);
  EXPECT_EQ(config({}).jwt.secret, "old");
  setenv("ROOMCAST_PORT", "4101", 1);
  EXPECT_EQ(config({}).server.port, 4101);
  setenv("ROOMCAST_PORT", "", 1);  // empty: as if unset
  EXPECT_EQ(config({}).server.port, 4100);
}

TEST_F(ParseConfigTest, TheFileIsNamedByTheFlagOrElseTheEnvironment) {
  const std::string a = file("a.toml", "port = 4201\n");
  const std::string b = file("b.toml", "port = 4202\n");
  setenv("ROOMCAST_CONFIG", a.c_str(), 1);
  const Config from_env = config({});
  EXPECT_EQ(from_env.server.port, 4201);
  EXPECT_EQ(from_env.config_file, a);
  EXPECT_EQ(config({"--config", b.c_str()}).server.port, 4202);
}

TEST_F(ParseConfigTest, AFileTakesCommentsListsUnderscoresAndBooleans) {
  const std::string toml = file("c.toml",
                                "# a comment\n"
                                "allowed-origins = [\"https://a.example\", \"https://b.example\"]\n"
                                "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]  # proxies\n"
                                "echo-endpoint = true\n"
                                "require-auth = false\n");
  const Config c = config({"--config", toml.c_str()});
  EXPECT_EQ(c.server.allowed_origins,
            (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_TRUE(c.server.trusted_proxies.contains(boost::asio::ip::make_address("10.1.1.1")));
  EXPECT_TRUE(c.server.echo_endpoint);
  EXPECT_FALSE(c.server.require_auth);
}

// A bad file stops the server before anything starts, naming the file and the key.
TEST_F(ParseConfigTest, ABadFileIsRefusedNamingTheFileAndTheKey) {
  const auto refused_with = [&](const std::string& text, const std::string& message) {
    const std::string toml = file("bad.toml", text);
    const Exit exit = refusal({"--config", toml.c_str()});
    EXPECT_EQ(exit.channel, Exit::Channel::kStderr) << text;
    EXPECT_NE(exit.status, 0) << text;
    EXPECT_NE(exit.text.find(toml), std::string::npos) << exit.text;
    EXPECT_NE(exit.text.find(message), std::string::npos) << exit.text;
  };
  refused_with("prot = 3000\n", "'prot': not an option");
  refused_with("[server]\nport = 3000\n", "section [server]");
  refused_with("port = \"many\"\n", "'port': Could not convert");
  refused_with("port = 1\nport = 2\n", "'port': --port: At Most 1 required but received 2");
  refused_with("history-size = 1\nhistory_size = 2\n", "'history_size': set twice");
  refused_with("port =\n", "'port': no value");
  refused_with("config = \"other.toml\"\n", "'config': not an option");
  refused_with("ping-interval = \"0\"\n", "must be more than 0");
  refused_with("jwt-secret = \"a#b\"\n", "a string not closed on its line");
  refused_with("echo-endpoint = [true, false]\n", "expected true or false");

  const Exit missing = refusal({"--config", "/no/such/roomcast.toml"});
  EXPECT_EQ(missing.channel, Exit::Channel::kStderr);
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.text.find("/no/such/roomcast.toml: no such file"), std::string::npos)
      << missing.text;
}

TEST_F(ParseConfigTest, ABadVariableIsRefusedNamingIt) {
  setenv("ROOMCAST_MAX_CONNECTIONS", "-5", 1);
  const Exit exit = refusal({});
  EXPECT_EQ(exit.channel, Exit::Channel::kStderr);
  EXPECT_NE(exit.status, 0);
  EXPECT_NE(exit.text.find("ROOMCAST_MAX_CONNECTIONS: --max-connections: must not be negative"),
            std::string::npos)
      << exit.text;
  // What options need of each other is judged over every source together.
  unsetenv("ROOMCAST_MAX_CONNECTIONS");
  const std::string pem = file("k.pem", "x\n");
  setenv("ROOMCAST_TLS_KEY", pem.c_str(), 1);
  EXPECT_EQ(config({"--tls-cert", pem.c_str()}).server.tls_key_file, pem);
  unsetenv("ROOMCAST_TLS_KEY");
  setenv("ROOMCAST_JWT_SECRET", "s", 1);
  expect_refused(refusal({"--jwt-public-key", pem.c_str()}), "excludes");
}

// --print-config writes what the sources add up to, and reading it back gives the same.
TEST_F(ParseConfigTest, PrintedSettingsLoadBackToTheSameConfig) {
  setenv("ROOMCAST_HISTORY_SIZE", "12", 1);
  const std::vector<const char*> flags{"--port",
                                       "4300",
                                       "--jwt-secret",
                                       "quote \" and back\\slash",
                                       "--allowed-origins",
                                       "https://a.example,https://b.example",
                                       "--trusted-proxies",
                                       "127.0.0.1,10.0.0.0/8",
                                       "--ping-interval",
                                       "250ms",
                                       "--require-auth",
                                       "--print-config"};
  const Exit printed = refusal(flags);
  ASSERT_EQ(printed.channel, Exit::Channel::kStdout) << printed.text;
  EXPECT_EQ(printed.status, 0);
  EXPECT_NE(printed.text.find("\nport = 4300\n"), std::string::npos) << printed.text;
  EXPECT_NE(printed.text.find("\nhistory-size = 12\n"), std::string::npos) << printed.text;
  EXPECT_NE(printed.text.find("\n# redis = (not set)\n"), std::string::npos) << printed.text;
  // A value the file reader would cut is not written as one.
  EXPECT_NE(refusal({"--node-id", "a#b", "--print-config"})
                .text.find("\n# node-id = (set, but not writable here"),
            std::string::npos);
  unsetenv("ROOMCAST_HISTORY_SIZE");

  const std::string toml = file("printed.toml", printed.text);
  const Config loaded = config({"--config", toml.c_str()});
  EXPECT_EQ(loaded.server.port, 4300);
  EXPECT_EQ(loaded.hub.history_size, 12u);
  EXPECT_EQ(loaded.jwt.secret, "quote \" and back\\slash");
  EXPECT_EQ(loaded.server.allowed_origins,
            (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_TRUE(loaded.server.trusted_proxies.contains(boost::asio::ip::make_address("10.2.3.4")));
  EXPECT_EQ(loaded.server.ping_interval, milliseconds(250));
  EXPECT_TRUE(loaded.server.require_auth);
  // And printing what was loaded gives the same file again.
  EXPECT_EQ(refusal({"--config", toml.c_str(), "--print-config"}).text, printed.text);
}

TEST_F(ParseConfigTest, VersionAndHelpNameTheSources) {
  const Exit version = refusal({"--version"});
  EXPECT_EQ(version.channel, Exit::Channel::kStdout);
  EXPECT_EQ(version.status, 0);
  const auto build = base::build_info();
  EXPECT_EQ(version.text, "roomcast " + std::string(build.version) + " (commit " +
                              std::string(build.commit) + ")\n");
  // --version is answered even when the file named is broken.
  const std::string broken = file("broken.toml", "nonsense = 1\n");
  EXPECT_EQ(refusal({"--config", broken.c_str(), "--version"}).text, version.text);

  const Exit help = refusal({"--help"});
  for (const char* text : {"--config FILE", "--print-config", "--version", "ROOMCAST_",
                           "Flags win over the environment, the\\nenvironment over the file"}) {
    (void)text;
  }
  EXPECT_NE(help.text.find("--config FILE"), std::string::npos) << help.text;
  EXPECT_NE(help.text.find("--print-config"), std::string::npos);
  EXPECT_NE(help.text.find("ROOMCAST_MAX_MESSAGE_SIZE"), std::string::npos);
  EXPECT_NE(help.text.find("Flags win over the environment"), std::string::npos);
}

TEST_F(ParseConfigTest, AppEventsThatCannotBeReadAreRefusedWithTheMistake) {
  const Exit protocol_type = refusal({"--app-events", "chat_message:durable"});
  EXPECT_EQ(protocol_type.status, 2);
  EXPECT_NE(protocol_type.text.find("--app-events: 'chat_message' is a message type of the chat"),
            std::string::npos)
      << protocol_type.text;
  const Exit bad_option = refusal({"--app-events", "doc:forever"});
  EXPECT_NE(bad_option.text.find("unknown option 'forever'"), std::string::npos) << bad_option.text;
  const Exit contradiction = refusal({"--app-events", "doc:durable:ephemeral"});
  EXPECT_NE(contradiction.text.find("contradicts"), std::string::npos) << contradiction.text;
  const Exit durable_conflation = refusal({"--app-events", "doc:durable:conflate"});
  EXPECT_NE(durable_conflation.text.find("conflate is for ephemeral ones"), std::string::npos)
      << durable_conflation.text;
  const Exit bad_name = refusal({"--app-events", "a b"});
  EXPECT_NE(bad_name.text.find("must be 1 to 64"), std::string::npos) << bad_name.text;
}

TEST_F(ParseConfigTest, ARateThatCannotBeReadIsRefusedNamingItsType) {
  for (const char* spec :
       {"ok,doc:rate=60", "ok,doc:rate=", "ok,doc:rate=0/10s", "ok,doc:rate=-1/10s",
        "ok,doc:rate=x/10s", "ok,doc:rate=5/0s", "ok,doc:rate=5/", "ok,doc:rate=5/1y",
        "ok,doc:rate=1000001/1s", "ok,doc:rate=5 /1s", "ok,doc:durable:rate=60/10s/2"}) {
    const Exit bad = refusal({"--app-events", spec});
    EXPECT_EQ(bad.status, 2) << spec;
    EXPECT_NE(bad.text.find("--app-events: event type 'doc': rate '"), std::string::npos)
        << spec << ": " << bad.text;
    EXPECT_NE(bad.text.find("must be N/WINDOW"), std::string::npos) << spec << ": " << bad.text;
  }
  const Exit twice = refusal({"--app-events", "doc:rate=5/1s:durable:rate=6/1s"});
  EXPECT_NE(twice.text.find("event type 'doc': option 'rate' is given twice"), std::string::npos)
      << twice.text;
  // The environment and the config file read the same string, and refuse the same mistakes.
  setenv("ROOMCAST_APP_EVENTS", "doc:rate=fast", 1);
  const Exit env = refusal({});
  unsetenv("ROOMCAST_APP_EVENTS");
  EXPECT_NE(env.text.find("event type 'doc': rate 'fast' must be N/WINDOW"), std::string::npos)
      << env.text;
  const std::string path = file("rates.toml", "app-events = \"doc:durable:rate=9/0ms\"\n");
  const Exit from_file = refusal({"--config", path.c_str()});
  EXPECT_NE(from_file.text.find("event type 'doc': rate '9/0ms' must be N/WINDOW"),
            std::string::npos)
      << from_file.text;
  EXPECT_EQ(
      config({"--config", file("ok.toml", "app-events = \"doc:durable:rate=9/3s\"\n").c_str()})
          .hub.app_events.find("doc")
          ->rate->max_events,
      9u);
}

}  // namespace
}  // namespace roomcast::config
