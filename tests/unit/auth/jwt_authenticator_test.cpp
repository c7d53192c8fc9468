// JwtAuthenticator: every token is made here, with libjwt and OpenSSL keys generated per
// run, so the tests show exactly which tokens pass and which do not.
#include "auth/jwt_authenticator.h"

#include <gtest/gtest.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "auth/jwt_issuer.h"

namespace roomcast::auth {
namespace {

namespace json = boost::json;
using std::chrono::seconds;

constexpr std::string_view kSecret = "a-test-secret-of-thirty-two-bytes";

struct KeyPair {
  std::string private_pem;
  std::string public_pem;
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// A fresh key pair: "RSA" (2048 bits) or "EC" (P-256).
KeyPair make_key(const char* type) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), &EVP_PKEY_CTX_free);
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0) throw std::runtime_error("keygen init");
  if (std::string_view(type) == "EC" && EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") <= 0) {
    throw std::runtime_error("EC group");
  }
  if (std::string_view(type) == "RSA" && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 2048) <= 0) {
    throw std::runtime_error("RSA bits");
  }
  if (EVP_PKEY_keygen(ctx.get(), &raw) <= 0) throw std::runtime_error("keygen");
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(raw, &EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> priv(BIO_new(BIO_s_mem()), &BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> pub(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  PEM_write_bio_PUBKEY(pub.get(), key.get());
  return {bio_text(priv.get()), bio_text(pub.get())};
}

// Signs `claims` (a JSON object) with `alg` and `key` through libjwt.
std::string sign(const json::object& claims, jwt_alg_t alg, std::string_view key) {
  jwt_t* raw = nullptr;
  jwt_new(&raw);
  std::unique_ptr<jwt_t, decltype(&jwt_free)> jwt(raw, &jwt_free);
  jwt_add_grants_json(jwt.get(), json::serialize(claims).c_str());
  jwt_set_alg(jwt.get(), alg, reinterpret_cast<const unsigned char*>(key.data()),
              static_cast<int>(key.size()));
  std::unique_ptr<char, decltype(&std::free)> token(jwt_encode_str(jwt.get()), &std::free);
  if (!token) throw std::runtime_error("jwt_encode_str failed");
  return token.get();
}

std::string base64url(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : in) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += kAlphabet[(bits >> count) & 0x3F];
    }
  }
  if (count > 0) out += kAlphabet[(bits << (6 - count)) & 0x3F];
  return out;
}

JwtOptions with_secret(std::string_view secret) {
  JwtOptions options;
  options.secret = secret;
  return options;
}

JwtOptions with_public_key(std::string pem) {
  JwtOptions options;
  options.public_key_pem = std::move(pem);
  return options;
}

class JwtAuthenticatorTest : public ::testing::Test {
 protected:
  std::int64_t now_s() const { return clock.unix_ms() / 1000; }

  // Valid claims: an hour left.
  json::object claims() const {
    return {{"sub", "user-42"}, {"name", "alice"}, {"exp", now_s() + 3600}};
  }

  JwtAuthenticator hmac() const { return JwtAuthenticator(with_secret(kSecret), clock); }

  base::ManualClock clock;
};

const chat::Identity& identity_of(const chat::AuthResult& result) {
  if (const auto* failure = std::get_if<chat::AuthFailure>(&result)) {
    throw std::runtime_error("refused: " + failure->reason);
  }
  return std::get<chat::Identity>(result);
}

std::string failure_of(const chat::AuthResult& result) {
  const auto* failure = std::get_if<chat::AuthFailure>(&result);
  return failure != nullptr ? failure->reason : "(accepted)";
}

TEST_F(JwtAuthenticatorTest, AValidHs256TokenGivesItsIdentity) {
  json::object c = claims();
  c["rooms"] = json::array{"general", "support:*"};
  const auto result = hmac().verify(sign(c, JWT_ALG_HS256, kSecret));
  const chat::Identity& identity = identity_of(result);
  EXPECT_EQ(identity.user_id, "user-42");
  EXPECT_EQ(identity.username, "alice");
  // Accepted until exp plus the 30 s leeway: the connection is closed then.
  EXPECT_EQ(identity.expires_at_unix_s, now_s() + 3600 + 30);
  ASSERT_TRUE(identity.rooms.has_value());
  EXPECT_EQ(*identity.rooms, (std::vector<std::string>{"general", "support:*"}));
}

TEST_F(JwtAuthenticatorTest, WithoutARoomsClaimEveryRoomIsAllowed) {
  const auto result = hmac().verify(sign(claims(), JWT_ALG_HS256, kSecret));
  EXPECT_FALSE(identity_of(result).rooms.has_value());
}

TEST_F(JwtAuthenticatorTest, ExpiredTokensAreRefusedAfterTheLeeway) {
  json::object c = claims();
  c["exp"] = now_s() - 10;  // within the 30 s leeway: still accepted
  EXPECT_NO_THROW(identity_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))));
  c["exp"] = now_s() - 3600;
  EXPECT_EQ(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))), "token expired");
}

TEST_F(JwtAuthenticatorTest, ATokenTurnsExpiredAsTheClockPassesExp) {
  const std::string token = sign(claims(), JWT_ALG_HS256, kSecret);
  EXPECT_NO_THROW(identity_of(hmac().verify(token)));
  clock.advance(std::chrono::hours(2));
  EXPECT_EQ(failure_of(hmac().verify(token)), "token expired");
}

TEST_F(JwtAuthenticatorTest, TheIdentityExpiresWhenTheTokenWouldBeRefused) {
  for (const std::int64_t leeway_s : {0, 30}) {
    JwtOptions options = with_secret(kSecret);
    options.leeway = std::chrono::seconds(leeway_s);
    const JwtAuthenticator verifier(options, clock);
    const std::string token = sign(claims(), JWT_ALG_HS256, kSecret);
    const std::int64_t expires_at_s = identity_of(verifier.verify(token)).expires_at_unix_s;
    base::ManualClock later;  // starts where `clock` still is
    later.advance(std::chrono::seconds(expires_at_s - now_s()) - std::chrono::milliseconds(1));
    EXPECT_NO_THROW(identity_of(JwtAuthenticator(options, later).verify(token))) << leeway_s;
    later.advance(std::chrono::milliseconds(1));
    EXPECT_EQ(failure_of(JwtAuthenticator(options, later).verify(token)), "token expired")
        << leeway_s;
  }
}

TEST_F(JwtAuthenticatorTest, NotBeforeIsHonoured) {
  json::object c = claims();
  c["nbf"] = now_s() + 600;
  EXPECT_EQ(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))),
            "token not valid yet (nbf)");
}

TEST_F(JwtAuthenticatorTest, BadSignaturesAreRefused) {
  const std::string other = sign(claims(), JWT_ALG_HS256, "another-secret-another-secret!!");
  EXPECT_EQ(failure_of(hmac().verify(other)), "malformed token or bad signature");

  // A payload swapped under a valid signature.
  std::string token = sign(claims(), JWT_ALG_HS256, kSecret);
  json::object evil = claims();
  evil["sub"] = "admin";
  const auto first_dot = token.find('.');
  const auto second_dot = token.find('.', first_dot + 1);
  token.replace(first_dot + 1, second_dot - first_dot - 1, base64url(json::serialize(evil)));
  EXPECT_EQ(failure_of(hmac().verify(token)), "malformed token or bad signature");
}

TEST_F(JwtAuthenticatorTest, AlgNoneIsRefused) {
  const std::string header = base64url(R"({"alg":"none","typ":"JWT"})");
  const std::string payload = base64url(json::serialize(claims()));
  EXPECT_NE(failure_of(hmac().verify(header + "." + payload + ".")), "(accepted)");
  EXPECT_NE(failure_of(hmac().verify(header + "." + payload)), "(accepted)");
  const KeyPair rsa = make_key("RSA");
  JwtAuthenticator with_key(with_public_key(rsa.public_pem), clock);
  EXPECT_NE(failure_of(with_key.verify(header + "." + payload + ".")), "(accepted)");
}

TEST_F(JwtAuthenticatorTest, Rs256AndEs256TokensAreVerifiedWithThePublicKey) {
  const KeyPair rsa = make_key("RSA");
  JwtAuthenticator rsa_auth(with_public_key(rsa.public_pem), clock);
  EXPECT_EQ(rsa_auth.algorithm_family(), "RS256/384/512");
  EXPECT_EQ(identity_of(rsa_auth.verify(sign(claims(), JWT_ALG_RS256, rsa.private_pem))).user_id,
            "user-42");

  const KeyPair ec = make_key("EC");
  JwtAuthenticator ec_auth(with_public_key(ec.public_pem), clock);
  EXPECT_EQ(ec_auth.algorithm_family(), "ES256/384/512");
  EXPECT_EQ(identity_of(ec_auth.verify(sign(claims(), JWT_ALG_ES256, ec.private_pem))).username,
            "alice");

  // A token signed by someone else's key of the right type.
  const KeyPair stranger = make_key("RSA");
  EXPECT_EQ(failure_of(rsa_auth.verify(sign(claims(), JWT_ALG_RS256, stranger.private_pem))),
            "malformed token or bad signature");
  // An EC token against the RSA key.
  EXPECT_NE(failure_of(rsa_auth.verify(sign(claims(), JWT_ALG_ES256, ec.private_pem))),
            "(accepted)");
}

TEST_F(JwtAuthenticatorTest, HmacWithThePublicKeyAsSecretIsRefused) {
  // The classic confusion: the attacker knows the public key and "signs" an HS256 token
  // with its PEM text as the HMAC secret.
  const KeyPair rsa = make_key("RSA");
  JwtAuthenticator rsa_auth(with_public_key(rsa.public_pem), clock);
  const std::string forged = sign(claims(), JWT_ALG_HS256, rsa.public_pem);
  EXPECT_EQ(failure_of(rsa_auth.verify(forged)),
            "algorithm HS256 is not the configured RS256/384/512");
}

TEST_F(JwtAuthenticatorTest, AnRs256TokenIsRefusedWhenASecretIsConfigured) {
  const KeyPair rsa = make_key("RSA");
  EXPECT_NE(failure_of(hmac().verify(sign(claims(), JWT_ALG_RS256, rsa.private_pem))),
            "(accepted)");
}

TEST_F(JwtAuthenticatorTest, MissingOrMalformedClaimsAreRefused) {
  for (const char* name : {"sub", "name", "exp"}) {
    json::object c = claims();
    c.erase(name);
    EXPECT_NE(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))), "(accepted)") << name;
  }
  json::object c = claims();
  c["sub"] = 42;
  EXPECT_EQ(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))),
            "missing or non-string claim 'sub'");
  c = claims();
  c["exp"] = "tomorrow";
  EXPECT_EQ(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))),
            "claim 'exp' is not a number");
  c = claims();
  c["rooms"] = "general";
  EXPECT_EQ(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))),
            "claim 'rooms' is not an array");
  c = claims();
  c["rooms"] = json::array{"general", 7};
  EXPECT_EQ(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))),
            "claim 'rooms' holds a non-string");
}

TEST_F(JwtAuthenticatorTest, ClaimsMustMeetTheChatsNameRules) {
  json::object c = claims();
  c["name"] = "<script>";
  EXPECT_NE(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))), "(accepted)");
  c = claims();
  c["name"] = "a-name-far-longer-than-twenty-characters";
  EXPECT_NE(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))), "(accepted)");
  c = claims();
  c["sub"] = std::string(65, 'x');
  EXPECT_NE(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))), "(accepted)");
  c = claims();
  c["sub"] = "has space";
  EXPECT_NE(failure_of(hmac().verify(sign(c, JWT_ALG_HS256, kSecret))), "(accepted)");
}

TEST_F(JwtAuthenticatorTest, GarbageIsRefused) {
  for (const char* token : {"", "x", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9..", "not a token"}) {
    EXPECT_NE(failure_of(hmac().verify(token)), "(accepted)") << token;
  }
}

TEST_F(JwtAuthenticatorTest, ConfigurationNeedsExactlyOneUsableKey) {
  EXPECT_THROW(JwtAuthenticator(JwtOptions{}, clock), std::invalid_argument);
  const KeyPair rsa = make_key("RSA");
  JwtOptions both = with_secret(kSecret);
  both.public_key_pem = rsa.public_pem;
  EXPECT_THROW(JwtAuthenticator(both, clock), std::invalid_argument);
  EXPECT_THROW(JwtAuthenticator(with_public_key("not a pem"), clock), std::invalid_argument);
  EXPECT_THROW(JwtAuthenticator(with_public_key(rsa.private_pem), clock), std::invalid_argument);
}

// issue_token (roomcast gentoken) makes what the authenticator accepts, for each key kind.
TEST_F(JwtAuthenticatorTest, IssuedTokensAreAcceptedByTheMatchingVerifier) {
  const TokenRequest request{.subject = "user-7",
                             .name = "bob",
                             .rooms = std::vector<std::string>{"general", "support:*"},
                             .ttl = seconds(600)};
  const auto hs = identity_of(hmac().verify(issue_token(
      request, SigningKey{.secret = std::string(kSecret), .private_key_pem = {}}, clock)));
  EXPECT_EQ(hs.user_id, "user-7");
  EXPECT_EQ(hs.username, "bob");
  EXPECT_EQ(hs.rooms, request.rooms);
  EXPECT_EQ(hs.expires_at_unix_s, now_s() + 600 + JwtOptions{}.leeway.count());

  for (const char* type : {"RSA", "EC"}) {
    const KeyPair pair = make_key(type);
    const JwtAuthenticator verifier(with_public_key(pair.public_pem), clock);
    const std::string token =
        issue_token(TokenRequest{.subject = "u", .name = "carol", .rooms = {}, .ttl = seconds(60)},
                    SigningKey{.secret = {}, .private_key_pem = pair.private_pem}, clock);
    const auto identity = identity_of(verifier.verify(token));
    EXPECT_EQ(identity.username, "carol") << type;
    EXPECT_FALSE(identity.rooms.has_value()) << type;
  }

  // Signed with another secret, or expired: refused as any other token would be.
  EXPECT_EQ(failure_of(hmac().verify(issue_token(
                request, SigningKey{.secret = "another", .private_key_pem = {}}, clock))),
            "malformed token or bad signature");
  const std::string short_lived =
      issue_token(TokenRequest{.subject = "u", .name = "dave", .rooms = {}, .ttl = seconds(1)},
                  SigningKey{.secret = std::string(kSecret), .private_key_pem = {}}, clock);
  clock.advance(seconds(1) + JwtOptions{}.leeway);
  EXPECT_EQ(failure_of(hmac().verify(short_lived)), "token expired");
}

TEST_F(JwtAuthenticatorTest, IssuingNeedsExactlyOneUsableKey) {
  const TokenRequest request{.subject = "u", .name = "erin", .rooms = {}, .ttl = seconds(60)};
  EXPECT_THROW(issue_token(request, SigningKey{}, clock), std::invalid_argument);
  EXPECT_THROW(issue_token(request, SigningKey{.secret = "s", .private_key_pem = "x"}, clock),
               std::invalid_argument);
  // A public key cannot sign.
  EXPECT_THROW(
      issue_token(request, SigningKey{.secret = {}, .private_key_pem = make_key("EC").public_pem},
                  clock),
      std::invalid_argument);
}

}  // namespace
}  // namespace roomcast::auth
