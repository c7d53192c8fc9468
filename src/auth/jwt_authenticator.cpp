#include "auth/jwt_authenticator.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstdlib>
#include <stdexcept>

namespace roomcast::auth {
namespace {

namespace json = boost::json;

struct JwtFree {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
struct CFree {
  void operator()(char* p) const { std::free(p); }
};

chat::AuthFailure failure(std::string reason) {
  return {std::move(reason)};
}

bool in_family(jwt_alg_t alg, std::array<jwt_alg_t, 3> family) {
  return alg == family[0] || alg == family[1] || alg == family[2];
}

// Reads a NumericDate claim (seconds since the epoch; JSON allows a fraction).
std::optional<std::int64_t> numeric_date(const json::object& claims, std::string_view name,
                                         std::string& error) {
  const auto* value = claims.if_contains(name);
  if (value == nullptr) return std::nullopt;
  // Clamped into int64 range, so absurd dates compare without overflow.
  constexpr double kLimit = 9.0e18;
  if (value->is_int64()) return value->get_int64();
  if (value->is_uint64()) return static_cast<std::int64_t>(kLimit);
  if (value->is_double()) {
    return static_cast<std::int64_t>(std::clamp(value->get_double(), -kLimit, kLimit));
  }
  error = "claim '" + std::string(name) + "' is not a number";
  return std::nullopt;
}

const json::string* string_claim(const json::object& claims, std::string_view name) {
  const auto* value = claims.if_contains(name);
  return value != nullptr && value->is_string() ? &value->get_string() : nullptr;
}

}  // namespace

JwtAuthenticator::JwtAuthenticator(JwtOptions options, const base::Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  if (options_.secret.empty() == options_.public_key_pem.empty()) {
    throw std::invalid_argument("give exactly one of a JWT secret and a JWT public key");
  }
  if (options_.public_key_pem.empty()) return;
  // Parse the key once here, so a wrong file fails at start-up rather than on every token,
  // and learn its type: that fixes the only algorithms we accept.
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(options_.public_key_pem.data(),
                      static_cast<int>(options_.public_key_pem.size())),
      &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr, &EVP_PKEY_free);
  if (!key) throw std::invalid_argument("the JWT public key is not a PEM public key");
  switch (EVP_PKEY_base_id(key.get())) {
    case EVP_PKEY_RSA:
      family_ = Family::kRsa;
      break;
    case EVP_PKEY_EC:
      family_ = Family::kEc;
      break;
    default:
      throw std::invalid_argument("the JWT public key must be an RSA or EC key");
  }
}

std::string_view JwtAuthenticator::algorithm_family() const {
  switch (family_) {
    case Family::kHmac:
      return "HS256/384/512";
    case Family::kRsa:
      return "RS256/384/512";
    case Family::kEc:
      return "ES256/384/512";
  }
  return "";
}

chat::AuthResult JwtAuthenticator::verify(std::string_view token) const {
  if (token.empty()) return failure("empty token");
  const std::string& key = family_ == Family::kHmac ? options_.secret : options_.public_key_pem;
  // libjwt checks the signature with the algorithm the token names; the family check below
  // is what makes that safe.
  jwt_t* raw = nullptr;
  const std::string terminated(token);
  const int rc =
      jwt_decode(&raw, terminated.c_str(), reinterpret_cast<const unsigned char*>(key.data()),
                 static_cast<int>(key.size()));
  const std::unique_ptr<jwt_t, JwtFree> jwt(raw);
  if (rc != 0 || !jwt) return failure("malformed token or bad signature");

  const jwt_alg_t alg = jwt_get_alg(jwt.get());
  bool allowed = false;
  switch (family_) {
    case Family::kHmac:
      allowed = in_family(alg, {JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512});
      break;
    case Family::kRsa:
      allowed = in_family(alg, {JWT_ALG_RS256, JWT_ALG_RS384, JWT_ALG_RS512});
      break;
    case Family::kEc:
      allowed = in_family(alg, {JWT_ALG_ES256, JWT_ALG_ES384, JWT_ALG_ES512});
      break;
  }
  if (!allowed) {
    return failure("algorithm " + std::string(jwt_alg_str(alg) ? jwt_alg_str(alg) : "?") +
                   " is not the configured " + std::string(algorithm_family()));
  }

  const std::unique_ptr<char, CFree> claims_text(jwt_get_grants_json(jwt.get(), nullptr));
  if (!claims_text) return failure("no claims");
  boost::system::error_code ec;
  const json::value doc = json::parse(claims_text.get(), ec);
  if (ec || !doc.is_object()) return failure("claims are not a JSON object");
  const json::object& claims = doc.get_object();

  std::string error;
  const auto expires = numeric_date(claims, "exp", error);
  const auto not_before = numeric_date(claims, "nbf", error);
  if (!error.empty()) return failure(error);
  if (!expires) return failure("missing claim 'exp'");
  const std::int64_t now_s = clock_.unix_ms() / 1000;
  const std::int64_t leeway_s = options_.leeway.count();
  if (now_s - leeway_s >= *expires) return failure("token expired");
  if (not_before && now_s + leeway_s < *not_before) return failure("token not valid yet (nbf)");

  const json::string* sub = string_claim(claims, "sub");
  if (sub == nullptr) return failure("missing or non-string claim 'sub'");
  const json::string* name = string_claim(claims, "name");
  if (name == nullptr) return failure("missing or non-string claim 'name'");

  chat::Identity identity;
  identity.user_id.assign(sub->data(), sub->size());
  identity.username.assign(name->data(), name->size());
  // Accepted up to `exp` + leeway (above), so the connection lives as long.
  identity.expires_at_unix_s = *expires + leeway_s;
  if (const auto* rooms = claims.if_contains("rooms"); rooms != nullptr && !rooms->is_null()) {
    if (!rooms->is_array()) return failure("claim 'rooms' is not an array");
    identity.rooms.emplace();
    for (const auto& room : rooms->get_array()) {
      if (!room.is_string()) return failure("claim 'rooms' holds a non-string");
      identity.rooms->emplace_back(room.get_string().data(), room.get_string().size());
    }
  }
  if (auto broken = chat::check_identity(identity, options_.limits)) return failure(*broken);
  return identity;
}

}  // namespace roomcast::auth
