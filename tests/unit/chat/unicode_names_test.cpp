// The Unicode rules of names and messages (issue 21 item 7): what renders as nothing is
// trimmed and counts as empty, bidi and C1 controls are refused in names, names are kept in
// NFC, and look-alike names share a UTS #39 skeleton. JSON escapes (\uXXXX) spell the
// characters so that this file shows what it tests.
#include <gtest/gtest.h>

#include <string>

#include "chat/authenticator.h"
#include "chat/protocol.h"
#include "chat/unicode_text.h"

namespace roomcast::chat {
namespace {

std::variant<ClientMessage, ProtocolError> join_as(std::string_view username_json) {
  return decode_client_message(
      R"({"type":"join_room","room":"general","username":")" + std::string(username_json) + "\"}",
      ProtocolLimits{});
}

std::variant<ClientMessage, ProtocolError> join_room_named(std::string_view room_json) {
  return decode_client_message(
      R"({"type":"join_room","room":")" + std::string(room_json) + R"(","username":"ann"})",
      ProtocolLimits{});
}

// The decoded username, or "error <message>".
std::string username_of(const std::variant<ClientMessage, ProtocolError>& decoded) {
  if (const auto* error = std::get_if<ProtocolError>(&decoded)) {
    EXPECT_EQ(error->code, error_code::kInvalidField);
    return "error " + error->message;
  }
  return std::get<JoinRoom>(std::get<ClientMessage>(decoded)).username.value_or("");
}

std::string room_of(const std::variant<ClientMessage, ProtocolError>& decoded) {
  if (const auto* error = std::get_if<ProtocolError>(&decoded)) {
    EXPECT_EQ(error->code, error_code::kInvalidField);
    return "error " + error->message;
  }
  return std::get<JoinRoom>(std::get<ClientMessage>(decoded)).room;
}

TEST(UnicodeNames, NamesOfNothingVisibleAreEmpty) {
  for (const char* invisible : {
           R"(\u200b)",  // zero-width space
           R"(\u200b\u200c\u200d\ufeff\u2060)",  // zero-width (non-)joiner, BOM, word joiner
           R"(\u00a0\u3000\u2003)",  // no-break, ideographic and em spaces
           R"(\u3164)",
           R"(\u115f\u1160)",
           R"(\uffa0)",  // Hangul fillers
           R"(\u2800)",  // braille pattern blank
           R"(\u180e\u00ad\u034f\ufe0f)",  // Mongolian vowel separator, soft hyphen, CGJ, VS16
           R"( \u200b \t\u00a0)",
       }) {
    EXPECT_EQ(username_of(join_as(invisible)),
              "error Field 'username' must not be empty or invisible")
        << invisible;
    EXPECT_EQ(room_of(join_room_named(invisible)),
              "error Field 'room' must not be empty or invisible")
        << invisible;
  }
}

TEST(UnicodeNames, InvisibleEndsAreTrimmedAndWhatIsInsideIsKept) {
  EXPECT_EQ(username_of(join_as(R"(\u200bann\u00a0\ufeff)")), "ann");
  EXPECT_EQ(username_of(join_as(R"(\u3000山田\u3000)")), "山田");
  // Inside a name, an ideographic space is how Japanese names are written, and a zero-width
  // joiner makes one emoji of two (the skeleton rule keeps them from deceiving).
  EXPECT_EQ(username_of(join_as(R"(山田\u3000太郎)")), "山田\u3000太郎");
  EXPECT_EQ(username_of(join_as(R"(\ud83d\udc69\u200d\ud83d\udcbb)")), "👩\u200d💻");
  EXPECT_EQ(room_of(join_room_named(R"(\u2060caf\u00e9\u3000)")), "café");
}

TEST(UnicodeNames, BidiControlsAreRefusedAnywhereInAName) {
  for (const char* control :
       {R"(\u202a)", R"(\u202b)", R"(\u202c)", R"(\u202d)", R"(\u202e)", R"(\u2066)", R"(\u2067)",
        R"(\u2068)", R"(\u2069)", R"(\u200e)", R"(\u200f)", R"(\u061c)"}) {
    const std::string inside = std::string("ann") + control + "gnp.exe";
    EXPECT_EQ(username_of(join_as(inside))
                  .rfind("error Field 'username' must not contain "
                         "bidirectional controls",
                         0),
              0u)
        << control;
    EXPECT_EQ(room_of(join_room_named(inside)).rfind("error Field 'room' must not contain bidi", 0),
              0u)
        << control;
    // At an end too: a control is invisible, but it is not trimmed away in silence.
    EXPECT_EQ(username_of(join_as(std::string("ann") + control)).rfind("error", 0), 0u) << control;
  }
}

TEST(UnicodeNames, C1ControlsAndLineSeparatorsAreRefused) {
  for (const char* bad : {R"(a\u0085b)", R"(a\u009bb)", R"(a\u2028b)", R"(a\u2029b)"}) {
    EXPECT_EQ(username_of(join_as(bad)),
              "error Field 'username' must not contain control characters or line breaks")
        << bad;
  }
}

TEST(UnicodeNames, NamesAreKeptInNfcAndMeasuredThere) {
  EXPECT_EQ(username_of(join_as(R"(e\u0301)")), "\u00e9");
  EXPECT_EQ(username_of(join_as(R"(\u00e9)")), "\u00e9");
  EXPECT_EQ(room_of(join_room_named(R"(cafe\u0301)")), "caf\u00e9");
  // 20 decomposed characters are 40 code points as sent and 20 as kept: within the limit.
  std::string decomposed;
  for (int i = 0; i < 20; ++i) decomposed += R"(e\u0301)";
  std::string composed;
  for (int i = 0; i < 20; ++i) composed += "\u00e9";
  EXPECT_EQ(username_of(join_as(decomposed)), composed);
}

TEST(UnicodeNames, AHugeNameIsRefusedBeforeAnyUnicodeWork) {
  std::string huge;
  for (int i = 0; i < 100'000; ++i) huge += R"(\u200b)";
  EXPECT_EQ(username_of(join_as(huge + "ann")),
            "error Field 'username' must be at most 20 characters");
  // Some invisible padding is only trimmed.
  std::string padded;
  for (int i = 0; i < 30; ++i) padded += R"(\u200b)";
  EXPECT_EQ(username_of(join_as(padded + "ann" + padded)), "ann");
}

TEST(UnicodeNames, NamesInOtherScriptsAreTakenAsTheyAre) {
  for (const char* name : {"山田太郎", "محمد", "José", "Zoë", "Ægir", "Дмитрий", "ann-marie 2"}) {
    EXPECT_EQ(username_of(join_as(name)), name);
  }
  // A prepended concatenation mark (Arabic number sign) is a format character drawn around
  // the digits: visible, so kept.
  EXPECT_EQ(username_of(join_as(R"(\u0600١٢)")), "\u0600١٢");
}

TEST(UnicodeNames, IllFormedUtf8IsRefused) {
  // A room name from a URL has not been through the WebSocket's UTF-8 check.
  const auto checked = check_room_name("caf\xc3", ProtocolLimits{});
  ASSERT_TRUE(std::holds_alternative<ProtocolError>(checked));
  EXPECT_EQ(std::get<ProtocolError>(checked).message, "Field 'room' must be valid UTF-8");
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(check_room_name("\xff\xfe", ProtocolLimits{})));
}

TEST(UnicodeNames, MessagesOfNothingVisibleAreEmptyAndOthersAreSentAsTheyAre) {
  for (const char* invisible : {R"(\u200b)", R"(\u200b\u200b\u200b)", R"(\u00a0\u3000\n\u2800)",
                                R"(\u3164\ufeff)", R"(\u202e)"}) {
    const auto decoded = decode_client_message(
        R"({"type":"chat_message","message":")" + std::string(invisible) + "\"}", ProtocolLimits{});
    ASSERT_TRUE(std::holds_alternative<ProtocolError>(decoded)) << invisible;
    EXPECT_EQ(std::get<ProtocolError>(decoded).message, "Field 'message' must not be empty");
  }
  // Something visible: the message is kept byte for byte, invisible characters included.
  const auto decoded = decode_client_message(
      R"({"type":"chat_message","message":"\u200b hi \u202e"})", ProtocolLimits{});
  ASSERT_TRUE(std::holds_alternative<ClientMessage>(decoded));
  EXPECT_EQ(std::get<ChatMessage>(std::get<ClientMessage>(decoded)).message, "\u200b hi \u202e");
}

TEST(UnicodeNames, TokenNamesFollowTheSameRulesButAreNotTrimmed) {
  const ProtocolLimits limits;
  EXPECT_EQ(check_username("e\u0301", limits), std::nullopt);  // the Hub keeps its NFC
  EXPECT_EQ(check_username("山田\u3000太郎", limits), std::nullopt);
  EXPECT_NE(check_username("\u200bann", limits), std::nullopt);
  EXPECT_NE(check_username("ann\u00a0", limits), std::nullopt);
  EXPECT_NE(check_username("\u200b\u200b", limits), std::nullopt);
  EXPECT_NE(check_username("ann\u202egnp.exe", limits), std::nullopt);
  EXPECT_NE(check_identity({"u1", "\u3164", std::nullopt, 0}, limits), std::nullopt);
}

TEST(UnicodeText, TrimAndVisibility) {
  EXPECT_EQ(trim_invisible(""), "");
  EXPECT_EQ(trim_invisible(" a b "), "a b");
  EXPECT_EQ(trim_invisible("\u200b\u00a0a\u3000b\u2800"), "a\u3000b");
  EXPECT_EQ(trim_invisible("\xff "), "\xff");  // ill-formed bytes count as visible
  EXPECT_FALSE(has_visible("\u200b \u3164"));
  EXPECT_TRUE(has_visible("\u200bx"));
  EXPECT_TRUE(is_ascii("ann 42"));
  EXPECT_FALSE(is_ascii("\u0430nn"));
  EXPECT_EQ(find_name_flaw("ann"), NameFlaw::kNone);
  EXPECT_TRUE(has_bidi_control("a\u202eb"));
  EXPECT_FALSE(has_bidi_control("a\u200bb"));
  EXPECT_EQ(find_name_flaw("a\u0085b"), NameFlaw::kControl);
  EXPECT_EQ(find_name_flaw("a\xe2\x80"), NameFlaw::kIllFormed);
}

TEST(UnicodeText, LookAlikeNamesShareASkeleton) {
  const auto same = [](std::string_view a, std::string_view b) {
    return confusable_skeleton(a) == confusable_skeleton(b);
  };
  EXPECT_TRUE(same("ann", "\u0430nn"));  // Cyrillic a
  EXPECT_TRUE(same("paypal", "p\u0430yp\u0430l"));
  EXPECT_TRUE(same("bob1", "bobl"));  // confusable in ASCII too
  EXPECT_TRUE(same("m", "rn"));
  EXPECT_TRUE(same("ann", "a\u200bnn"));  // what renders as nothing is nothing
  EXPECT_TRUE(same("a nn", "a\u00a0\u3000nn"));  // any gap is one gap
  EXPECT_TRUE(same("\u00e9", "e\u0301"));
  EXPECT_FALSE(same("ann", "Ann"));
  EXPECT_FALSE(same("ann", "anne"));
  EXPECT_FALSE(same("ann", "a nn"));
  EXPECT_FALSE(same("山田", "山本"));
}

}  // namespace
}  // namespace roomcast::chat
