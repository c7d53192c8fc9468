#include "auth/jwt_issuer.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace roomcast::auth {
namespace {

// The algorithm a PEM private key signs with: RS256 for RSA, ES256/384/512 by the EC curve.
jwt_alg_t algorithm_of(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr,
      &EVP_PKEY_free);
  if (!key) throw std::invalid_argument("the signing key is not a PEM private key");
  switch (EVP_PKEY_base_id(key.get())) {
    case EVP_PKEY_RSA:
      return JWT_ALG_RS256;
    case EVP_PKEY_EC:
      switch (EVP_PKEY_get_bits(key.get())) {
        case 256:
          return JWT_ALG_ES256;
        case 384:
          return JWT_ALG_ES384;
        case 521:
          return JWT_ALG_ES512;
        default:
          throw std::invalid_argument("the EC signing key is on a curve JWT has no algorithm for");
      }
    default:
      throw std::invalid_argument("the signing key must be an RSA or EC key");
  }
}

}  // namespace

std::string issue_token(const TokenRequest& request, const SigningKey& key,
                        const base::Clock& clock) {
  if (key.secret.empty() == key.private_key_pem.empty()) {
    throw std::invalid_argument("give exactly one of a JWT secret and a private key");
  }
  const jwt_alg_t alg = key.secret.empty() ? algorithm_of(key.private_key_pem) : JWT_ALG_HS256;
  const std::string& material = key.secret.empty() ? key.private_key_pem : key.secret;

  const std::int64_t now_s = clock.unix_ms() / 1000;
  boost::json::object claims{{"sub", request.subject},
                             {"name", request.name},
                             {"iat", now_s},
                             {"exp", now_s + request.ttl.count()}};
  if (request.rooms) {
    boost::json::array rooms;
    for (const auto& room : *request.rooms) rooms.emplace_back(room);
    claims["rooms"] = std::move(rooms);
  }

  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::runtime_error("libjwt: cannot make a token");
  const std::unique_ptr<jwt_t, decltype(&jwt_free)> jwt(raw, &jwt_free);
  if (jwt_add_grants_json(jwt.get(), boost::json::serialize(claims).c_str()) != 0 ||
      jwt_set_alg(jwt.get(), alg, reinterpret_cast<const unsigned char*>(material.data()),
                  static_cast<int>(material.size())) != 0) {
    throw std::runtime_error("libjwt: cannot set the token's claims or key");
  }
  const std::unique_ptr<char, decltype(&std::free)> token(jwt_encode_str(jwt.get()), &std::free);
  if (!token) throw std::runtime_error("libjwt: cannot sign the token");
  return token.get();
}

}  // namespace roomcast::auth
