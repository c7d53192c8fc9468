// SHA-1 (FIPS 180-4), for the one place RFC 6455 needs it: Sec-WebSocket-Accept.
//
// Why our own and not OpenSSL's: the handshake hashes 60 bytes, and OpenSSL 3's EVP
// interface answers the first call by initializing its provider machinery, which touches
// about 2 MB of libcrypto that then stays resident (bench/OPTIMIZATIONS.md). SHA-1 is
// broken for collision resistance, but the handshake uses it only to prove the server read
// the key, never for security.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace roomcast::ws {

using Sha1Digest = std::array<std::uint8_t, 20>;

// The digest of `bytes`. Pure; any thread.
Sha1Digest sha1(std::string_view bytes);

}  // namespace roomcast::ws
