// JwtAuthenticator: verifies JSON Web Tokens (RFC 7519) with libjwt and turns their claims
// into a chat::Identity.
//
// The server is configured with one key, and the key decides the algorithm family: a
// shared secret accepts HS256/384/512 only, an RSA public key RS256/384/512 only, an EC
// public key ES256/384/512 only. The algorithm a token names is never trusted on its own:
// that is what stops `alg: none` and algorithm confusion (an HS256 token "signed" with the
// RSA public key as its HMAC secret).
//
// Claims: `sub` (the userId) and `name` (the username) are required and must meet
// chat::check_identity; `exp` is required (a token that never expires is refused), and
// Identity::expires_at_unix_s is `exp` plus the leeway: the last moment this verifier would
// still accept the token, so a connection is closed exactly when its token would be refused
// at the upgrade; `nbf` is honoured if present; `rooms`, if present, is an array of room names or
// prefixes
// ("support:*").
//
// Immutable after construction: verify() is safe from any number of threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/clock.h"
#include "chat/authenticator.h"
#include "chat/protocol.h"

namespace roomcast::auth {

struct JwtOptions {
  // Exactly one of the two: an HMAC secret, or a PEM public key (RSA or EC).
  std::string secret;
  std::string public_key_pem;
  // Tolerated difference between the issuer's clock and ours for `exp` and `nbf`.
  std::chrono::seconds leeway{30};
  // The username rules a `name` claim must meet (the same as join_room's).
  chat::ProtocolLimits limits;
};

class JwtAuthenticator final : public chat::Authenticator {
 public:
  // Throws std::invalid_argument when not exactly one key is given, or the public key is
  // not a PEM RSA or EC public key. `clock` must outlive the authenticator.
  JwtAuthenticator(JwtOptions options, const base::Clock& clock);

  JwtAuthenticator(const JwtAuthenticator&) = delete;
  JwtAuthenticator& operator=(const JwtAuthenticator&) = delete;

  chat::AuthResult verify(std::string_view token) const override;

  // "HS256/384/512", "RS256/384/512" or "ES256/384/512": what this instance accepts.
  std::string_view algorithm_family() const;

 private:
  enum class Family : std::uint8_t { kHmac, kRsa, kEc };

  const JwtOptions options_;
  const base::Clock& clock_;
  Family family_ = Family::kHmac;
};

}  // namespace roomcast::auth
