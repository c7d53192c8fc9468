// SqliteStoreOptions: the file, retention and fault policy of a SqliteStore, with the defaults
// --help shows. Its own header so the configuration (src/config) names it without SQLite.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>

#include "chat/retention.h"

namespace roomcast::store {

struct SqliteStoreOptions {
  std::filesystem::path file;  // created with its directory if missing
  // Which messages of each room are kept (chat/retention.h). By count within each commit; by
  // age at once for every read, load and resend check (on the store's clock), while the rows
  // themselves are deleted in small steps between commits.
  chat::Retention retention;
  // true: fsync every group commit (an acked message survives power loss). false:
  // synchronous=NORMAL (survives a crash or kill -9 of the server, not of the machine).
  bool sync_every_commit = true;
  // Storage faults: once commits have kept failing this long, every message still waiting
  // and every new one is refused (Listener::on_refused, `unavailable`) instead of waiting
  // in silence, except one probe commit per retry that tells when the disk is back.
  std::chrono::milliseconds refuse_after{5000};
  // How often the storage thread checks that the path still names the file it has open.
  std::chrono::milliseconds identity_check_interval{1000};
};

}  // namespace roomcast::store
