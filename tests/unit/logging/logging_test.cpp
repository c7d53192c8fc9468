// logging::json_string: whatever bytes a log message quotes, the JSON line stays valid JSON and
// keeps every byte.
#include "logging/logging.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace roomcast::logging {
namespace {

std::string parsed(const std::string& json) {
  boost::system::error_code ec;
  const auto value = boost::json::parse(json, ec);
  EXPECT_FALSE(ec) << json;
  return ec || !value.is_string() ? std::string("(not a JSON string)")
                                  : std::string(value.get_string());
}

TEST(JsonString, QuotesBackslashesAndControlCharactersAreEscaped) {
  const std::string message = "a \"quoted\" \\path\\ on\nlines\tand \x01 \x7f";
  EXPECT_EQ(parsed(json_string(message)), message);
  EXPECT_EQ(json_string("plain"), "\"plain\"");
}

TEST(JsonString, Utf8IsKeptAsIs) {
  const std::string message = "caf\xc3\xa9 \xe2\x9c\x93";
  EXPECT_EQ(json_string(message), "\"" + message + "\"");
  EXPECT_EQ(parsed(json_string(message)), message);
}

TEST(JsonString, InvalidUtf8StaysValidJsonByteByByte) {
  const std::string message = "bad \xff\xfe and \xc3";
  const std::string json = json_string(message);
  EXPECT_EQ(json, "\"bad \\u00ff\\u00fe and \\u00c3\"");
  EXPECT_EQ(parsed(json), "bad \xc3\xbf\xc3\xbe and \xc3\x83");  // as Latin-1 code points
}

}  // namespace
}  // namespace roomcast::logging
