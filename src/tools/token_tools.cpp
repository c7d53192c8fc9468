#include "tools/token_tools.h"

#include <openssl/evp.h>

#include <boost/json.hpp>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "auth/jwt_authenticator.h"
#include "auth/jwt_issuer.h"

namespace roomcast::tools {
namespace {

std::string read_file(const std::filesystem::path& file, const char* what) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(std::string("cannot read ") + what + " " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "2026-12-06T10:00:00Z".
std::string utc(std::int64_t unix_s) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  char text[32] = "?";
  if (gmtime_r(&t, &tm) != nullptr) std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// The claims of a JWT as its payload says, NOT verified: only to explain a refusal. Empty
// when the token has no readable payload.
std::string unverified_claims(const std::string& token) {
  const auto first = token.find('.');
  const auto second = token.find('.', first == std::string::npos ? first : first + 1);
  if (first == std::string::npos || second == std::string::npos) return {};
  std::string base64 = token.substr(first + 1, second - first - 1);
  for (char& c : base64) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  const std::size_t padding = (4 - base64.size() % 4) % 4;
  if (padding == 3) return {};
  base64.append(padding, '=');
  std::string decoded(base64.size() / 4 * 3, '\0');
  const int size = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                                   reinterpret_cast<const unsigned char*>(base64.data()),
                                   static_cast<int>(base64.size()));
  if (size < 0) return {};
  decoded.resize(static_cast<std::size_t>(size) - padding);
  boost::system::error_code ec;
  const auto claims = boost::json::parse(decoded, ec);
  if (ec || !claims.is_object()) return {};
  std::string out = boost::json::serialize(claims);
  if (const auto* exp = claims.get_object().if_contains("exp"); exp && exp->is_int64()) {
    out += " (exp is " + utc(exp->get_int64()) + ")";
  }
  return out;
}

int generate(const config::Config& config, const config::TokenTool& tool, const base::Clock& clock,
             std::FILE* out, std::FILE* err) {
  auth::SigningKey key;
  if (!tool.private_key_file.empty()) {
    key.private_key_pem = read_file(tool.private_key_file, "--private-key");
  } else if (!config.jwt.secret.empty()) {
    key.secret = config.jwt.secret;
  } else {
    std::fputs(
        "gentoken: no key to sign with: give --jwt-secret (or ROOMCAST_JWT_SECRET, or "
        "jwt-secret in the --config file), or --private-key for a server verifying with "
        "--jwt-public-key\n",
        err);
    return 2;
  }
  const std::string token = auth::issue_token(
      auth::TokenRequest{
          .subject = tool.subject, .name = tool.name, .rooms = tool.rooms, .ttl = tool.ttl},
      key, clock);
  // Printed only if the server as configured would take it (a name it refuses, a private key
  // that does not match the configured public key): checked as checktoken checks.
  if (const auto verifier = make_authenticator(config, clock)) {
    const auto verdict = verifier->verify(token);
    if (const auto* failure = std::get_if<chat::AuthFailure>(&verdict)) {
      std::fprintf(err, "gentoken: the server as configured would refuse this token: %s\n",
                   failure->reason.c_str());
      return 1;
    }
  }
  std::fprintf(out, "%s\n", token.c_str());
  return 0;
}

int check(const config::Config& config, const config::TokenTool& tool, const base::Clock& clock,
          std::FILE* out, std::FILE* err) {
  const auto verifier = make_authenticator(config, clock);
  if (!verifier) {
    std::fputs(
        "checktoken: no key configured (--jwt-secret or --jwt-public-key): the server reads "
        "no token, everyone is anonymous\n",
        err);
    return 2;
  }
  const auto result = verifier->verify(tool.token);
  if (const auto* failure = std::get_if<chat::AuthFailure>(&result)) {
    std::fprintf(out, "refused: %s\n", failure->reason.c_str());
    const std::string claims = unverified_claims(tool.token);
    if (!claims.empty()) std::fprintf(out, "claims (not verified): %s\n", claims.c_str());
    std::fprintf(out, "now: %s; leeway: %llds\n", utc(clock.unix_ms() / 1000).c_str(),
                 static_cast<long long>(config.jwt.leeway.count()));
    return 1;
  }
  const auto& identity = std::get<chat::Identity>(result);
  std::string rooms = "every room";
  if (identity.rooms) {
    rooms.clear();
    for (const auto& room : *identity.rooms) rooms += (rooms.empty() ? "" : ",") + room;
  }
  std::fprintf(out, "accepted: sub %s, name %s, rooms %s, until %s (exp plus %llds leeway)\n",
               identity.user_id.c_str(), identity.username.c_str(), rooms.c_str(),
               utc(identity.expires_at_unix_s).c_str(),
               static_cast<long long>(config.jwt.leeway.count()));
  return 0;
}

}  // namespace

std::unique_ptr<chat::Authenticator> make_authenticator(const config::Config& config,
                                                        const base::Clock& clock) {
  if (config.jwt.secret.empty() && config.jwt_public_key_file.empty()) return nullptr;
  auth::JwtOptions jwt = config.jwt;
  if (!config.jwt_public_key_file.empty()) {
    jwt.public_key_pem = read_file(config.jwt_public_key_file, "--jwt-public-key");
  }
  try {
    return std::make_unique<auth::JwtAuthenticator>(std::move(jwt), clock);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what());
  }
}

int run_token_tool(const config::Config& config, const base::Clock& clock, std::FILE* out,
                   std::FILE* err) {
  const config::TokenTool& tool = *config.token_tool;
  try {
    return tool.kind == config::TokenTool::Kind::kGenerate ? generate(config, tool, clock, out, err)
                                                           : check(config, tool, clock, out, err);
  } catch (const std::exception& e) {
    std::fprintf(err, "%s: %s\n",
                 tool.kind == config::TokenTool::Kind::kGenerate ? "gentoken" : "checktoken",
                 e.what());
    return 1;
  }
}

}  // namespace roomcast::tools
