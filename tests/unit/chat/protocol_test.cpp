#include "chat/protocol.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace roomcast::chat {
namespace {

namespace json = boost::json;

ClientMessage decode_ok(std::string_view text) {
  auto result = decode_client_message(text, ProtocolLimits{});
  if (auto* error = std::get_if<ProtocolError>(&result)) {
    ADD_FAILURE() << "unexpected error " << error->code << ": " << error->message;
    return ChatMessage{};
  }
  return std::get<ClientMessage>(std::move(result));
}

std::string_view decode_error_code(std::string_view text) {
  auto result = decode_client_message(text, ProtocolLimits{});
  if (!std::holds_alternative<ProtocolError>(result)) {
    ADD_FAILURE() << "expected an error for " << text;
    return {};
  }
  return std::get<ProtocolError>(result).code;
}

TEST(DecodeClientMessage, JoinRoomWithUsername) {
  auto msg =
      std::get<JoinRoom>(decode_ok(R"({"type":"join_room","room":"general","username":"alice"})"));
  EXPECT_EQ(msg.room, "general");
  EXPECT_EQ(msg.username, "alice");
}

TEST(DecodeClientMessage, NamesAreTrimmed) {
  auto msg =
      std::get<JoinRoom>(decode_ok(R"({"type":"join_room","room":"  lobby ","username":" bob"})"));
  EXPECT_EQ(msg.room, "lobby");
  EXPECT_EQ(msg.username, "bob");
}

TEST(DecodeClientMessage, JoinRoomWithoutUsernameIsAllowedByTheDecoder) {
  auto msg = std::get<JoinRoom>(decode_ok(R"({"type":"join_room","room":"general"})"));
  EXPECT_FALSE(msg.username.has_value());
}

TEST(DecodeClientMessage, ChatMessageWithOptionalTimestampAndRoom) {
  auto msg = std::get<ChatMessage>(
      decode_ok(R"({"type":"chat_message","message":"hi","timestamp":1700000000000,"room":"a"})"));
  EXPECT_EQ(msg.message, "hi");
  EXPECT_EQ(msg.room, "a");
}

TEST(DecodeClientMessage, TypingSignals) {
  EXPECT_TRUE(std::get<Typing>(decode_ok(R"({"type":"typing_start","room":"a"})")).started);
  EXPECT_FALSE(std::get<Typing>(decode_ok(R"({"type":"typing_stop","room":"a"})")).started);
}

TEST(DecodeClientMessage, LeaveRoom) {
  EXPECT_EQ(std::get<LeaveRoom>(decode_ok(R"({"type":"leave_room","room":"a"})")).room, "a");
}

TEST(DecodeClientMessage, InvalidJsonIsReported) {
  EXPECT_EQ(decode_error_code("{not json"), error_code::kInvalidJson);
  EXPECT_EQ(decode_error_code(""), error_code::kInvalidJson);
}

TEST(DecodeClientMessage, ANameTwiceInOneObjectIsRefused) {
  auto result = decode_client_message(R"({"type":"leave_room","type":"chat_message"})", {});
  ASSERT_TRUE(std::holds_alternative<ProtocolError>(result));
  EXPECT_EQ(std::get<ProtocolError>(result).code, error_code::kInvalidJson);
  EXPECT_EQ(std::get<ProtocolError>(result).message,
            "Invalid JSON: the name 'type' appears twice in one object");
  // Escapes spell the same name; nested objects are checked too; different objects may share.
  EXPECT_EQ(decode_error_code(R"({"type":"chat_message","message":"a","t\u0079pe":"x"})"),
            error_code::kInvalidJson);
  EXPECT_EQ(decode_error_code(R"({"type":"chat_message","message":"a","x":{"k":1,"k":2}})"),
            error_code::kInvalidJson);
  decode_ok(R"({"type":"chat_message","message":"a","x":{"type":1},"y":[{"m":1},{"m":2}]})");
}

TEST(DecodeClientMessage, ManyNamesCostLittle) {
  // A 1 MiB object of distinct names, and one with a duplicate at the very end.
  std::string many = R"({"type":"chat_message","message":"a")";
  for (int i = 0; i < 60'000; ++i) many += ",\"k" + std::to_string(i) + "\":0";
  decode_ok(many + "}");
  EXPECT_EQ(decode_error_code(many + R"(,"k0":1})"), error_code::kInvalidJson);
}

TEST(DecodeClientMessage, JsonThatIsNotAnObjectHasNoType) {
  EXPECT_EQ(decode_error_code("[1,2]"), error_code::kUnknownType);
  EXPECT_EQ(decode_error_code("\"join_room\""), error_code::kUnknownType);
}

TEST(DecodeClientMessage, MissingOrUnknownTypeIsUnknownType) {
  EXPECT_EQ(decode_error_code(R"({"room":"a"})"), error_code::kUnknownType);
  EXPECT_EQ(decode_error_code(R"({"type":42})"), error_code::kUnknownType);
  EXPECT_EQ(decode_error_code(R"({"type":"dance"})"), error_code::kUnknownType);
}

TEST(DecodeClientMessage, MissingOrMistypedFieldsAreInvalidField) {
  EXPECT_EQ(decode_error_code(R"({"type":"join_room"})"), error_code::kInvalidField);
  EXPECT_EQ(decode_error_code(R"({"type":"join_room","room":7})"), error_code::kInvalidField);
  EXPECT_EQ(decode_error_code(R"({"type":"join_room","room":"a","username":[]})"),
            error_code::kInvalidField);
  EXPECT_EQ(decode_error_code(R"({"type":"chat_message"})"), error_code::kInvalidField);
  EXPECT_EQ(decode_error_code(R"({"type":"chat_message","message":"x","timestamp":"now"})"),
            error_code::kInvalidField);
  EXPECT_EQ(decode_error_code(R"({"type":"typing_start"})"), error_code::kInvalidField);
}

TEST(DecodeClientMessage, RefreshCarriesAToken) {
  const auto msg = decode_ok(R"({"type":"refresh","token":"a.b.c"})");
  EXPECT_EQ(std::get<Refresh>(msg).token, "a.b.c");
  EXPECT_EQ(decode_error_code(R"({"type":"refresh"})"), error_code::kInvalidField);
  EXPECT_EQ(decode_error_code(R"({"type":"refresh","token":null})"), error_code::kInvalidField);
  EXPECT_EQ(decode_error_code(R"({"type":"refresh","token":["a"]})"), error_code::kInvalidField);
  EXPECT_EQ(decode_error_code(R"({"type":"refresh","token":""})"), error_code::kInvalidField);
  const std::string longest(ProtocolLimits{}.max_token_chars, 't');
  decode_ok(R"({"type":"refresh","token":")" + longest + "\"}");
  EXPECT_EQ(decode_error_code(R"({"type":"refresh","token":")" + longest + "t\"}"),
            error_code::kInvalidField);
}

TEST(EncodeServerMessage, TokenRefreshedSaysWhenTheConnectionExpires) {
  EXPECT_EQ(encode_token_refreshed(1700000060000),
            R"({"type":"token_refreshed","expiresAt":1700000060000})");
  EXPECT_EQ(encode_token_refreshed(std::nullopt), R"({"type":"token_refreshed"})");
}

TEST(DecodeClientMessage, LengthLimitsCountCharactersNotBytes) {
  // 20 two-byte characters are a valid username; 21 are not.
  std::string twenty;
  for (int i = 0; i < 20; ++i) twenty += "é";
  decode_ok(R"({"type":"join_room","room":"a","username":")" + twenty + "\"}");
  EXPECT_EQ(decode_error_code(R"({"type":"join_room","room":"a","username":")" + twenty + "é\"}"),
            error_code::kInvalidField);
  EXPECT_EQ(decode_error_code(R"({"type":"join_room","room":")" + std::string(31, 'r') + "\"}"),
            error_code::kInvalidField);
  EXPECT_EQ(
      decode_error_code(R"({"type":"chat_message","message":")" + std::string(501, 'm') + "\"}"),
      error_code::kInvalidField);
  decode_ok(R"({"type":"chat_message","message":")" + std::string(500, 'm') + "\"}");
}

TEST(DecodeClientMessage, EmptyNamesAndBlankMessagesAreRefused) {
  EXPECT_EQ(decode_error_code(R"({"type":"join_room","room":"   ","username":"a"})"),
            error_code::kInvalidField);
  EXPECT_EQ(decode_error_code(R"({"type":"chat_message","message":" \n "})"),
            error_code::kInvalidField);
}

TEST(DecodeClientMessage, MarkupAndControlCharactersAreRefusedInNames) {
  for (const char* bad : {"<img>", "a&b", "say \\\"hi\\\"", "it's", "back`tick", "tab\\there"}) {
    EXPECT_EQ(decode_error_code(std::string(R"({"type":"join_room","room":"a","username":")") +
                                bad + "\"}"),
              error_code::kInvalidField)
        << bad;
  }
}

TEST(DecodeClientMessage, DeepNestingIsRefused) {
  std::string deep = R"({"type":"chat_message","message":"x","extra":)";
  for (int i = 0; i < 50; ++i) deep += "[";
  for (int i = 0; i < 50; ++i) deep += "]";
  deep += "}";
  EXPECT_EQ(decode_error_code(deep), error_code::kInvalidJson);
}

TEST(EncodeServerMessage, ChatMessageHasTheChaptersFieldsPlusRoomAndSeq) {
  const auto v = json::parse(
      encode_chat_message("general", "u-1", "alice", "hi \"there\"\n", 1700000000123, 7));
  EXPECT_EQ(v.at("type"), "chat_message");
  EXPECT_EQ(v.at("room"), "general");
  EXPECT_EQ(v.at("userId"), "u-1");
  EXPECT_EQ(v.at("username"), "alice");
  EXPECT_EQ(v.at("message"), "hi \"there\"\n");
  EXPECT_EQ(v.at("timestamp").to_number<std::int64_t>(), 1700000000123);
  EXPECT_EQ(v.at("seq").to_number<std::int64_t>(), 7);
}

TEST(EncodeServerMessage, UserListIsAnArrayOfIdAndUsername) {
  const auto v = json::parse(encode_user_list("r", {{"1", "a"}, {"2", "b"}}));
  EXPECT_EQ(v.at("type"), "user_list");
  EXPECT_EQ(v.at("room"), "r");
  const auto& users = v.at("users").as_array();
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[1].at("id"), "2");
  EXPECT_EQ(users[1].at("username"), "b");
  EXPECT_EQ(json::parse(encode_user_list("r", {})).at("users").as_array().size(), 0u);
}

TEST(EncodeServerMessage, OtherMessages) {
  EXPECT_EQ(json::parse(encode_connection_established("abc")).at("userId"), "abc");
  const auto sys = json::parse(encode_system_message("r", "Welcome to r!", 5));
  EXPECT_EQ(sys.at("type"), "system_message");
  EXPECT_EQ(sys.at("message"), "Welcome to r!");
  EXPECT_EQ(json::parse(encode_typing(false, "r", "1", "a")).at("type"), "typing_stop");
  const auto err = json::parse(encode_error("invalid_json", "bad"));
  EXPECT_EQ(err.at("type"), "error");
  EXPECT_EQ(err.at("message"), "bad");
  EXPECT_EQ(err.at("code"), "invalid_json");
  EXPECT_FALSE(err.as_object().contains("retryAfterMs"));
}

TEST(EncodeServerMessage, ARateLimitedErrorSaysHowLongToWait) {
  using std::chrono::milliseconds;
  const auto plain =
      json::parse(encode_error("rate_limited", "slow down", {}, "r1", milliseconds(1500)));
  EXPECT_EQ(plain.at("retryAfterMs"), 1500);
  EXPECT_EQ(plain.at("ref"), "r1");
  const auto message =
      json::parse(encode_message_error("rate_limited", "slow", "lobby", "m1", {}, milliseconds(7)));
  EXPECT_EQ(message.at("retryAfterMs"), 7);
  EXPECT_EQ(message.at("room"), "lobby");
  const auto direct =
      json::parse(encode_direct_error("rate_limited", "slow", "bob", "", {}, milliseconds(0)));
  EXPECT_EQ(direct.at("retryAfterMs"), 0);
  EXPECT_FALSE(direct.as_object().contains("id"));
}

}  // namespace
}  // namespace roomcast::chat
