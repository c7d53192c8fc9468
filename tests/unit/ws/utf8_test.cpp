// Specification of UTF-8 validation (RFC 3629), one-shot and incremental.
#include "ws/utf8.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace roomcast::ws {
namespace {

// Encodes a code point the textbook way, without judging it.
std::string encode(std::uint32_t cp) {
  std::string out;
  const auto put = [&out](std::uint32_t byte) { out.push_back(static_cast<char>(byte)); };
  if (cp < 0x80) {
    put(cp);
  } else if (cp < 0x800) {
    put(0xC0 | (cp >> 6));
    put(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    put(0xE0 | (cp >> 12));
    put(0x80 | ((cp >> 6) & 0x3F));
    put(0x80 | (cp & 0x3F));
  } else {
    put(0xF0 | (cp >> 18));
    put(0x80 | ((cp >> 12) & 0x3F));
    put(0x80 | ((cp >> 6) & 0x3F));
    put(0x80 | (cp & 0x3F));
  }
  return out;
}

// A deliberately slow and literal reading of RFC 3629: decode each sequence to its
// code point, then reject overlong forms, surrogates and values beyond U+10FFFF.
bool reference_is_valid(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<unsigned char>(s[i]);
    std::size_t length = 0;
    std::uint32_t cp = 0;
    if (lead < 0x80) {
      length = 1;
      cp = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      cp = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      cp = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      cp = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > s.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto cont = static_cast<unsigned char>(s[i + k]);
      if ((cont & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cont & 0x3F);
    }
    const std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < smallest[length]) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    if (cp > 0x10FFFF) return false;
    i += length;
  }
  return true;
}

bool valid_when_fed_byte_by_byte(std::string_view s) {
  Utf8Validator validator;
  for (char c : s) {
    if (!validator.feed(std::string_view(&c, 1))) return false;
  }
  return validator.complete();
}

// --- valid input ---

TEST(Utf8, EmptyAndAsciiAreValid) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("Hello, world"));
  EXPECT_TRUE(is_valid_utf8(std::string_view("\0\x7F", 2)));
}

TEST(Utf8, MultiByteTextIsValid) {
  EXPECT_TRUE(is_valid_utf8("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"));  // "κόσμε"
  EXPECT_TRUE(
      is_valid_utf8("Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!"));
  EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC 100"));  // euro sign
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80 smile"));  // emoji, 4 bytes
}

TEST(Utf8, FirstAndLastCodePointOfEachLengthAreValid) {
  for (std::uint32_t cp : {0x0u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xFFFFu, 0x10000u, 0x10FFFFu}) {
    EXPECT_TRUE(is_valid_utf8(encode(cp))) << std::hex << cp;
  }
}

TEST(Utf8, CodePointsAroundTheSurrogateRangeAreValid) {
  EXPECT_TRUE(is_valid_utf8(encode(0xD7FF)));
  EXPECT_TRUE(is_valid_utf8(encode(0xE000)));
  EXPECT_TRUE(is_valid_utf8(encode(0xFFFD)));
  EXPECT_TRUE(is_valid_utf8(encode(0xFFFE)));  // a noncharacter, but valid UTF-8
}

// --- invalid input ---

TEST(Utf8, OverlongEncodingsAreInvalid) {
  for (std::string_view s :
       {"\xC0\x80", "\xC1\xBF", "\xC0\xAF", "\xE0\x80\x80", "\xE0\x80\xAF", "\xE0\x9F\xBF",
        "\xF0\x80\x80\x80", "\xF0\x80\x80\xAF", "\xF0\x8F\xBF\xBF"}) {
    EXPECT_FALSE(is_valid_utf8(s)) << ::testing::PrintToString(s);
  }
}

TEST(Utf8, SurrogatesAreInvalidAloneAndInPairs) {
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));  // U+D800
  EXPECT_FALSE(is_valid_utf8("\xED\xAD\xBF"));  // U+DB7F
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));  // U+DFFF
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80\xED\xB0\x80"));  // CESU-8 style pair
}

TEST(Utf8, CodePointsAboveU10FFFFAreInvalid) {
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xF7\xBF\xBF\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xF8\x88\x80\x80\x80"));  // old 5-byte form
  EXPECT_FALSE(is_valid_utf8("\xFC\x84\x80\x80\x80\x80"));  // old 6-byte form
  EXPECT_FALSE(is_valid_utf8("\xFE"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
}

TEST(Utf8, LoneContinuationBytesAreInvalid) {
  EXPECT_FALSE(is_valid_utf8("\x80"));
  EXPECT_FALSE(is_valid_utf8("\xBF"));
  EXPECT_FALSE(is_valid_utf8("a\x80z"));
  EXPECT_FALSE(is_valid_utf8("\xC3\xA9\xA9"));  // one continuation too many
}

TEST(Utf8, TruncatedSequencesAreInvalid) {
  EXPECT_FALSE(is_valid_utf8("\xC3"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));
  EXPECT_FALSE(is_valid_utf8("\xF0\x9F\x98"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x82z"));  // cut short by an ASCII byte
}

TEST(Utf8, AutobahnCase6_3_1InvalidTextIsRejected) {
  EXPECT_FALSE(is_valid_utf8(
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"));
}

// --- agreement with the RFC, exhaustively for short sequences ---

TEST(Utf8, AgreesWithTheRfcOnEveryOneAndTwoByteSequence) {
  for (unsigned a = 0; a < 256; ++a) {
    const std::string one(1, static_cast<char>(a));
    ASSERT_EQ(is_valid_utf8(one), reference_is_valid(one)) << a;
    for (unsigned b = 0; b < 256; ++b) {
      const std::string two{static_cast<char>(a), static_cast<char>(b)};
      ASSERT_EQ(is_valid_utf8(two), reference_is_valid(two)) << a << " " << b;
    }
  }
}

TEST(Utf8, AgreesWithTheRfcOnEveryThreeAndFourByteSequenceWithAMultiByteLead) {
  for (unsigned lead = 0xE0; lead < 0x100; ++lead) {
    for (unsigned b = 0x70; b < 0xD0; ++b) {
      for (unsigned c = 0x70; c < 0xD0; ++c) {
        const std::string three{static_cast<char>(lead), static_cast<char>(b),
                                static_cast<char>(c)};
        ASSERT_EQ(is_valid_utf8(three), reference_is_valid(three)) << lead << " " << b << " " << c;
        const std::string four = three + "\x80";
        ASSERT_EQ(is_valid_utf8(four), reference_is_valid(four)) << lead << " " << b << " " << c;
      }
    }
  }
}

// --- the ASCII fast path must not skip anything ---

TEST(Utf8, InvalidByteIsFoundAtEveryPositionOfLongAsciiText) {
  for (std::size_t pos = 0; pos < 64; ++pos) {
    std::string text(64, 'a');
    text[pos] = '\x80';
    EXPECT_FALSE(is_valid_utf8(text)) << pos;
    EXPECT_FALSE(valid_when_fed_byte_by_byte(text)) << pos;
  }
}

TEST(Utf8, MultiByteCodePointIsJudgedAtEveryPositionOfLongAsciiText) {
  for (std::size_t pos = 0; pos <= 40; ++pos) {
    const std::string valid = std::string(pos, 'a') + "\xF0\x9F\x98\x80" + std::string(40, 'b');
    EXPECT_TRUE(is_valid_utf8(valid)) << pos;
    const std::string surrogate = std::string(pos, 'a') + "\xED\xA0\x80" + std::string(40, 'b');
    EXPECT_FALSE(is_valid_utf8(surrogate)) << pos;
  }
}

// --- incremental validation ---

TEST(Utf8Validator, CodePointSplitAcrossFeedsIsJudgedAsAWhole) {
  Utf8Validator validator;
  EXPECT_TRUE(validator.feed("\xF0\x9F"));
  EXPECT_FALSE(validator.complete());  // in the middle of a code point
  EXPECT_TRUE(validator.feed("\x98\x80"));
  EXPECT_TRUE(validator.complete());
}

TEST(Utf8Validator, InvalidContinuationInALaterFeedFails) {
  Utf8Validator validator;
  EXPECT_TRUE(validator.feed("ok \xE2\x82"));
  EXPECT_FALSE(validator.feed("A"));
}

TEST(Utf8Validator, SplitSurrogateFailsOnItsSecondByte) {
  Utf8Validator validator;
  EXPECT_TRUE(validator.feed("\xED"));
  EXPECT_FALSE(validator.feed("\xA0"));
}

TEST(Utf8Validator, FailsAsSoonAsTheStreamCannotBeValid) {
  Utf8Validator validator;
  EXPECT_FALSE(validator.feed("\xC0"));  // no continuation can rescue C0
}

TEST(Utf8Validator, StaysFailedUntilReset) {
  Utf8Validator validator;
  EXPECT_FALSE(validator.feed("\xFF"));
  EXPECT_FALSE(validator.feed("fine"));
  EXPECT_FALSE(validator.complete());
  validator.reset();
  EXPECT_TRUE(validator.feed("fine"));
  EXPECT_TRUE(validator.complete());
}

TEST(Utf8Validator, EmptyFeedChangesNothing) {
  Utf8Validator validator;
  EXPECT_TRUE(validator.feed(""));
  EXPECT_TRUE(validator.complete());
  EXPECT_TRUE(validator.feed("\xC3"));
  EXPECT_TRUE(validator.feed(""));
  EXPECT_FALSE(validator.complete());
}

TEST(Utf8Validator, EverySplitPointGivesTheSameVerdictAsOneShot) {
  const std::string samples[] = {
      "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!",
      "\xF0\x9F\x98\x80\xE2\x82\xAC\xC3\xA9 mixed text that is long enough \xF4\x8F\xBF\xBF",
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
      "valid until the end \xF0\x9F\x98",
  };
  for (const std::string& sample : samples) {
    const bool expected = is_valid_utf8(sample);
    EXPECT_EQ(expected, reference_is_valid(sample));
    for (std::size_t split = 0; split <= sample.size(); ++split) {
      Utf8Validator validator;
      const bool fed = validator.feed(std::string_view(sample).substr(0, split)) &&
                       validator.feed(std::string_view(sample).substr(split));
      EXPECT_EQ(fed && validator.complete(), expected) << "split at " << split;
    }
    EXPECT_EQ(valid_when_fed_byte_by_byte(sample), expected);
  }
}

}  // namespace
}  // namespace roomcast::ws
