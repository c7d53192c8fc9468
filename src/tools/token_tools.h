// The token tools of the command line (`roomcast gentoken`, `roomcast checktoken`) and the
// token verifier the configuration asks for, which the server and checktoken share: whatever
// checktoken says of a token is what the server would do with it, now.
#pragma once

#include <cstdio>
#include <memory>

#include "base/clock.h"
#include "chat/authenticator.h"
#include "config/config.h"

namespace roomcast::tools {

// The verifier the configuration's token settings ask for: nullptr when no key is given
// (everyone is anonymous). Throws std::runtime_error for an unreadable key file or an
// unusable key. `clock` must outlive it.
std::unique_ptr<chat::Authenticator> make_authenticator(const config::Config& config,
                                                        const base::Clock& clock);

// Runs config.token_tool (which must be set), writing the token or the verdict to `out` and
// failures to `err`. Returns the exit status: 0 done (checktoken: accepted), 1 refused or
// failed, 2 no key to sign or verify with.
int run_token_tool(const config::Config& config, const base::Clock& clock, std::FILE* out,
                   std::FILE* err);

}  // namespace roomcast::tools
