#include "chat/authenticator.h"

#include <gtest/gtest.h>

namespace roomcast::chat {
namespace {

TEST(RoomsAllow, ExactNamesAndPrefixes) {
  const std::vector<std::string> patterns{"general", "support:*"};
  EXPECT_TRUE(rooms_allow(patterns, "general"));
  EXPECT_TRUE(rooms_allow(patterns, "support:42"));
  EXPECT_TRUE(rooms_allow(patterns, "support:"));
  EXPECT_FALSE(rooms_allow(patterns, "general2"));
  EXPECT_FALSE(rooms_allow(patterns, "support"));
  EXPECT_FALSE(rooms_allow(patterns, "random"));
  EXPECT_TRUE(rooms_allow({"*"}, "anything"));
  EXPECT_FALSE(rooms_allow({}, "general"));
}

TEST(CheckIdentity, IdsAndNamesFollowTheChatsRules) {
  const ProtocolLimits limits;
  EXPECT_EQ(check_identity({"auth0|abc-123", "alice", std::nullopt, 0}, limits), std::nullopt);
  EXPECT_NE(check_identity({"", "alice", std::nullopt, 0}, limits), std::nullopt);
  EXPECT_NE(
      check_identity({std::string(kMaxUserIdChars + 1, 'a'), "alice", std::nullopt, 0}, limits),
      std::nullopt);
  EXPECT_EQ(check_identity({std::string(kMaxUserIdChars, 'a'), "alice", std::nullopt, 0}, limits),
            std::nullopt);
  EXPECT_NE(check_identity({"a b", "alice", std::nullopt, 0}, limits), std::nullopt);
  EXPECT_NE(check_identity({"<img>", "alice", std::nullopt, 0}, limits), std::nullopt);
  EXPECT_NE(check_identity({"u1", "", std::nullopt, 0}, limits), std::nullopt);
  EXPECT_NE(check_identity({"u1", " alice", std::nullopt, 0}, limits), std::nullopt);
  EXPECT_NE(check_identity({"u1", "al<i>ce", std::nullopt, 0}, limits), std::nullopt);
  EXPECT_NE(check_identity({"u1", std::string(21, 'a'), std::nullopt, 0}, limits), std::nullopt);
}

}  // namespace
}  // namespace roomcast::chat
