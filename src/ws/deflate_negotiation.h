// permessage-deflate negotiation (RFC 7692 section 7.1): reading a client's
// Sec-WebSocket-Extensions offers and writing the server's answer. Pure functions on header
// text, no I/O and no zlib, so the handshake, its fuzz target and its tests share them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace roomcast::ws {

// One element of an extension list (RFC 6455 section 9.1):
// name *( ";" param [ "=" ( token / quoted-string ) ] ), quoted values unescaped.
struct ExtensionParam {
  std::string name;
  std::optional<std::string> value;  // nullopt: the parameter has no "=value"
};
struct ExtensionOffer {
  std::string name;
  std::vector<ExtensionParam> params;
};

// Parses a Sec-WebSocket-Extensions value (several header lines joined with ","). Returns
// nullopt if it breaks the grammar anywhere: a header that cannot be read cannot be trusted
// in part. Empty list elements are skipped (RFC 7230 section 7).
std::optional<std::vector<ExtensionOffer>> parse_extensions(std::string_view header);

// Deflate's LZ77 window: 2^bits bytes, 8..15 (RFC 7692 sections 7.1.2.1 and 7.1.2.2).
inline constexpr std::uint8_t kMinWindowBits = 8;
inline constexpr std::uint8_t kMaxWindowBits = 15;

// What both sides agreed to for one connection.
struct DeflateAgreement {
  // We compress every message on its own (section 7.1.1.1): one compressed frame may be
  // shared by every recipient. False only with DeflatePolicy::server_context_takeover.
  bool server_no_context_takeover = true;
  // The client compresses every message on its own, so we keep no inflate state between
  // its messages (section 7.1.1.2).
  bool client_no_context_takeover = false;
  // Our compressor's window may not exceed 2^server_max_window_bits (section 7.1.2.1); an
  // offered bound is accepted by answering it, so nullopt: none was offered (2^15).
  std::optional<std::uint8_t> server_max_window_bits;
  // The client's compressor window, when it offered to bound it and we chose a bound
  // (section 7.1.2.2); we inflate with a 2^15 window, which reads any smaller one.
  std::optional<std::uint8_t> client_max_window_bits;

  // The largest back-reference distance our compressed frames may use on this connection.
  std::size_t server_window_bytes() const {
    return std::size_t{1} << server_max_window_bits.value_or(kMaxWindowBits);
  }
};

// What the server asks for beyond what the client offered.
struct DeflatePolicy {
  // Answer client_no_context_takeover even when the client did not offer it (the server may,
  // section 7.1.1.2): no inflate state (about 40 KiB with a 2^15 window) outlives a message,
  // so an idle connection that negotiated deflate costs nothing more than one that did not.
  bool require_client_no_context_takeover = true;
  // Compress with context takeover (--compression dedicated) unless the client asks us not
  // to (server_no_context_takeover), or bounds our window to 2^8, which zlib cannot write.
  bool server_context_takeover = false;
};

// Picks the first permessage-deflate offer in `header` that is valid and that we can accept
// (RFC 7692 section 5.1: offers are in the client's order of preference). An offer is
// invalid, and skipped, if it has an unknown parameter, a parameter twice, a value where
// none is allowed, or a window size that is not a decimal 8..15 without leading zeros
// (section 7.1). nullopt: decline (answer no Sec-WebSocket-Extensions at all), also when the
// header breaks the grammar.
std::optional<DeflateAgreement> negotiate_deflate(std::string_view header,
                                                  const DeflatePolicy& policy);

// The Sec-WebSocket-Extensions value that accepts `agreement` (section 7.1), e.g.
// "permessage-deflate; server_no_context_takeover; client_no_context_takeover".
std::string deflate_response(const DeflateAgreement& agreement);

}  // namespace roomcast::ws
