// issue_token: signs a JSON Web Token that a JwtAuthenticator holding the matching key
// accepts; what `roomcast gentoken` prints. Operators and tests make tokens with it; the
// server itself only verifies (jwt_authenticator.h), and checktoken verifies through the same
// JwtAuthenticator, so there is one verification path.
//
// The claims are the ones the authenticator reads: `sub`, `name`, `iat`, `exp` and, when
// rooms are given, `rooms`.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"

namespace roomcast::auth {

struct TokenRequest {
  std::string subject;  // sub: the user's id
  std::string name;  // name: the username
  // rooms: names or prefixes ("support:*"); nullopt: the token does not restrict rooms.
  std::optional<std::vector<std::string>> rooms;
  std::chrono::seconds ttl{3600};  // exp = now + ttl
};

// The signing key: exactly one of an HMAC secret (signs HS256) and a PEM private key (an RSA
// key signs RS256; an EC key ES256, ES384 or ES512 by its curve's size).
struct SigningKey {
  std::string secret;
  std::string private_key_pem;
};

// The signed token (header.payload.signature). Throws std::invalid_argument when not exactly
// one key is given or the private key is not a PEM RSA or EC private key, and
// std::runtime_error if libjwt cannot sign.
std::string issue_token(const TokenRequest& request, const SigningKey& key,
                        const base::Clock& clock);

}  // namespace roomcast::auth
