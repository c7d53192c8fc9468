// The chat core alone: chat messages per second through the chat core with 1 and 2 threads,
// in rooms of 2 (one-to-one messaging) and rooms of 100, with Sinks that only count. No
// sockets; history in memory (store::MemoryStore), rate limits off. As in the server, each
// thread is a worker with its own Hub, joined to the others by a chat::Exchange, and drains
// its Port after every message (a worker drains once per batch: this is the worst case). Each
// thread has its own connections in its own rooms, so what a second thread adds or takes away
// is the core's own scaling (issue 13). Results: bench/HUB.md.
//
//   build/bench/hub/hub_benchmark                        # every case
//   build/bench/hub/hub_benchmark --benchmark_filter=/2/  # rooms of 2 only
//   build/bench/hub/hub_benchmark --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "chat/exchange.h"
#include "chat/hub.h"
#include "store/memory_store.h"

namespace {

using roomcast::chat::ConnectionId;

// Counts what a Hub hands out; the counting is the whole cost of "delivery".
class CountingSink final : public roomcast::chat::Sink {
 public:
  void send(ConnectionId, std::string) override { sent.fetch_add(1, std::memory_order_relaxed); }
  void broadcast(const roomcast::chat::MemberSnapshot& members, std::string,
                 ConnectionId except) override {
    const std::size_t n = members->size() - (except != roomcast::chat::kNoConnection ? 1 : 0);
    delivered.fetch_add(n, std::memory_order_relaxed);
  }
  void broadcast_binary(const roomcast::chat::MemberSnapshot& members, std::string_view,
                        ConnectionId except) override {
    const std::size_t n = members->size() - (except != roomcast::chat::kNoConnection ? 1 : 0);
    delivered.fetch_add(n, std::memory_order_relaxed);
  }
  void close(ConnectionId, std::uint16_t, std::string) override {}
  void hold_reading(ConnectionId, bool) override {}  // the benchmark's senders never wait

  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> delivered{0};
};

unsigned max_threads() {
  return std::max(2u, std::thread::hardware_concurrency());
}

// The chat core of a server with one worker per possible benchmark thread, for the whole
// program: thread i drives Hub i.
struct Core {
  Core()
      : store(clock, options().retention()),
        exchange(
            {max_threads(), [](ConnectionId id) { return (id >> 56) - 1; }, options().history_size},
            store, nullptr),
        budgets(roomcast::chat::rate_policies(options()), clock),
        sinks(max_threads()) {
    for (unsigned i = 0; i < max_threads(); ++i) {
      auto& port = exchange.port(i);
      hubs.push_back(std::make_unique<roomcast::chat::Hub>(sinks[i], clock, options(), port, &port,
                                                           nullptr, &budgets));
    }
  }
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
  std::uint64_t delivered() const {
    std::uint64_t total = 0;
    for (const auto& sink : sinks) total += sink.delivered.load();
    return total;
  }
  roomcast::base::SystemClock clock;
  roomcast::store::MemoryStore store;
  roomcast::chat::Exchange exchange;
  roomcast::chat::RateBudgets budgets;
  std::deque<CountingSink> sinks;  // a deque: sinks never move
  std::vector<std::unique_ptr<roomcast::chat::Hub>> hubs;  // destroyed before the Exchange
  std::atomic<std::uint32_t> next_id{1};
  std::atomic<std::uint64_t> next_run{1};
};

Core& core() {
  static Core instance;
  return instance;
}

// state.range(0): members per room. Each thread makes 20 rooms of that size on its own Hub and
// sends from the first member of each in turn.
void BM_ChatMessages(benchmark::State& state) {
  Core& c = core();
  const auto worker = static_cast<std::size_t>(state.thread_index());
  roomcast::chat::Hub& hub = *c.hubs[worker];
  roomcast::chat::Exchange::Port& port = c.exchange.port(worker);
  const auto members = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t kRooms = 20;
  const std::uint64_t run = c.next_run.fetch_add(1);
  std::vector<ConnectionId> connections;
  std::vector<std::pair<ConnectionId, std::string>> senders;
  for (std::size_t r = 0; r < kRooms; ++r) {
    // Appended: GCC 12 at -O3 takes "r" + std::string for an overlapping copy (-Wrestrict).
    const std::string room =
        std::string("r").append(std::to_string(run)).append("-").append(std::to_string(r));
    for (std::size_t m = 0; m < members; ++m) {
      // Numbered as the server numbers connections: the worker in the top byte.
      const ConnectionId id =
          (static_cast<ConnectionId>(worker + 1) << 56) | c.next_id.fetch_add(1);
      hub.connect(id);
      hub.receive(id, R"({"type":"join_room","room":")" + room + R"(","username":"u)" +
                          std::to_string(m) + "\"}");
      port.drain();
      connections.push_back(id);
      if (m == 0) {
        senders.emplace_back(id, R"({"type":"chat_message","room":")" + room +
                                     R"(","message":"hello, how are you today?"})");
      }
    }
  }
  const std::uint64_t delivered_before = c.delivered();
  std::size_t next = 0;
  for (auto _ : state) {
    const auto& [who, text] = senders[next];
    hub.receive(who, text);
    port.drain();
    next = next + 1 == senders.size() ? 0 : next + 1;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  // Every thread's deliveries: thread 0 reports the total.
  if (state.thread_index() == 0) {
    state.counters["deliveries"] = benchmark::Counter(
        static_cast<double>(c.delivered() - delivered_before), benchmark::Counter::kIsRate);
  }
  for (const ConnectionId id : connections) hub.disconnect(id);
  port.drain();
}

// 1 and 2 threads everywhere; on a bigger machine also 4, 8, ... up to its hardware threads
// (one per worker is what the server runs by default).
void thread_counts(benchmark::internal::Benchmark* b) {
  const unsigned cores = max_threads();
  for (unsigned threads = 1; threads <= cores; threads *= 2) {
    b->Threads(static_cast<int>(threads));
  }
}

BENCHMARK(BM_ChatMessages)->Arg(2)->Arg(100)->Apply(thread_counts)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
