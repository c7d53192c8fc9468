// The Unicode rules for what people read: which characters render as nothing, which reorder
// the text around them, the one normal form names are kept in, and when two names look the
// same. The only part of chat/ that uses ICU (a text library: no I/O, no threads of its own).
//
// All functions are pure and thread-safe (ICU's normaliser and spoof checker are built once
// and only read afterwards). Text is UTF-8; pure ASCII never reaches ICU.
#pragma once

#include <string>
#include <string_view>

namespace roomcast::chat {

// Whether every byte of `text` is ASCII (the fast path: no ICU needed).
bool is_ascii(std::string_view text);

// `text` without the characters at either end that render as nothing: ASCII space, tab, CR
// and LF; beyond ASCII, Unicode White_Space (NBSP, ideographic space, ...), format characters
// (zero-width space and joiners, BOM, word joiner, soft hyphen, bidi controls, ...), the other
// default-ignorable code points (Hangul fillers, variation selectors, ...) and U+2800 BRAILLE
// PATTERN BLANK. Empty if nothing visible is left. Ill-formed UTF-8 counts as visible.
std::string_view trim_invisible(std::string_view text);

// Whether `text` has a character that renders as something (see trim_invisible); stops at
// the first, so a long message costs little.
bool has_visible(std::string_view text);

// Whether `text` has a bidirectional control (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F,
// U+061C) anywhere: it reorders what follows it, so "ann\u202Egnp.exe" reads as
// "annexe.png", and a name ending in one turns " joined the chat" around.
bool has_bidi_control(std::string_view text);

// What a name may not contain beyond ASCII (ASCII's own rules are the protocol's).
enum class NameFlaw {
  kNone,
  kIllFormed,  // not valid UTF-8 (a room name from a URL, say)
  kControl,  // a C1 control, or a line or paragraph separator (U+2028, U+2029)
};
NameFlaw find_name_flaw(std::string_view text);

// `text` (valid UTF-8) in Normalization Form C: "e" + U+0301 and U+00E9 are one name.
std::string to_nfc(std::string_view text);

// The UTS #39 skeleton of a name (valid UTF-8): two names that look alike, such as "ann" and
// Cyrillic "аnn", "paypal" and "pаypаl", or "bob1" and "bobl", have the same skeleton.
// Before the confusable mapping, characters that render as nothing are dropped and every
// run of whitespace becomes one space, so "a\u200Bnn" and "a\u00A0nn" look like "ann" and
// "a nn".
std::string confusable_skeleton(std::string_view name);

}  // namespace roomcast::chat
