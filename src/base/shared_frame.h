// SharedFrame: immutable, reference-counted bytes that many connections send at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace roomcast::base {

// A message encoded once (typically a complete WebSocket frame, header included) and
// shared by every recipient. Server frames are unmasked, so the very same bytes are valid
// on every connection: a broadcast to N members costs one encoding and N pointer copies.
// The bytes never change after construction, so any thread may read them; the reference
// count is atomic, so any thread may copy or drop a SharedFrame.
using SharedFrame = std::shared_ptr<const std::string>;

inline SharedFrame make_shared_frame(std::string bytes) {
  return std::make_shared<const std::string>(std::move(bytes));
}

}  // namespace roomcast::base
