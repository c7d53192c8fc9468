// parse_config: the defaults are the options structs', flags land in their fields, and every
// refusal says which flag and why, on the channel and with the status the server has always
// used.
#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace roomcast::config {
namespace {

using std::chrono::seconds;

class ParseConfigTest : public ::testing::Test {
 protected:
  // The flags that also come from the environment must not come from the test's.
  void SetUp() override {
    for (const char* name : {"PORT", "ROOMCAST_DATA_DIR", "REDIS_URL", "JWT_SECRET"}) {
      unsetenv(name);
    }
  }

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

}  // namespace
}  // namespace roomcast::config
