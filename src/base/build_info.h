// BuildInfo: the identity of this binary, for --version, the start-up log line, /metrics
// (roomcast_build_info) and /api/stats. Both strings are static and safe to put in JSON and in
// Prometheus labels as they are (digits, letters, '.', '-').
#pragma once

#include <string_view>

namespace roomcast::base {

struct BuildInfo {
  // The project's version: CMakeLists.txt's project(VERSION), e.g. "0.1.0".
  std::string_view version;
  // The git commit built (12 hex digits, "-dirty" with uncommitted changes), "unknown" when
  // built outside a git checkout.
  std::string_view commit;
};

// Written at build time (cmake/BuildInfo.cmake).
BuildInfo build_info();

}  // namespace roomcast::base
