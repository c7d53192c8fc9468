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

TEST(RoomAccess, AnonymousUsersOnlyWithoutRequireAuthAndClaimsLimitTokens) {
  const std::vector<std::string> claims{"board", "support:*"};
  EXPECT_EQ(room_access(false, nullptr, false, "board"), RoomAccess::kAllowed);
  EXPECT_EQ(room_access(false, nullptr, true, "board"), RoomAccess::kAuthenticationRequired);
  EXPECT_EQ(room_access(true, nullptr, true, "anything"), RoomAccess::kAllowed);
  EXPECT_EQ(room_access(true, &claims, true, "board"), RoomAccess::kAllowed);
  EXPECT_EQ(room_access(true, &claims, false, "support:7"), RoomAccess::kAllowed);
  EXPECT_EQ(room_access(true, &claims, true, "general"), RoomAccess::kForbidden);
  EXPECT_EQ(room_access(true, &claims, false, "general"), RoomAccess::kForbidden);
  const std::vector<std::string> none;
  EXPECT_EQ(room_access(true, &none, false, "board"), RoomAccess::kForbidden);
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
