// Specification of SlotTable: in-place storage of a worker's connections, by slot and
// generation.
#include "net/slot_table.h"

#include <gtest/gtest.h>

#include <vector>

namespace roomcast::net {
namespace {

// Counts its live instances, so the tests see exactly when the table constructs and
// destroys.
struct Tracked {
  explicit Tracked(int v, int& live) : value(v), live_count(live) { ++live_count; }
  ~Tracked() { --live_count; }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;
  int value;
  int& live_count;
};

TEST(SlotTable, HandsOutSlotsInIndexOrder) {
  SlotTable<int> table;
  EXPECT_EQ(table.acquire(), 0u);
  EXPECT_EQ(table.acquire(), 1u);
  EXPECT_EQ(table.acquire(), 2u);
}

TEST(SlotTable, FindsALiveElementByIndexAndGeneration) {
  int live = 0;
  SlotTable<Tracked> table;
  const std::uint32_t slot = table.acquire();
  const std::uint32_t generation = table.generation(slot);
  table.construct(slot, 42, live);
  ASSERT_NE(table.find(slot, generation), nullptr);
  EXPECT_EQ(table.find(slot, generation)->value, 42);
  EXPECT_EQ(table.find(slot, generation + 1), nullptr);
  EXPECT_EQ(table.find(slot + 1, generation), nullptr);
  EXPECT_EQ(table.find(1'000'000, generation), nullptr);
  EXPECT_EQ(live, 1);
}

TEST(SlotTable, ARetiredElementIsUnreachableButAliveUntilDestroyed) {
  int live = 0;
  SlotTable<Tracked> table;
  const std::uint32_t slot = table.acquire();
  const std::uint32_t generation = table.generation(slot);
  Tracked& element = table.construct(slot, 7, live);

  EXPECT_TRUE(table.retire(slot));
  EXPECT_FALSE(table.retire(slot));  // only once
  EXPECT_EQ(table.find(slot, generation), nullptr);
  int visited = 0;
  table.for_each_live([&](Tracked&) { ++visited; });
  EXPECT_EQ(visited, 0);
  EXPECT_EQ(live, 1);  // callers up the stack may still be inside it
  EXPECT_EQ(element.value, 7);

  table.destroy(slot);
  EXPECT_EQ(live, 0);
}

TEST(SlotTable, AReusedSlotHasANewGenerationSoOldIdsAreStale) {
  int live = 0;
  SlotTable<Tracked> table;
  const std::uint32_t slot = table.acquire();
  const std::uint32_t old_generation = table.generation(slot);
  table.construct(slot, 1, live);
  table.retire(slot);
  table.destroy(slot);

  EXPECT_EQ(table.acquire(), slot);  // the most recently freed slot comes back first
  const std::uint32_t new_generation = table.generation(slot);
  EXPECT_NE(new_generation, old_generation);
  table.construct(slot, 2, live);
  EXPECT_EQ(table.find(slot, old_generation), nullptr);
  ASSERT_NE(table.find(slot, new_generation), nullptr);
  EXPECT_EQ(table.find(slot, new_generation)->value, 2);
}

TEST(SlotTable, DestroyIgnoresAnElementThatWasNotRetired) {
  int live = 0;
  SlotTable<Tracked> table;
  const std::uint32_t slot = table.acquire();
  table.construct(slot, 1, live);
  table.destroy(slot);
  EXPECT_EQ(live, 1);
  EXPECT_NE(table.find(slot, table.generation(slot)), nullptr);
}

TEST(SlotTable, AddressesStayPutWhileTheTableGrows) {
  int live = 0;
  SlotTable<Tracked> table;
  std::vector<Tracked*> addresses;
  const std::uint32_t count = 3 * SlotTable<Tracked>::kSlotsPerBlock + 1;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint32_t slot = table.acquire();
    addresses.push_back(&table.construct(slot, static_cast<int>(slot), live));
  }
  for (std::uint32_t i = 0; i < count; ++i) {
    EXPECT_EQ(table.find(i, table.generation(i)), addresses[i]);
    EXPECT_EQ(addresses[i]->value, static_cast<int>(i));
  }
  EXPECT_EQ(live, static_cast<int>(count));
}

TEST(SlotTable, ForEachLiveMayRetireTheElementItVisits) {
  int live = 0;
  SlotTable<Tracked> table;
  for (int i = 0; i < 4; ++i) table.construct(table.acquire(), i, live);
  std::vector<int> seen;
  table.for_each_live([&](Tracked& t) {
    seen.push_back(t.value);
    if (t.value % 2 == 0) table.retire(static_cast<std::uint32_t>(t.value));
  });
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3}));
  std::vector<int> still_live;
  table.for_each_live([&](Tracked& t) { still_live.push_back(t.value); });
  EXPECT_EQ(still_live, (std::vector<int>{1, 3}));
  EXPECT_EQ(live, 4);
}

// The sweep walks the table in slices (net/sweep_schedule.h): a range of slots, live ones
// only, and slots() bounds every index the table has handed out.
TEST(SlotTable, ForEachLiveInVisitsTheLiveElementsOfARangeOfSlots) {
  int live = 0;
  SlotTable<Tracked> table;
  EXPECT_EQ(table.slots(), 0u);
  for (int i = 0; i < 6; ++i) table.construct(table.acquire(), i, live);
  EXPECT_EQ(table.slots(), SlotTable<Tracked>::kSlotsPerBlock);
  table.retire(3);
  std::vector<int> seen;
  table.for_each_live_in(2, 5, [&](Tracked& t) { seen.push_back(t.value); });
  EXPECT_EQ(seen, (std::vector<int>{2, 4}));
  seen.clear();
  table.for_each_live_in(5, table.slots(), [&](Tracked& t) { seen.push_back(t.value); });
  EXPECT_EQ(seen, (std::vector<int>{5}));
}

TEST(SlotTable, ClearDestroysLiveAndRetiredElements) {
  int live = 0;
  {
    SlotTable<Tracked> table;
    for (int i = 0; i < 3; ++i) table.construct(table.acquire(), i, live);
    table.retire(1);
    EXPECT_EQ(live, 3);
  }
  EXPECT_EQ(live, 0);
}

}  // namespace
}  // namespace roomcast::net
