// Config: what the command line decides, held as the options structs of the parts it
// configures. The structs' member initializers are the defaults, and --help shows them from
// there: a default is written once, in the struct of the part it belongs to (or below, where
// the server's default differs from the part's own).
//
// parse_config turns argv into a Config or an Exit (what to print, where, and the exit
// status), so the caller decides how the process ends; nothing here exits or throws. It
// reads the environment (PORT, ROOMCAST_DATA_DIR, REDIS_URL, JWT_SECRET), checks that named
// files exist, looks for the browser client next to the binary and asks for the host name in
// cluster mode; it opens nothing.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <variant>

#include "auth/jwt_authenticator.h"
#include "chat/hub.h"
#include "cluster/redis_cluster_options.h"
#include "http/service.h"
#include "net/options.h"
#include "store/sqlite_store_options.h"

namespace roomcast::config {

using std::chrono::milliseconds;

// Where a single node keeps history (--history-store). Cluster mode keeps it in Redis.
enum class HistoryStore { kSqlite, kMemory };

struct Config {
  net::ServerOptions server;
  // A month of history by default: the Hub's own default (no age limit) suits its tests, a
  // server that runs for months must forget eventually. (limits is named only because GCC
  // warns about a member without an initializer left out of a designated list.)
  chat::HubOptions hub{.limits = {}, .history_ttl = std::chrono::days(30)};
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

  // spdlog's level names: trace, debug, info, warn, error, critical or off.
  std::string log_level = "info";
};

// What to do instead of serving.
struct Exit {
  enum class Channel {
    kStdout,  // --help: the text as is
    kStderr,  // a flag refused while parsing: the text as is
    kCriticalLog,  // a combination refused after parsing: one critical line of the log
  };
  Channel channel = Channel::kStderr;
  int status = 0;
  std::string text{};
  // kCriticalLog: the --log-level the line is logged at (the flags themselves parsed).
  std::string log_level{};
};

using Parsed = std::variant<Config, Exit>;

// The Config that argv asks for, or why not. Flags, --help texts, checks and messages are
// the server's interface (README.md lists them; tests read the messages).
Parsed parse_config(int argc, const char* const* argv);

// "250ms", "15s", "2m", "12h", "7d" or a bare number of seconds (fractions allowed) into
// `out`. Returns the reason it is not a duration, or an empty string.
std::string parse_duration(const std::string& text, milliseconds& out);

// How --help shows a duration: whole days as "7d", whole seconds as "15s", else "250ms".
std::string format_duration(milliseconds duration);

}  // namespace roomcast::config
