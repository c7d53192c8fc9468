#include "chat/unicode_text.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/uspoof.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>

namespace roomcast::chat {
namespace {

// ICU indexes strings with int32_t. Nothing we check comes close (a WebSocket message is at
// most --max-message-size); longer text is simply not looked into.
constexpr std::size_t kMaxIcuLength = std::numeric_limits<std::int32_t>::max();

bool renders_as_nothing(UChar32 c) {
  if (c < 0x80) return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  if (u_isUWhiteSpace(c) || u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT)) {
    return true;
  }
  // Format characters are invisible except the prepended concatenation marks (U+0600
  // ARABIC NUMBER SIGN and the like), which are drawn around the digits that follow.
  if (u_charType(c) == U_FORMAT_CHAR) {
    return !u_hasBinaryProperty(c, UCHAR_PREPENDED_CONCATENATION_MARK);
  }
  // Neither space nor ignorable to Unicode, but blank on screen: a favourite for names that
  // show as nothing.
  return c == 0x2800;
}

const std::uint8_t* bytes(std::string_view text) {
  return reinterpret_cast<const std::uint8_t*>(text.data());
}

// Built once; only const functions are called on it afterwards, which ICU documents as
// thread-safe (uspoof.h, "Thread Safety").
class SpoofChecker {
 public:
  SpoofChecker() {
    UErrorCode status = U_ZERO_ERROR;
    checker_.reset(uspoof_open(&status));
    if (U_SUCCESS(status)) uspoof_setChecks(checker_.get(), USPOOF_CONFUSABLE, &status);
    if (U_FAILURE(status)) checker_.reset();
  }
  // Null if ICU could not build one (its data missing): names are then compared as they are.
  const USpoofChecker* get() const { return checker_.get(); }

 private:
  struct Close {
    void operator()(USpoofChecker* checker) const { uspoof_close(checker); }
  };
  std::unique_ptr<USpoofChecker, Close> checker_;
};

}  // namespace

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string_view trim_invisible(std::string_view text) {
  if (text.size() > kMaxIcuLength) return text;
  // One pass forward (ICU's backward macro does not compile warning-free here): the first
  // visible character, and the end of the last.
  const std::uint8_t* s = bytes(text);
  const auto length = static_cast<std::int32_t>(text.size());
  std::int32_t first = -1;
  std::int32_t end = 0;
  for (std::int32_t i = 0; i < length;) {
    const std::int32_t start = i;
    UChar32 c;
    U8_NEXT(s, i, length, c);
    if (c >= 0 && renders_as_nothing(c)) continue;
    if (first < 0) first = start;
    end = i;
  }
  if (first < 0) return {};
  return text.substr(static_cast<std::size_t>(first), static_cast<std::size_t>(end - first));
}

bool has_visible(std::string_view text) {
  if (text.size() > kMaxIcuLength) return true;
  const std::uint8_t* s = bytes(text);
  const auto length = static_cast<std::int32_t>(text.size());
  for (std::int32_t i = 0; i < length;) {
    UChar32 c;
    U8_NEXT(s, i, length, c);
    if (c < 0 || !renders_as_nothing(c)) return true;
  }
  return false;
}

bool has_bidi_control(std::string_view text) {
  if (text.size() > kMaxIcuLength) return false;
  const std::uint8_t* s = bytes(text);
  const auto length = static_cast<std::int32_t>(text.size());
  for (std::int32_t i = 0; i < length;) {
    UChar32 c;
    U8_NEXT(s, i, length, c);
    if (c >= 0x80 && u_hasBinaryProperty(c, UCHAR_BIDI_CONTROL)) return true;
  }
  return false;
}

NameFlaw find_name_flaw(std::string_view text) {
  if (text.size() > kMaxIcuLength) return NameFlaw::kIllFormed;
  const std::uint8_t* s = bytes(text);
  const auto length = static_cast<std::int32_t>(text.size());
  for (std::int32_t i = 0; i < length;) {
    UChar32 c;
    U8_NEXT(s, i, length, c);
    if (c < 0) return NameFlaw::kIllFormed;
    if (c < 0x80) continue;
    const auto type = u_charType(c);
    if (type == U_CONTROL_CHAR || type == U_LINE_SEPARATOR || type == U_PARAGRAPH_SEPARATOR) {
      return NameFlaw::kControl;
    }
  }
  return NameFlaw::kNone;
}

std::string to_nfc(std::string_view text) {
  if (is_ascii(text) || text.size() > kMaxIcuLength) return std::string(text);
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  const icu::StringPiece piece(text.data(), static_cast<std::int32_t>(text.size()));
  if (U_FAILURE(status) || nfc->isNormalizedUTF8(piece, status)) return std::string(text);
  std::string normalized;
  normalized.reserve(text.size());
  icu::StringByteSink<std::string> sink(&normalized);
  status = U_ZERO_ERROR;
  nfc->normalizeUTF8(0, piece, sink, nullptr, status);
  // Only ill-formed input fails, and names are checked for that before they get here.
  return U_SUCCESS(status) ? normalized : std::string(text);
}

std::string confusable_skeleton(std::string_view name) {
  if (name.size() > kMaxIcuLength) return std::string(name);
  // What a reader sees: nothing for the invisible characters, one gap for any whitespace.
  std::string visible;
  visible.reserve(name.size());
  bool gap = false;
  const std::uint8_t* s = bytes(name);
  const auto length = static_cast<std::int32_t>(name.size());
  for (std::int32_t i = 0; i < length;) {
    const std::int32_t start = i;
    UChar32 c;
    U8_NEXT(s, i, length, c);
    if (c >= 0 && renders_as_nothing(c)) {
      gap = gap || c < 0x80 || u_isUWhiteSpace(c);
      continue;
    }
    if (gap && !visible.empty()) visible += ' ';
    gap = false;
    visible.append(
        name.substr(static_cast<std::size_t>(start), static_cast<std::size_t>(i - start)));
  }
  static const SpoofChecker checker;
  if (checker.get() == nullptr) return visible;
  std::string skeleton(visible.size() * 2 + 16, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    UErrorCode status = U_ZERO_ERROR;
    const std::int32_t size = uspoof_getSkeletonUTF8(
        checker.get(), 0, visible.data(), static_cast<std::int32_t>(visible.size()),
        skeleton.data(), static_cast<std::int32_t>(skeleton.size()), &status);
    if (status == U_BUFFER_OVERFLOW_ERROR) {
      skeleton.assign(static_cast<std::size_t>(size), '\0');
      continue;
    }
    if (U_FAILURE(status)) return visible;
    skeleton.resize(static_cast<std::size_t>(size));
    return skeleton;
  }
  return visible;
}

}  // namespace roomcast::chat
