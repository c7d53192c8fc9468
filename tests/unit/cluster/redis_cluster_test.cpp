// RedisCluster as a HistoryStore on a real redis-server of its own (a free loopback port, no
// persistence, stopped at the end): retention by count and by age (chat::Retention) on a
// ManualClock, so no test waits for messages to grow old. Skipped where redis-server is not
// installed (Debian: redis-server).
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

}  // namespace
}  // namespace roomcast::cluster
