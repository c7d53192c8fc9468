// Config: what the command line decides, held as the options structs of the parts it
// configures. The structs' member initializers are the defaults, and --help shows them from
// there: a default is written once, in the struct of the part it belongs to (or below, where
// the server's default differs from the part's own).
//
// parse_config turns argv into a Config or an Exit (what to print, where, and the exit
// status), so the caller decides how the process ends; nothing here exits or throws. Every
// setting comes from one of three sources, and one rule orders them: a flag wins over the
// environment (ROOMCAST_<NAME>; PORT, REDIS_URL and JWT_SECRET too, as before), which wins
// over the --config file (TOML, read with CLI11's reader). It reads those, checks that named
// files exist, looks for the browser client next to the binary and asks for the host name in
// cluster mode; it opens nothing else.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/jwt_authenticator.h"
#include "base/duration.h"
#include "chat/hub.h"
#include "cluster/redis_cluster_options.h"
#include "hooks/publish_hook_options.h"
#include "hooks/webhook_options.h"
#include "http/service.h"
#include "logging/logging.h"
#include "net/options.h"
#include "store/sqlite_store_options.h"

namespace roomcast::config {

using std::chrono::milliseconds;

// Where a single node keeps history (--history-store). Cluster mode keeps it in Redis.
enum class HistoryStore { kSqlite, kMemory };

// `roomcast gentoken` / `roomcast checktoken`: a token tool instead of a server. It uses the
// token settings of the Config it comes in (--jwt-secret, --jwt-public-key, --jwt-leeway), from
// flags, the environment or the file as the server would.
struct TokenTool {
  enum class Kind { kGenerate, kCheck };
  Kind kind = Kind::kGenerate;
  // gentoken: the claims, and the PEM private key that signs RS/ES tokens (else the secret).
  std::string subject;
  std::string name;
  std::optional<std::vector<std::string>> rooms;
  std::chrono::seconds ttl{3600};
  std::filesystem::path private_key_file;
  // checktoken: the token to judge.
  std::string token;
};

struct Config {
  net::ServerOptions server;
  // A month of history by default: the Hub's own default (no age limit) suits its tests, a
  // server that runs for months must forget eventually. (limits is named only because GCC
  // warns about a member without an initializer left out of a designated list.)
  chat::HubOptions hub{
      .limits = {}, .rejoin_grace = std::chrono::seconds(10), .history_ttl = std::chrono::days(30)};
  // web_root: by default the web/ of the source tree the binary was built in, else ./web.
  http::ServiceOptions http;

  // Single node (redis.url empty).
  HistoryStore history_store = HistoryStore::kSqlite;
  std::filesystem::path data_dir = "data";
  // kSqlite: file is data_dir/roomcast.db, retention is hub's (filled in by parse_config).
  store::SqliteStoreOptions sqlite;

  // Cluster mode when redis.url is set: history lives in Redis, history_store and data_dir
  // are not used. node_name is --node-id, else the host name; retention is
  // hub's (filled in by parse_config).
  cluster::RedisClusterOptions redis;

  // Tokens: verified when jwt.secret or jwt_public_key_file is set, else everyone is
  // anonymous. public_key_pem is left empty: reading the key file is the caller's (it is
  // I/O that can fail, reported as such). limits are hub's.
  auth::JwtOptions jwt;
  std::filesystem::path jwt_public_key_file;

  // Webhooks to the backend (--webhook-url); node is filled in by main (the cluster's name).
  hooks::WebhookOptions webhooks;
  // The publish hook (--publish-hook); secret is --webhook-secret's, limits are hub's (filled
  // in by parse_config).
  hooks::PublishHookOptions publish_hook;

  // spdlog's level names: trace, debug, info, warn, error, critical or off.
  std::string log_level = "info";
  logging::Format log_format = logging::Format::kText;

  // The --config file read (ROOMCAST_CONFIG, else none), for the start-up log.
  std::filesystem::path config_file;

  // Set when the command line asks for a token tool rather than a server.
  std::optional<TokenTool> token_tool;
};

// What to do instead of serving.
struct Exit {
  enum class Channel {
    kStdout,  // --help, --version, --print-config: the text as is
    kStderr,  // a flag refused while parsing: the text as is
    kCriticalLog,  // a combination refused after parsing: one critical line of the log
  };
  Channel channel = Channel::kStderr;
  int status = 0;
  std::string text{};
  // kCriticalLog: the --log-level and --log-format the line is logged with (the flags
  // themselves parsed).
  std::string log_level{};
  logging::Format log_format = logging::Format::kText;
};

using Parsed = std::variant<Config, Exit>;

// The Config that argv asks for, or why not. Flags, --help texts, checks and messages are
// the server's interface (README.md lists them; tests read the messages).
Parsed parse_config(int argc, const char* const* argv);

// "roomcast 0.1.0 (commit 0123456789ab)\n": what --version prints.
std::string version_text();

// The environment variable of the option `option` ("max-message-size"):
// "ROOMCAST_MAX_MESSAGE_SIZE".
std::string environment_name(std::string_view option);

// Durations in flags: base/duration.h (--app-events' rate= reads them too).
using base::format_duration;
using base::parse_duration;

}  // namespace roomcast::config
