// RedisCluster as a HistoryStore on a real redis-server of its own (a free loopback port, no
// persistence, stopped at the end): retention by count and by age (chat::Retention) on a
// ManualClock, so no test waits for messages to grow old; and the control path
// (chat::ClusterControl): commands heard by the other nodes, the node list. Skipped where
// redis-server is not installed (Debian: redis-server).
#include "cluster/redis_cluster.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "support/store_reports.h"

namespace roomcast::cluster {
namespace {

using std::chrono::milliseconds;

constexpr const char* kRedisServer = "/usr/bin/redis-server";

// A port nothing listens on right now (the kernel's pick for a socket bound to port 0).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

// redis-server on 127.0.0.1, keeping nothing on disk; SIGTERM and reaped when destroyed.
class RedisProcess {
 public:
  RedisProcess() : port_(free_port()) {
    char pattern[] = "/tmp/roomcast-redis-unit-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    const std::string port = std::to_string(port_);
    const std::string log = dir_ + "/redis.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(kRedisServer, kRedisServer, "--port", port.c_str(), "--bind", "127.0.0.1", "--save",
              "", "--appendonly", "no", "--dir", dir_.c_str(), "--logfile", log.c_str(),
              "--loglevel", "warning", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~RedisProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

 private:
  int port_;
  pid_t pid_ = -1;
  std::string dir_;
};

using test_support::StoreReports;

std::vector<std::uint64_t> seqs(const chat::RoomHistory& history) {
  std::vector<std::uint64_t> out;
  for (const auto& m : history.messages) out.push_back(m.seq);
  return out;
}

class RedisClusterStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kRedisServer, X_OK) != 0) GTEST_SKIP() << kRedisServer << " is not installed";
    redis_ = std::make_unique<RedisProcess>();
  }

  // A node on the test's Redis, keeping the newest 3 messages, none older than 60 s.
  std::unique_ptr<RedisCluster> node(const std::string& name) {
    auto cluster = std::make_unique<RedisCluster>(
        RedisClusterOptions{redis_->url(), name, chat::Retention{3, milliseconds(60'000)}}, clock_);
    EXPECT_TRUE(cluster->wait_until_up(std::chrono::seconds(10))) << "Redis at " << redis_->url();
    return cluster;
  }
  chat::RoomHistory load(RedisCluster& cluster, StoreReports& reports, const std::string& room) {
    cluster.load(room);
    EXPECT_TRUE(reports.wait_for([&] { return reports.loaded.contains(room); }));
    return reports.loaded[room];
  }
  chat::Publication publication(const std::string& room, const std::string& id) {
    return {room, clock_.unix_ms(), "user-1", "ann", "text", "name:ann", id, 7};
  }
  std::optional<chat::RoomHistory> read(RedisCluster& cluster, const std::string& room,
                                        std::uint64_t after_seq, std::size_t limit) {
    std::promise<std::optional<chat::RoomHistory>> answer;
    auto future = answer.get_future();
    cluster.read(room, after_seq, limit,
                 [&answer](std::optional<chat::RoomHistory> h) { answer.set_value(std::move(h)); });
    EXPECT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return future.get();
  }

  base::ManualClock clock_;
  std::unique_ptr<RedisProcess> redis_;  // outlives the nodes: they are test locals
};

TEST_F(RedisClusterStoreTest, RetentionByCountAndByAgeOnTheStoresClock) {
  auto first = node("first");
  StoreReports reports;
  first->set_listener(&reports);
  EXPECT_EQ(load(*first, reports, "r").last_seq, 0u);
  for (int i = 1; i <= 5; ++i) first->publish(publication("r", "m" + std::to_string(i)));
  ASSERT_TRUE(reports.wait_for([&] { return reports.committed.size() == 5; }));
  EXPECT_EQ(reports.seqs("r"), (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));

  // By count, exactly, although the stream is trimmed only approximately (MAXLEN ~).
  auto history = read(*first, "r", 0, 100);
  ASSERT_TRUE(history.has_value());
  EXPECT_EQ(history->last_seq, 5u);
  EXPECT_EQ(seqs(*history), (std::vector<std::uint64_t>{3, 4, 5}));
  EXPECT_EQ(seqs(*read(*first, "r", 3, 100)), (std::vector<std::uint64_t>{4, 5}));
  EXPECT_EQ(seqs(*read(*first, "r", 0, 2)), (std::vector<std::uint64_t>{4, 5}));

  // By age: 60 s after the first five they are still kept, a millisecond later they are not.
  clock_.advance(milliseconds(30'000));
  first->publish(publication("r", "m6"));
  ASSERT_TRUE(reports.wait_for([&] { return reports.committed.size() == 6; }));
  clock_.advance(milliseconds(30'000));
  EXPECT_EQ(seqs(*read(*first, "r", 0, 100)), (std::vector<std::uint64_t>{4, 5, 6}));
  clock_.advance(milliseconds(1));
  history = read(*first, "r", 0, 100);
  EXPECT_EQ(history->last_seq, 6u);
  EXPECT_EQ(seqs(*history), (std::vector<std::uint64_t>{6}));

  // A node that loads the room now gets the same window.
  auto second = node("second");
  StoreReports second_reports;
  second->set_listener(&second_reports);
  const auto loaded = load(*second, second_reports, "r");
  EXPECT_EQ(loaded.last_seq, 6u);
  EXPECT_EQ(seqs(loaded), (std::vector<std::uint64_t>{6}));
  // A resend within the window is recognised on every node.
  second->publish(publication("r", "m6"));
  ASSERT_TRUE(second_reports.wait_for([&] { return !second_reports.duplicates.empty(); }));
  EXPECT_EQ(second_reports.duplicates,
            (std::vector<std::pair<std::string, std::uint64_t>>{{"m6", 6}}));
  second->set_listener(nullptr);
  first->set_listener(nullptr);
}

// A node's control listener: records the commands it hears, reports fixed figures.
class ControlReports : public chat::ClusterControl::Listener {
 public:
  explicit ControlReports(std::uint64_t connections) : connections_(connections) {}
  void on_command(const chat::ControlCommand& command) override {
    std::lock_guard lock(mutex_);
    commands_.push_back(command);
    changed_.notify_all();
  }
  chat::NodeInfo node_info() const override {
    chat::NodeInfo info;
    info.connections = connections_;
    info.rooms = 2;
    info.threads = 3;
    return info;
  }
  // The commands heard, once there are `count` (or what there is after 10 s).
  std::vector<chat::ControlCommand> wait_for(std::size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(10), [&] { return commands_.size() >= count; });
    return commands_;
  }

 private:
  const std::uint64_t connections_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<chat::ControlCommand> commands_;
};

std::optional<std::size_t> send(RedisCluster& node, chat::ControlCommand command) {
  std::promise<std::optional<std::size_t>> answer;
  auto future = answer.get_future();
  node.send_command(std::move(command),
                    [&answer](std::optional<std::size_t> nodes) { answer.set_value(nodes); });
  EXPECT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  return future.get();
}

std::optional<std::vector<chat::NodeInfo>> list(RedisCluster& node) {
  std::promise<std::optional<std::vector<chat::NodeInfo>>> answer;
  auto future = answer.get_future();
  node.list_nodes([&answer](std::optional<std::vector<chat::NodeInfo>> nodes) {
    answer.set_value(std::move(nodes));
  });
  EXPECT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  return future.get();
}

TEST_F(RedisClusterStoreTest, CommandsReachTheOtherNodesAndTheListHasEveryLiveNode) {
  // A short TTL: the figures are refreshed every quarter of it.
  auto make = [&](const std::string& name) {
    auto cluster = std::make_unique<RedisCluster>(
        RedisClusterOptions{redis_->url(), name, chat::Retention{}, milliseconds(400)}, clock_);
    EXPECT_TRUE(cluster->wait_until_up(std::chrono::seconds(10)));
    return cluster;
  };
  auto first = make("first");
  auto second = make("second");
  ControlReports first_heard(5);
  ControlReports second_heard(7);
  first->set_control_listener(&first_heard);
  second->set_control_listener(&second_heard);

  // A malformed message on the control channel (a foreign publisher) is dropped.
  const std::string garbage = "/usr/bin/redis-cli -p " + std::to_string(redis_->port()) +
                              " PUBLISH rc:control 'd12:not a netstring' > /dev/null";
  ASSERT_EQ(std::system(garbage.c_str()), 0);
  // Both nodes got it; the sender does not apply its own (it did so when the request came).
  EXPECT_EQ(send(*first, {chat::ControlCommand::Kind::kDisconnect, "u-1", "", "Banned"}), 2u);
  EXPECT_EQ(send(*first, {chat::ControlCommand::Kind::kUnsubscribe, "u-2", "room", "Moved"}), 2u);
  const auto heard = second_heard.wait_for(2);
  ASSERT_EQ(heard.size(), 2u);
  EXPECT_EQ(heard[0].kind, chat::ControlCommand::Kind::kDisconnect);
  EXPECT_EQ(heard[0].user_id, "u-1");
  EXPECT_EQ(heard[0].reason, "Banned");
  EXPECT_EQ(heard[1].kind, chat::ControlCommand::Kind::kUnsubscribe);
  EXPECT_EQ(heard[1].user_id, "u-2");
  EXPECT_EQ(heard[1].room, "room");
  EXPECT_EQ(heard[1].reason, "Moved");
  EXPECT_TRUE(first_heard.wait_for(0).empty());

  // Every node alive, with the figures its listener reports (refreshed with its liveness).
  std::optional<std::vector<chat::NodeInfo>> nodes;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto figures_of = [&](const RedisCluster& node) {
    for (const auto& n : nodes.value_or(std::vector<chat::NodeInfo>{})) {
      if (n.node == node.instance()) return n.connections;
    }
    return std::uint64_t{0};
  };
  do {
    nodes = list(*first);
  } while ((figures_of(*first) != 5 || figures_of(*second) != 7) &&
           std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(nodes.has_value());
  ASSERT_EQ(nodes->size(), 2u);
  for (const auto& n : *nodes) {
    EXPECT_FALSE(n.version.empty());
    EXPECT_FALSE(n.commit.empty());
    EXPECT_EQ(n.started_unix_ms, clock_.unix_ms());
    EXPECT_EQ(n.rooms, 2u);
    EXPECT_EQ(n.threads, 3u);
  }
  EXPECT_EQ(figures_of(*first), 5u);
  EXPECT_EQ(figures_of(*second), 7u);

  // A node that stops takes its liveness key with it: it leaves the list.
  second->set_control_listener(nullptr);
  const std::string gone = second->instance();
  second.reset();
  nodes = list(*first);
  ASSERT_TRUE(nodes.has_value());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ(nodes->front().node, first->instance());
  EXPECT_EQ(send(*first, {chat::ControlCommand::Kind::kDisconnect, "u-3", "", "Bye"}), 1u);
  first->set_control_listener(nullptr);
}

}  // namespace
}  // namespace roomcast::cluster
