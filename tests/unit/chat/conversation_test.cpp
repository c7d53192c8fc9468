// Conversation keys (chat/conversation.h): one per pair of users, the same whoever asks, never
// a room's name, and read back into the pair.
#include "chat/conversation.h"

#include <gtest/gtest.h>

#include "chat/protocol.h"

namespace roomcast::chat {
namespace {

TEST(ConversationKey, IsTheSameWhicheverUserAsks) {
  EXPECT_EQ(conversation_key("ann", "bob"), conversation_key("bob", "ann"));
  EXPECT_NE(conversation_key("ann", "bob"), conversation_key("ann", "cid"));
  EXPECT_EQ(conversation_key("ann", "ann"), "<dm>ann ann");  // notes to self
}

TEST(ConversationKey, NoTwoPairsShareOne) {
  // Ids have no spaces, so where one ends is never in doubt.
  EXPECT_NE(conversation_key("a", "b:c"), conversation_key("a:b", "c"));
  EXPECT_NE(conversation_key("ab", "c"), conversation_key("a", "bc"));
}

TEST(ConversationKey, IsNeverARoomName) {
  const std::string key = conversation_key("ann", "bob");
  EXPECT_TRUE(is_conversation(key));
  EXPECT_FALSE(is_conversation("lobby"));
  // What a client could name as a room is refused before it reaches a store.
  const ProtocolLimits limits;
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(check_room_name(key, limits)));
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(check_room_name("<dm>a b", limits)));
}

TEST(ConversationKey, GivesBackItsUsersAndEachOnesPeer) {
  const std::string key = conversation_key("bob-id", "ann-id");
  const auto users = conversation_users(key);
  ASSERT_TRUE(users.has_value());
  EXPECT_EQ(users->first, "ann-id");
  EXPECT_EQ(users->second, "bob-id");
  EXPECT_EQ(conversation_peer(key, "ann-id"), "bob-id");
  EXPECT_EQ(conversation_peer(key, "bob-id"), "ann-id");
  EXPECT_EQ(conversation_peer(conversation_key("me", "me"), "me"), "me");
  EXPECT_FALSE(conversation_users("lobby").has_value());
  EXPECT_EQ(conversation_peer("lobby", "ann-id"), "");
}

TEST(ConversationKey, UserIdsFollowOneRule) {
  EXPECT_FALSE(check_user_id("ann-id", 64).has_value());
  EXPECT_FALSE(check_user_id("3f2c1a9e-0000-4000-8000-000000000000", 64).has_value());
  EXPECT_TRUE(check_user_id("", 64).has_value());
  EXPECT_TRUE(check_user_id("a b", 64).has_value());
  EXPECT_TRUE(check_user_id("<dm>", 64).has_value());
  EXPECT_TRUE(check_user_id(std::string(65, 'x'), 64).has_value());
}

}  // namespace
}  // namespace roomcast::chat
