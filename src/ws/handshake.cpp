#include "ws/handshake.h"

#include <openssl/evp.h>

#include <array>
#include <cstddef>

namespace roomcast::ws {

namespace {

// Section 1.3: the fixed GUID the server appends to the client's key.
constexpr std::string_view kHandshakeGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// base64 of a 16-byte nonce: 22 data characters and "==" (section 4.1).
constexpr std::size_t kEncodedKeyLength = 24;
constexpr std::size_t kKeyDataChars = 22;

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// Optional whitespace around header values and list elements (RFC 7230 section 3.2.3).
std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Value of a base64 digit (RFC 4648 section 4), or -1.
int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// True if `key` is the canonical base64 encoding of exactly 16 bytes.
bool is_valid_key(std::string_view key) {
  if (key.size() != kEncodedKeyLength) return false;
  if (key.substr(kKeyDataChars) != "==") return false;
  for (std::size_t i = 0; i < kKeyDataChars; ++i) {
    if (base64_value(key[i]) < 0) return false;
  }
  // 22 digits carry 132 bits, of which 128 are the nonce; the 4 spare bits in the last
  // digit must be zero, or the text is not what any encoder produces for 16 bytes.
  return (base64_value(key[kKeyDataChars - 1]) & 0x0F) == 0;
}

HandshakeCheck reject(std::string_view reason) {
  return {HandshakeVerdict::kBadRequest, reason};
}

}  // namespace

bool header_has_token(std::string_view list, std::string_view token) {
  if (token.empty()) return false;
  while (true) {
    const std::size_t comma = list.find(',');
    if (equals_ignoring_case(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

bool is_upgrade_request(const UpgradeRequest& request) {
  return header_has_token(request.upgrade, "websocket");
}

HandshakeCheck check_upgrade(const UpgradeRequest& request) {
  // Section 4.2.1, in the order the RFC lists the requirements.
  if (request.method != "GET") return reject("WebSocket upgrade requires GET");
  if (request.http_version < 11) return reject("WebSocket upgrade requires HTTP/1.1 or later");
  if (trim(request.host).empty()) return reject("missing Host header");
  if (request.repeated == "Host") return reject("more than one Host header");
  if (request.repeated == "Sec-WebSocket-Key") return reject("more than one Sec-WebSocket-Key");
  if (request.repeated == "Sec-WebSocket-Version") {
    return reject("more than one Sec-WebSocket-Version");
  }
  if (request.repeated == "Origin") return reject("more than one Origin header");
  if (!header_has_token(request.upgrade, "websocket")) {
    return reject("missing \"Upgrade: websocket\"");
  }
  if (!header_has_token(request.connection, "upgrade")) {
    return reject("missing \"Connection: Upgrade\"");
  }
  if (!is_valid_key(trim(request.key))) return reject("invalid Sec-WebSocket-Key");
  const std::string_view version = trim(request.version);
  if (version.empty()) return reject("missing Sec-WebSocket-Version");
  if (version != "13") {
    return {HandshakeVerdict::kUnsupportedVersion, "unsupported Sec-WebSocket-Version"};
  }
  return {HandshakeVerdict::kAccept, {}};
}

std::string accept_key(std::string_view client_key) {
  // Section 4.2.2: the key as sent, minus surrounding whitespace, not base64-decoded.
  client_key = trim(client_key);
  std::string keyed;
  keyed.reserve(client_key.size() + kHandshakeGuid.size());
  keyed.append(client_key);
  keyed.append(kHandshakeGuid);

  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_length = 0;
  if (EVP_Digest(keyed.data(), keyed.size(), digest.data(), &digest_length, EVP_sha1(), nullptr) !=
      1) {
    return {};  // only on allocation failure inside OpenSSL; the handshake then fails
  }
  // base64 output: 4 characters per 3 input bytes, rounded up, plus the NUL OpenSSL adds.
  std::array<unsigned char, (EVP_MAX_MD_SIZE + 2) / 3 * 4 + 1> encoded{};
  const int encoded_length =
      EVP_EncodeBlock(encoded.data(), digest.data(), static_cast<int>(digest_length));
  return std::string(encoded.begin(), encoded.begin() + encoded_length);
}

}  // namespace roomcast::ws
