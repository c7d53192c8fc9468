// Credentials: how a request names its user — the token it carries and what the server's
// authenticator makes of it. The WebSocket handshake (net/) and the HTTP history API both
// judge requests here, so they accept the same tokens in the same places and refuse the same
// requests. Pure functions of the request; no socket.
#pragma once

#include <optional>
#include <string>

#include "chat/authenticator.h"
#include "http/service.h"

namespace roomcast::http {

// The token a request carries: the `token` query parameter (the chapter's way, since a
// browser's WebSocket cannot set headers) or an `Authorization: Bearer` header; the query
// parameter wins if both are there. Empty if none (or if the parameter is badly escaped).
std::string request_token(const Request& request);

struct Credentials {
  enum class Verdict {
    kAnonymous,  // no token and none required; or no key configured, so tokens are ignored
    kVerified,  // a valid token: `identity` names the user
    kMissing,  // no token, and the server requires one
    kInvalid,  // a token the authenticator refused; `failure` says why (for the log only)
  };
  Verdict verdict = Verdict::kAnonymous;
  std::optional<chat::Identity> identity;  // set for kVerified only
  std::string failure;  // set for kInvalid only; never holds the token
};

// Judges `request`'s token. `authenticator` may be nullptr (no key configured: every user is
// anonymous, whatever token they send); `require_auth` refuses requests without a token.
// A token that is sent must be valid even when none is required.
Credentials check_credentials(const Request& request, const chat::Authenticator* authenticator,
                              bool require_auth);

}  // namespace roomcast::http
