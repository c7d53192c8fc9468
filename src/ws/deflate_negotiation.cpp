#include "ws/deflate_negotiation.h"

#include <string_view>

namespace roomcast::ws {

namespace {

// RFC 7230 section 3.2.6: the characters of a token.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

// A cursor over the header text; every read method reports failure instead of throwing.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }
  void skip() { ++pos_; }

  // Optional whitespace (RFC 7230 section 3.2.3).
  void skip_ows() {
    while (!at_end() && (peek() == ' ' || peek() == '\t')) ++pos_;
  }

  std::string_view token() {
    const std::size_t start = pos_;
    while (!at_end() && is_tchar(peek())) ++pos_;
    return text_.substr(start, pos_ - start);
  }

  // A quoted-string (RFC 7230 section 3.2.6), the cursor on its opening quote; the
  // unescaped text, or nullopt if it is not closed or holds a character it may not.
  std::optional<std::string> quoted_string() {
    ++pos_;  // the opening quote
    std::string value;
    while (!at_end()) {
      const auto c = static_cast<unsigned char>(peek());
      ++pos_;
      if (c == '"') return value;
      if (c == '\\') {
        if (at_end()) return std::nullopt;
        const auto escaped = static_cast<unsigned char>(peek());
        ++pos_;
        if (escaped != '\t' && (escaped < 0x20 || escaped == 0x7F)) return std::nullopt;
        value.push_back(static_cast<char>(escaped));
        continue;
      }
      // qdtext: HTAB, SP, VCHAR except '"' and '\', obs-text.
      if (c != '\t' && (c < 0x20 || c == 0x7F)) return std::nullopt;
      value.push_back(static_cast<char>(c));
    }
    return std::nullopt;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

// param = token [ "=" ( token / quoted-string ) ], the cursor after its ";".
std::optional<ExtensionParam> parse_param(Scanner& in) {
  in.skip_ows();
  ExtensionParam param;
  param.name = std::string(in.token());
  if (param.name.empty()) return std::nullopt;
  in.skip_ows();
  if (in.at_end() || in.peek() != '=') return param;
  in.skip();
  in.skip_ows();
  if (in.at_end()) return std::nullopt;
  if (in.peek() == '"') {
    auto value = in.quoted_string();
    // RFC 6455 section 9.1: once unescaped, a quoted value must still be a token.
    if (!value || !is_token(*value)) return std::nullopt;
    param.value = std::move(value);
  } else {
    const std::string_view value = in.token();
    if (value.empty()) return std::nullopt;
    param.value = std::string(value);
  }
  return param;
}

// A window size: "8".."15", decimal without leading zeros (RFC 7692 7.1.2.1 and 7.1.2.2).
std::optional<std::uint8_t> parse_window_bits(std::string_view value) {
  if (value.empty() || value.size() > 2 || value.front() == '0') return std::nullopt;
  unsigned bits = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    bits = bits * 10 + static_cast<unsigned>(c - '0');
  }
  if (bits < kMinWindowBits || bits > kMaxWindowBits) return std::nullopt;
  return static_cast<std::uint8_t>(bits);
}

// Section 7.1: the agreement one permessage-deflate offer leads to, or nullopt if the offer
// is invalid (section 7.1: "the server MUST decline an offer" with an unknown parameter, a
// repeated one, or an invalid value).
std::optional<DeflateAgreement> accept_offer(const ExtensionOffer& offer,
                                             const DeflatePolicy& policy) {
  DeflateAgreement agreement;
  agreement.client_no_context_takeover = policy.require_client_no_context_takeover;
  bool seen_server_no_context = false;
  bool seen_client_no_context = false;
  bool seen_server_bits = false;
  bool seen_client_bits = false;
  for (const ExtensionParam& param : offer.params) {
    if (param.name == "server_no_context_takeover") {
      // Section 7.1.1.1: no value; we compress without context takeover anyway.
      if (seen_server_no_context || param.value) return std::nullopt;
      seen_server_no_context = true;
    } else if (param.name == "client_no_context_takeover") {
      // Section 7.1.1.2: no value; the client promises to compress each message alone.
      if (seen_client_no_context || param.value) return std::nullopt;
      seen_client_no_context = true;
      agreement.client_no_context_takeover = true;
    } else if (param.name == "server_max_window_bits") {
      // Section 7.1.2.1: a value is required; we accept it by answering it.
      if (seen_server_bits || !param.value) return std::nullopt;
      seen_server_bits = true;
      const auto bits = parse_window_bits(*param.value);
      if (!bits) return std::nullopt;
      agreement.server_max_window_bits = *bits;
    } else if (param.name == "client_max_window_bits") {
      // Section 7.1.2.2: the value is optional (without one, the client only says it can be
      // bounded). We inflate with the largest window, so we never ask for a smaller one;
      // an offered bound is answered as it stands.
      if (seen_client_bits) return std::nullopt;
      seen_client_bits = true;
      if (param.value) {
        const auto bits = parse_window_bits(*param.value);
        if (!bits) return std::nullopt;
        agreement.client_max_window_bits = *bits;
      }
    } else {
      return std::nullopt;  // an unknown parameter
    }
  }
  if (policy.server_context_takeover && !seen_server_no_context &&
      agreement.server_max_window_bits.value_or(kMaxWindowBits) > kMinWindowBits) {
    agreement.server_no_context_takeover = false;
  }
  return agreement;
}

}  // namespace

std::optional<std::vector<ExtensionOffer>> parse_extensions(std::string_view header) {
  std::vector<ExtensionOffer> offers;
  Scanner in(header);
  while (true) {
    in.skip_ows();
    if (in.at_end()) break;
    if (in.peek() == ',') {  // an empty list element
      in.skip();
      continue;
    }
    ExtensionOffer offer;
    offer.name = std::string(in.token());
    if (offer.name.empty()) return std::nullopt;
    in.skip_ows();
    while (!in.at_end() && in.peek() == ';') {
      in.skip();
      auto param = parse_param(in);
      if (!param) return std::nullopt;
      offer.params.push_back(std::move(*param));
      in.skip_ows();
    }
    offers.push_back(std::move(offer));
    if (in.at_end()) break;
    if (in.peek() != ',') return std::nullopt;
    in.skip();
  }
  return offers;
}

std::optional<DeflateAgreement> negotiate_deflate(std::string_view header,
                                                  const DeflatePolicy& policy) {
  const auto offers = parse_extensions(header);
  if (!offers) return std::nullopt;
  for (const ExtensionOffer& offer : *offers) {
    if (offer.name != "permessage-deflate") continue;
    if (auto agreement = accept_offer(offer, policy)) return agreement;
  }
  return std::nullopt;
}

std::string deflate_response(const DeflateAgreement& agreement) {
  std::string out = "permessage-deflate";
  if (agreement.server_no_context_takeover) out += "; server_no_context_takeover";
  if (agreement.client_no_context_takeover) out += "; client_no_context_takeover";
  if (agreement.server_max_window_bits) {
    out += "; server_max_window_bits=" + std::to_string(*agreement.server_max_window_bits);
  }
  if (agreement.client_max_window_bits) {
    out += "; client_max_window_bits=" + std::to_string(*agreement.client_max_window_bits);
  }
  return out;
}

}  // namespace roomcast::ws
