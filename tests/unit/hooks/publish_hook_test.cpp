// The publish hook's answer shape (HttpPublishHook::read_verdict): allow, allow with a rewrite
// checked by a client's rules, deny with a reason made safe to show; anything else is no
// verdict (the failure policy decides, tested end to end in test_publish_hook.py).
#include "hooks/publish_hook.h"

#include <gtest/gtest.h>

#include <string>

namespace roomcast::hooks {
namespace {

const chat::ProtocolLimits kLimits{};

chat::PublishVerdict verdict_of(std::string_view body, bool event = false) {
  auto read = HttpPublishHook::read_verdict(body, event, kLimits);
  const auto* verdict = std::get_if<chat::PublishVerdict>(&read);
  EXPECT_NE(verdict, nullptr) << std::get<std::string>(read);
  return verdict != nullptr ? *verdict : chat::PublishVerdict{};
}

std::string failure_of(std::string_view body, bool event = false) {
  auto read = HttpPublishHook::read_verdict(body, event, kLimits);
  const auto* why = std::get_if<std::string>(&read);
  EXPECT_NE(why, nullptr) << body;
  return why != nullptr ? *why : std::string();
}

TEST(PublishHookVerdict, AllowAndAllowWithARewrite) {
  auto v = verdict_of(R"({"result":"allow"})");
  EXPECT_TRUE(v.error_code.empty());
  EXPECT_FALSE(v.rewritten);
  v = verdict_of(R"({"result":"allow","message":null})");
  EXPECT_FALSE(v.rewritten);
  v = verdict_of(R"({"result":"allow","message":"nice words"})");
  EXPECT_TRUE(v.error_code.empty());
  EXPECT_EQ(v.rewritten, "nice words");
  // An app event's answer may allow, not rewrite.
  EXPECT_TRUE(verdict_of(R"({"result":"allow"})", /*event=*/true).error_code.empty());
}

TEST(PublishHookVerdict, ARewriteBreakingAClientsRulesIsNoVerdict) {
  EXPECT_NE(failure_of(R"({"result":"allow","message":"  "})").find("rules"), std::string::npos);
  EXPECT_NE(
      failure_of(R"({"result":"allow","message":")" + std::string(501, 'x') + R"("})").find("500"),
      std::string::npos);
  EXPECT_NE(failure_of(R"({"result":"allow","message":7})").find("not a string"),
            std::string::npos);
  EXPECT_NE(failure_of(R"({"result":"allow","message":"x"})", /*event=*/true).find("app event"),
            std::string::npos);
}

TEST(PublishHookVerdict, ADenialCarriesItsReasonOnOneBoundedLine) {
  auto v = verdict_of(R"({"result":"deny","reason":"no\nspam\u0007 here"})");
  EXPECT_EQ(v.error_code, "denied");
  EXPECT_EQ(v.reason, "nospam here");
  v = verdict_of(R"({"result":"deny"})");
  EXPECT_EQ(v.reason, "Refused by the server's publish policy");
  v = verdict_of(R"({"result":"deny","reason":"\n"})");
  EXPECT_EQ(v.reason, "Refused by the server's publish policy");
  // 300 two-byte characters: cut to at most 200 bytes, between characters.
  std::string long_reason;
  for (int i = 0; i < 300; ++i) long_reason += "\xc3\xa9";
  v = verdict_of(R"({"result":"deny","reason":")" + long_reason + R"("})");
  EXPECT_EQ(v.reason.size(), 200u);
  EXPECT_EQ(v.reason, long_reason.substr(0, 200));
  EXPECT_NE(failure_of(R"({"result":"deny","reason":5})").find("reason"), std::string::npos);
}

TEST(PublishHookVerdict, AnythingElseIsNoVerdict) {
  for (const std::string_view body : {"", "not json", "[]", "{}", R"({"result":true})",
                                      R"({"result":"maybe"})", R"({"result":"ALLOW"})"}) {
    EXPECT_FALSE(failure_of(body).empty()) << body;
  }
}

}  // namespace
}  // namespace roomcast::hooks
