// Specification of the opening handshake (RFC 6455 section 4.2).
#include "ws/handshake.h"

#include <gtest/gtest.h>

namespace roomcast::ws {
namespace {

// The sample request of RFC 6455 section 1.3.
UpgradeRequest valid_request() {
  UpgradeRequest request;
  request.method = "GET";
  request.http_version = 11;
  request.host = "server.example.com";
  request.upgrade = "websocket";
  request.connection = "Upgrade";
  request.key = "dGhlIHNhbXBsZSBub25jZQ==";
  request.version = "13";
  return request;
}

HandshakeVerdict verdict_of(const UpgradeRequest& request) {
  return check_upgrade(request).verdict;
}

// --- Sec-WebSocket-Accept ---

TEST(AcceptKey, MatchesTheRfcExample) {
  // RFC 6455 section 1.3; also what `openssl dgst -sha1 -binary | base64` gives.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(AcceptKey, IgnoresWhitespaceAroundTheKey) {
  EXPECT_EQ(accept_key("  dGhlIHNhbXBsZSBub25jZQ==\t"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(AcceptKey, IsBase64OfA20ByteDigest) {
  const std::string accept = accept_key("x3JJHMbDL1EzLkh9GBhXDw==");
  EXPECT_EQ(accept.size(), 28u);
  EXPECT_EQ(accept.back(), '=');
  // Cross-checked with `openssl dgst -sha1 -binary | base64`.
  EXPECT_EQ(accept, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

// --- accepted requests ---

TEST(CheckUpgrade, AcceptsTheRfcSampleRequest) {
  const HandshakeCheck check = check_upgrade(valid_request());
  EXPECT_EQ(check.verdict, HandshakeVerdict::kAccept);
}

TEST(CheckUpgrade, AcceptsHeaderTokensInAnyCaseAndWithinLists) {
  UpgradeRequest request = valid_request();
  request.upgrade = "WebSocket";
  request.connection = "keep-alive, UPGRADE";
  EXPECT_EQ(verdict_of(request), HandshakeVerdict::kAccept);
}

TEST(CheckUpgrade, RefusesARequestWithoutHost) {
  UpgradeRequest request = valid_request();
  request.host = "";
  EXPECT_EQ(verdict_of(request), HandshakeVerdict::kBadRequest);
}

TEST(CheckUpgrade, RefusesAHeaderItReadsOnceGivenTwice) {
  for (const char* name : {"Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin"}) {
    UpgradeRequest request = valid_request();
    request.repeated = name;
    const auto check = check_upgrade(request);
    EXPECT_EQ(check.verdict, HandshakeVerdict::kBadRequest) << name;
    EXPECT_NE(check.reason.find("more than one"), std::string_view::npos) << name;
  }
}

TEST(CheckUpgrade, AcceptsLaterHttpVersions) {
  UpgradeRequest request = valid_request();
  request.http_version = 20;
  EXPECT_EQ(verdict_of(request), HandshakeVerdict::kAccept);
}

// --- rejected requests, one rule at a time ---

TEST(CheckUpgrade, RejectsMethodsOtherThanGet) {
  UpgradeRequest request = valid_request();
  for (std::string_view method : {"POST", "get", "HEAD", ""}) {
    request.method = method;
    const HandshakeCheck check = check_upgrade(request);
    EXPECT_EQ(check.verdict, HandshakeVerdict::kBadRequest) << method;
    EXPECT_FALSE(check.reason.empty());
  }
}

TEST(CheckUpgrade, RejectsHttp10) {
  UpgradeRequest request = valid_request();
  request.http_version = 10;
  EXPECT_EQ(verdict_of(request), HandshakeVerdict::kBadRequest);
}

TEST(CheckUpgrade, RejectsAMissingOrForeignUpgradeHeader) {
  UpgradeRequest request = valid_request();
  for (std::string_view upgrade : {"", "h2c", "websockets", "web socket"}) {
    request.upgrade = upgrade;
    EXPECT_EQ(verdict_of(request), HandshakeVerdict::kBadRequest) << upgrade;
  }
}

TEST(CheckUpgrade, RejectsAConnectionHeaderWithoutTheUpgradeToken) {
  UpgradeRequest request = valid_request();
  for (std::string_view connection : {"", "keep-alive", "upgrader", "keep-alive upgrade"}) {
    request.connection = connection;
    EXPECT_EQ(verdict_of(request), HandshakeVerdict::kBadRequest) << connection;
  }
}

TEST(CheckUpgrade, RejectsAMissingKey) {
  UpgradeRequest request = valid_request();
  request.key = "";
  EXPECT_EQ(verdict_of(request), HandshakeVerdict::kBadRequest);
}

TEST(CheckUpgrade, RejectsAKeyThatIsNotBase64OfSixteenBytes) {
  UpgradeRequest request = valid_request();
  for (std::string_view key : {
           "dGhlIHNhbXBsZSBub25jZQ",  // padding missing
           "dGhlIHNhbXBsZSBub25jZQ=",  // padding short
           "dGhlIHNhbXBsZSBub25jZSE=",  // 17 bytes
           "dGhlIHNhbXBsZSBub25j",  // 15 bytes
           "dGhlIHNhbXBsZSBub25jZQ==AA==",  // too long
           "dGhlIHNhbXBsZSBub25jZ===",  // padding in the wrong place
           "dGhlIHNhbXBsZSBub25jZ!==",  // not a base64 digit
           "dGhlIHNhbXBsZSBub25jZR==",  // stray bits in the last digit
       }) {
    request.key = key;
    EXPECT_EQ(verdict_of(request), HandshakeVerdict::kBadRequest) << key;
  }
}

TEST(CheckUpgrade, RejectsAMissingVersionAsBadRequest) {
  UpgradeRequest request = valid_request();
  request.version = "";
  EXPECT_EQ(verdict_of(request), HandshakeVerdict::kBadRequest);
}

TEST(CheckUpgrade, AnswersAnyVersionOtherThan13WithUnsupportedVersion) {
  UpgradeRequest request = valid_request();
  for (std::string_view version : {"8", "12", "14", "13, 8", "thirteen"}) {
    request.version = version;
    const HandshakeCheck check = check_upgrade(request);
    EXPECT_EQ(check.verdict, HandshakeVerdict::kUnsupportedVersion) << version;
    EXPECT_FALSE(check.reason.empty());
  }
}

// --- helpers ---

TEST(IsUpgradeRequest, IsTrueWhenUpgradeNamesWebsocketInAnyCase) {
  UpgradeRequest request;
  request.upgrade = "WEBSOCKET";
  EXPECT_TRUE(is_upgrade_request(request));
  request.upgrade = "h2c, websocket";
  EXPECT_TRUE(is_upgrade_request(request));
  request.upgrade = "";
  EXPECT_FALSE(is_upgrade_request(request));
  request.upgrade = "h2c";
  EXPECT_FALSE(is_upgrade_request(request));
}

TEST(HeaderHasToken, MatchesWholeTokensCaseInsensitivelyIgnoringSpaces) {
  EXPECT_TRUE(header_has_token("Upgrade", "upgrade"));
  EXPECT_TRUE(header_has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(header_has_token("keep-alive,upgrade ,close", "UPGRADE"));
  EXPECT_TRUE(header_has_token(" \tupgrade\t ", "upgrade"));
}

TEST(HeaderHasToken, DoesNotMatchPartsOfTokensOrEmptyInput) {
  EXPECT_FALSE(header_has_token("upgraded", "upgrade"));
  EXPECT_FALSE(header_has_token("no-upgrade", "upgrade"));
  EXPECT_FALSE(header_has_token("", "upgrade"));
  EXPECT_FALSE(header_has_token(",,", "upgrade"));
  EXPECT_FALSE(header_has_token("a, , b", ""));
}

}  // namespace
}  // namespace roomcast::ws
