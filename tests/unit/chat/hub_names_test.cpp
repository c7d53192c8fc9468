// The Hub's rule for names that look alike (issue 21 item 7): a join is refused when someone
// else in the room goes by a name of the same UTS #39 skeleton ("ann" and Cyrillic "аnn"),
// and taken where nobody does; names are kept in NFC. (The character rules of a single name
// are the protocol's: unicode_names_test.cpp.)
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "chat/hub.h"
#include "store/memory_store.h"
#include "support/client_messages.h"
#include "support/recording_sink.h"

namespace roomcast::chat {
namespace {

// U+0430 CYRILLIC SMALL LETTER A: "аnn" looks like "ann".
constexpr std::string_view kCyrillicAnn = "\u0430nn";

class HubNamesTest : public ::testing::Test {
 protected:
  void join(ConnectionId who, std::string_view room, std::string_view username = "") {
    hub.receive(who, test_support::join_json(room, username));
  }
  // The error replies `who` got since the last call, as "code: message".
  std::vector<std::string> errors(ConnectionId who) {
    std::vector<std::string> out;
    for (const auto& e : sink.take(who, "error")) {
      out.push_back(std::string(e.at("code").as_string()) + ": " +
                    std::string(e.at("message").as_string()));
    }
    return out;
  }
  // The rooms `who` was welcomed to since the last call.
  std::vector<std::string> welcomed(ConnectionId who) {
    std::vector<std::string> rooms;
    for (const auto& m : sink.take(who, "system_message")) {
      const std::string text(m.at("message").as_string());
      if (text.starts_with("Welcome to ")) rooms.emplace_back(m.at("room").as_string());
    }
    return rooms;
  }
  static std::string lookalike_error(std::string_view room) {
    return "invalid_field: Field 'username' looks like the name of someone else in room '" +
           std::string(room) + "'; choose another";
  }

  test_support::RecordingSink sink;
  base::ManualClock clock;
  store::MemoryStore store{clock, HubOptions{}.retention()};
  Hub hub{sink, clock, {}, store};
};

TEST_F(HubNamesTest, ALookAlikeOfAMembersNameIsRefusedInThatRoomOnly) {
  hub.connect(1);
  hub.connect(2);
  join(1, "general", "ann");
  sink.clear();
  join(2, "general", kCyrillicAnn);
  EXPECT_EQ(errors(2), std::vector<std::string>{lookalike_error("general")});
  EXPECT_TRUE(welcomed(2).empty());
  EXPECT_TRUE(sink.take(1, "system_message").empty());  // ann heard of no "аnn joined"
  // Where nobody looks the same, the name is taken (and names the connection)...
  join(2, "random", kCyrillicAnn);
  EXPECT_EQ(welcomed(2), std::vector<std::string>{"random"});
  // ...and it stays refused in general while ann is there, from its cached skeleton.
  join(2, "general");
  EXPECT_EQ(errors(2), std::vector<std::string>{lookalike_error("general")});
  hub.receive(1, R"({"type":"leave_room","room":"general"})");
  join(2, "general");
  EXPECT_TRUE(errors(2).empty());
  EXPECT_EQ(welcomed(2), std::vector<std::string>{"general"});
  // Now ann is the look-alike of someone present.
  join(1, "general");
  EXPECT_EQ(errors(1), std::vector<std::string>{lookalike_error("general")});
  EXPECT_EQ(hub.stats().errors.at("invalid_field"), 3u);
}

TEST_F(HubNamesTest, ARefusedFirstJoinLeavesTheConnectionFreeToPickAnotherName) {
  hub.connect(1);
  hub.connect(2);
  join(1, "general", "bob1");
  join(2, "general", "bobl");  // UTS #39: "1" and "l" are confusable
  EXPECT_EQ(errors(2), std::vector<std::string>{lookalike_error("general")});
  join(2, "general", "robert");
  EXPECT_TRUE(errors(2).empty());
  EXPECT_EQ(welcomed(2), std::vector<std::string>{"general"});
}

TEST_F(HubNamesTest, InvisibleCharactersAndOtherSpacesDoNotMakeANameNew) {
  hub.connect(1);
  hub.connect(2);
  hub.connect(3);
  join(1, "general", "ann lee");
  join(2, "general", "ann\\u200b lee");  // a zero-width space inside
  join(3, "general", "ann\\u3000lee");  // an ideographic space instead of a space
  EXPECT_EQ(errors(2), std::vector<std::string>{lookalike_error("general")});
  EXPECT_EQ(errors(3), std::vector<std::string>{lookalike_error("general")});
}

TEST_F(HubNamesTest, AnAnonymousUserIsKnownByNameSoTheSameNameIsTheSameUser) {
  // A second tab, or a reconnect before the old connection is noticed gone.
  hub.connect(1);
  hub.connect(2);
  join(1, "general", "ann");
  join(2, "general", "ann");
  EXPECT_TRUE(errors(2).empty());
  EXPECT_EQ(welcomed(2), std::vector<std::string>{"general"});
}

TEST_F(HubNamesTest, NobodyPassesForATokensUserByTakingTheName) {
  hub.connect(1, {Identity{"user-ann", "ann", std::nullopt, 0}, ""});
  hub.connect(2, {Identity{"user-ann", "ann", std::nullopt, 0}, ""});  // ann's other tab
  hub.connect(3);
  hub.connect(4);
  hub.connect(5, {Identity{"user-other", std::string(kCyrillicAnn), std::nullopt, 0}, ""});
  join(1, "general");
  join(2, "general");
  EXPECT_TRUE(errors(2).empty());
  join(3, "general", "ann");  // anonymous, the very same name
  join(4, "general", kCyrillicAnn);
  join(5, "general");  // another token's user whose name looks the same
  EXPECT_EQ(errors(3), std::vector<std::string>{lookalike_error("general")});
  EXPECT_EQ(errors(4), std::vector<std::string>{lookalike_error("general")});
  EXPECT_EQ(errors(5), std::vector<std::string>{lookalike_error("general")});
}

TEST_F(HubNamesTest, NamesAreOneNameWhicheverWayTheyAreComposed) {
  hub.connect(1);
  join(1, "general", "e\\u0301");
  join(1, "random", "\\u00e9");  // the same name: no username_mismatch
  EXPECT_TRUE(errors(1).empty());
  EXPECT_EQ(welcomed(1), (std::vector<std::string>{"general", "random"}));
  hub.connect(2);
  join(2, "general", "\\u00e9");  // anonymous and the same name: the same user
  EXPECT_TRUE(errors(2).empty());
  hub.receive(1, R"({"type":"chat_message","room":"general","message":"hi"})");
  const auto chats = sink.take(2, "chat_message");
  ASSERT_EQ(chats.size(), 1u);
  EXPECT_EQ(chats[0].at("username"), "\u00e9");  // what everyone sees is the NFC form
}

TEST_F(HubNamesTest, ATokensNameIsKeptInNfc) {
  hub.connect(1, {Identity{"user-zoe", "Zoe\u0308", std::nullopt, 0}, ""});
  join(1, "general", "Zo\\u00eb");  // the same name as the token's: no username_mismatch
  EXPECT_TRUE(errors(1).empty());
  hub.connect(2);
  join(2, "general", "someone");
  clock.advance(std::chrono::seconds(1));
  hub.tick();
  const auto lists = sink.take(2, "user_list");
  ASSERT_FALSE(lists.empty());
  EXPECT_EQ(lists.back().at("users").as_array().at(0).at("username"), "Zo\u00eb");
}

}  // namespace
}  // namespace roomcast::chat
