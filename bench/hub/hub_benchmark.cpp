// The chat core alone: chat messages per second through chat::Hub with 1 and 2 threads, in
// rooms of 2 (one-to-one messaging) and rooms of 100, with a Sink that only counts. No
// sockets, no store (history in memory), rate limits off. Each thread has its own
// connections in its own rooms, so threads share nothing but the Hub: what a second thread
// adds or takes away is the core's own scaling (the target of the worker-affine core,
// issue 13). Results: bench/HUB.md.
//
//   build/bench/hub/hub_benchmark                        # every case
//   build/bench/hub/hub_benchmark --benchmark_filter=/2/  # rooms of 2 only
//   build/bench/hub/hub_benchmark --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "chat/hub.h"

namespace {

using roomcast::chat::ConnectionId;

// Counts what the Hub hands out; the counting is the whole cost of "delivery".
class CountingSink final : public roomcast::chat::Sink {
 public:
  void send(ConnectionId, std::string) override { sent.fetch_add(1, std::memory_order_relaxed); }
  void broadcast(const roomcast::chat::MemberSnapshot& members, std::string,
                 ConnectionId except) override {
    const std::size_t n = members->size() - (except != roomcast::chat::kNoConnection ? 1 : 0);
    delivered.fetch_add(n, std::memory_order_relaxed);
  }
  void close(ConnectionId, std::uint16_t, std::string) override {}

  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> delivered{0};
};

// One Hub for the whole program, shared by the benchmark's threads.
struct Core {
  Core() : hub(sink, clock, options()) {}
  static roomcast::chat::HubOptions options() {
    roomcast::chat::HubOptions o;
    o.message_rate.max_events = 0;
    o.signal_rate.max_events = 0;
    o.address_message_rate.max_events = 0;
    o.address_signal_rate.max_events = 0;
    o.max_rooms_per_connection = 0;
    o.history_size = 100;  // the window is kept, not what is measured
    return o;
  }
  CountingSink sink;
  roomcast::base::SystemClock clock;
  roomcast::chat::Hub hub;
  std::atomic<ConnectionId> next_id{1};
  std::atomic<std::uint64_t> next_run{1};
};

Core& core() {
  static Core instance;
  return instance;
}

// state.range(0): members per room. Each thread makes 20 rooms of that size and sends from
// the first member of each in turn.
void BM_ChatMessages(benchmark::State& state) {
  Core& c = core();
  const auto members = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t kRooms = 20;
  const std::uint64_t run = c.next_run.fetch_add(1);
  std::vector<ConnectionId> connections;
  std::vector<std::pair<ConnectionId, std::string>> senders;
  for (std::size_t r = 0; r < kRooms; ++r) {
    const std::string room = "r" + std::to_string(run) + "-" + std::to_string(r);
    for (std::size_t m = 0; m < members; ++m) {
      const ConnectionId id = c.next_id.fetch_add(1);
      c.hub.connect(id);
      c.hub.receive(id, R"({"type":"join_room","room":")" + room + R"(","username":"u)" +
                            std::to_string(m) + "\"}");
      connections.push_back(id);
      if (m == 0) {
        senders.emplace_back(id, R"({"type":"chat_message","room":")" + room +
                                     R"(","message":"hello, how are you today?"})");
      }
    }
  }
  const std::uint64_t delivered_before = c.sink.delivered.load();
  std::size_t next = 0;
  for (auto _ : state) {
    const auto& [who, text] = senders[next];
    c.hub.receive(who, text);
    next = next + 1 == senders.size() ? 0 : next + 1;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  // Every thread's deliveries: the counter is shared, so thread 0 reports the total.
  if (state.thread_index() == 0) {
    state.counters["deliveries"] =
        benchmark::Counter(static_cast<double>(c.sink.delivered.load() - delivered_before),
                           benchmark::Counter::kIsRate);
  }
  for (const ConnectionId id : connections) c.hub.disconnect(id);
}

// 1 and 2 threads everywhere; on a bigger machine also 4, 8, ... up to its hardware threads
// (one per worker is what the server runs by default).
void thread_counts(benchmark::internal::Benchmark* b) {
  const unsigned cores = std::max(2u, std::thread::hardware_concurrency());
  for (unsigned threads = 1; threads <= cores; threads *= 2) {
    b->Threads(static_cast<int>(threads));
  }
}

BENCHMARK(BM_ChatMessages)->Arg(2)->Arg(100)->Apply(thread_counts)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
