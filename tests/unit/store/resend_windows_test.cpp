#include "store/resend_windows.h"

#include <gtest/gtest.h>

namespace roomcast::store {
namespace {

using Seqs = std::vector<std::uint64_t>;

ResendWindows::Kept kept(std::uint64_t seq, std::string_view id, std::int64_t ts = 1000) {
  return {seq, ts, "name:ann", id};
}

// As the store fills a window: started, then its kept rows added, oldest first.
void fill(ResendWindows& windows, std::string_view room,
          std::initializer_list<ResendWindows::Kept> rows) {
  windows.start(room);
  for (const auto& row : rows) windows.add(room, row, 0);
}

TEST(ResendWindows, FindsAKeptIdOnlyForItsSenderAndRoom) {
  ResendWindows windows(100);
  EXPECT_FALSE(windows.holds("r"));
  fill(windows, "r", {kept(1, "a"), kept(2, "b")});
  fill(windows, "s", {});
  ASSERT_TRUE(windows.holds("r"));
  EXPECT_EQ(windows.candidates("r", "name:ann", "b", 0), Seqs{2});
  EXPECT_EQ(windows.candidates("r", "name:bob", "b", 0), Seqs{});
  EXPECT_EQ(windows.candidates("s", "name:ann", "b", 0), Seqs{});
  // The pair is hashed, not the two strings run together.
  windows.add("r", {3, 1000, "name:an", "nb"}, 0);
  EXPECT_EQ(windows.candidates("r", "name:ann", "b", 0), Seqs{2});
  EXPECT_EQ(windows.candidates("r", "name:an", "nb", 0), Seqs{3});
  EXPECT_EQ(windows.ids(), 3u);
}

TEST(ResendWindows, ForgetsWhatRetentionDeletesByCountAndByAge) {
  ResendWindows windows(100);
  fill(windows, "r", {kept(1, "a", 1000), kept(2, "b", 2000)});
  windows.add("r", kept(3, "c", 3000), 0);
  windows.drop_through("r", 1);  // the trim deleted seq 1
  EXPECT_EQ(windows.candidates("r", "name:ann", "a", 0), Seqs{});
  EXPECT_EQ(windows.candidates("r", "name:ann", "b", 0), Seqs{2});
  // Past the age bound an id is not a candidate, and the next add forgets it.
  EXPECT_EQ(windows.candidates("r", "name:ann", "b", 2001), Seqs{});
  EXPECT_EQ(windows.candidates("r", "name:ann", "c", 2001), Seqs{3});
  windows.add("r", kept(4, "d", 4000), 2001);
  EXPECT_EQ(windows.ids(), 2u);
  EXPECT_EQ(windows.candidates("r", "name:ann", "b", 0), Seqs{});
}

TEST(ResendWindows, TheSameIdTwiceGivesBothNewestFirst) {
  // Two rows of one sender and id: a resend that came after its first had expired by age.
  ResendWindows windows(100);
  fill(windows, "r", {kept(1, "a", 1000)});
  windows.add("r", kept(5, "a", 9000), 0);
  EXPECT_EQ(windows.candidates("r", "name:ann", "a", 0), (Seqs{5, 1}));
  windows.drop_through("r", 1);
  EXPECT_EQ(windows.candidates("r", "name:ann", "a", 0), Seqs{5});
}

TEST(ResendWindows, PastTheLimitTheRoomsTouchedLongestAgoGo) {
  ResendWindows windows(4);
  fill(windows, "a", {kept(1, "x"), kept(2, "y")});
  fill(windows, "b", {kept(1, "x")});
  windows.candidates("a", "name:ann", "x", 0);  // a is now the most recent
  fill(windows, "c", {kept(1, "x"), kept(2, "y")});  // 5 ids: b goes
  EXPECT_TRUE(windows.holds("a"));
  EXPECT_FALSE(windows.holds("b"));
  EXPECT_TRUE(windows.holds("c"));
  EXPECT_EQ(windows.ids(), 4u);
  // A room alone over the limit stays: the one in hand is never dropped.
  fill(windows, "d", {kept(1, "1"), kept(2, "2"), kept(3, "3"), kept(4, "4"), kept(5, "5")});
  EXPECT_TRUE(windows.holds("d"));
  EXPECT_FALSE(windows.holds("a"));
  EXPECT_FALSE(windows.holds("c"));
  EXPECT_EQ(windows.ids(), 5u);
  windows.drop("d");
  EXPECT_EQ(windows.ids(), 0u);
  fill(windows, "e", {kept(1, "x")});
  windows.clear();
  EXPECT_FALSE(windows.holds("e"));
  EXPECT_EQ(windows.ids(), 0u);
}

}  // namespace
}  // namespace roomcast::store
