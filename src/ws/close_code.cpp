#include "ws/close_code.h"

namespace roomcast::ws {

bool is_valid_received_close_code(std::uint16_t code) {
  // 1004 is reserved, 1005 and 1006 only exist as local pseudo-codes, and 1015 means
  // "TLS handshake failed", which no endpoint can put in a close frame. 1012-1014 were
  // registered with IANA after the RFC (service restart, try again later, bad gateway).
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  // 3000-3999: registered libraries and frameworks; 4000-4999: private use.
  return code >= 3000 && code <= 4999;
}

}  // namespace roomcast::ws
