// SlotTable: a worker's connections, constructed in place in fixed-size blocks of slots,
// each slot with a generation that makes stale ids harmless.
//
// Why in place: an idle WebSocket costs little more than its Connection object, and
// one heap block per connection would add a malloc header and size-class rounding to each,
// plus an owning pointer in a separate index, and would scatter the long-lived objects among
// the short-lived allocations of handshakes, whose pages they then keep resident. Slots in
// blocks pay none of that (bench/OPTIMIZATIONS.md).
//
// Stability: blocks are never moved or freed while the table lives, so an element's address
// is valid until the element is destroyed (the worker's epoll events carry such addresses).
//
// Lifecycle of a slot: acquire() reserves a free one, construct() makes it live, retire()
// makes it unreachable by id and by for_each_live() while the object still exists (callers
// up the stack may be inside it), destroy() ends the object and frees the slot for reuse.
//
// Worker-affine: not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace roomcast::net {

template <typename T>
class SlotTable {
 public:
  // 256 slots a block: large enough that the block vector stays short, small enough that
  // the unused tail of the last block is a few tens of kilobytes at most.
  static constexpr std::uint32_t kSlotsPerBlock = 256;
  // Generations wrap at 24 bits, the room a connection id has for them.
  static constexpr std::uint32_t kGenerationMask = 0xFFFFFF;

  SlotTable() = default;
  ~SlotTable() { clear(); }

  SlotTable(const SlotTable&) = delete;
  SlotTable& operator=(const SlotTable&) = delete;

  // Reserves a free slot (the most recently freed first, which is warm in the cache) and
  // returns its index. construct() must follow.
  std::uint32_t acquire() {
    if (free_.empty()) {
      const auto first = static_cast<std::uint32_t>(blocks_.size() * kSlotsPerBlock);
      blocks_.push_back(std::make_unique<Slot[]>(kSlotsPerBlock));
      // Pushed in reverse, so slots are handed out in index order.
      for (std::uint32_t i = kSlotsPerBlock; i > 0; --i) free_.push_back(first + i - 1);
    }
    const std::uint32_t index = free_.back();
    free_.pop_back();
    return index;
  }

  // The slot's generation: changes each time an element of the slot is retired.
  std::uint32_t generation(std::uint32_t index) const { return slot(index).generation; }

  template <typename... Args>
  T& construct(std::uint32_t index, Args&&... args) {
    Slot& s = slot(index);
    new (&s.value) T(std::forward<Args>(args)...);
    s.state = State::kLive;
    return s.value;
  }

  // The live element at `index` whose generation is `generation`, or null.
  T* find(std::uint32_t index, std::uint32_t generation) {
    if (index >= blocks_.size() * kSlotsPerBlock) return nullptr;
    Slot& s = slot(index);
    return s.state == State::kLive && s.generation == generation ? &s.value : nullptr;
  }

  // Makes a live element unreachable (find() and for_each_live() skip it) without
  // destroying it. Returns false if it was not live.
  bool retire(std::uint32_t index) {
    if (index >= blocks_.size() * kSlotsPerBlock) return false;
    Slot& s = slot(index);
    if (s.state != State::kLive) return false;
    s.state = State::kRetired;
    s.generation = (s.generation + 1) & kGenerationMask;
    return true;
  }

  // Destroys a retired element and frees its slot.
  void destroy(std::uint32_t index) {
    Slot& s = slot(index);
    if (s.state != State::kRetired) return;
    s.value.~T();
    s.state = State::kFree;
    free_.push_back(index);
  }

  // How many slots the table has (live, retired and free): slot indexes are below it.
  std::size_t slots() const { return blocks_.size() * kSlotsPerBlock; }

  // Calls f(T&) for each live element. f may retire elements (including the current
  // one) but must not construct or destroy any.
  template <typename F>
  void for_each_live(F&& f) {
    for_each_live_in(0, slots(), f);
  }

  // The same, for the live elements of the slots [begin, end) (end at most slots()).
  template <typename F>
  void for_each_live_in(std::size_t begin, std::size_t end, F&& f) {
    for (std::size_t i = begin; i < end; ++i) {
      Slot& s = slot(static_cast<std::uint32_t>(i));
      if (s.state == State::kLive) f(s.value);
    }
  }

  // Destroys every element, live or retired.
  void clear() {
    const std::size_t slots = blocks_.size() * kSlotsPerBlock;
    for (std::size_t i = 0; i < slots; ++i) {
      Slot& s = slot(static_cast<std::uint32_t>(i));
      if (s.state != State::kFree) s.value.~T();
      s.state = State::kFree;
    }
    blocks_.clear();
    free_.clear();
  }

 private:
  enum class State : std::uint8_t { kFree, kLive, kRetired };
  struct Slot {
    Slot() {}  // NOLINT: `value` is constructed by construct(), not here
    ~Slot() {}  // NOLINT: and destroyed by destroy() or clear()
    union {
      T value;
    };
    std::uint32_t generation = 0;
    State state = State::kFree;
  };

  Slot& slot(std::uint32_t index) {
    return blocks_[index / kSlotsPerBlock][index % kSlotsPerBlock];
  }
  const Slot& slot(std::uint32_t index) const {
    return blocks_[index / kSlotsPerBlock][index % kSlotsPerBlock];
  }

  std::vector<std::unique_ptr<Slot[]>> blocks_;
  std::vector<std::uint32_t> free_;
};

}  // namespace roomcast::net
