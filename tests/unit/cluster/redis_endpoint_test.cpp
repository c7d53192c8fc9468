// --redis URLs: what is accepted, and what is refused with a message naming the problem.
#include <gtest/gtest.h>

#include <stdexcept>

#include "cluster/redis_connection.h"

namespace roomcast::cluster {
namespace {

TEST(RedisEndpoint, HostPortAndDatabase) {
  const auto e = RedisEndpoint::parse("redis://10.0.0.7:6380/2");
  EXPECT_EQ(e.host, "10.0.0.7");
  EXPECT_EQ(e.port, 6380);
  EXPECT_EQ(e.db, 2);
  EXPECT_TRUE(e.password.empty());
  EXPECT_EQ(e.describe(), "10.0.0.7:6380/2");
}

TEST(RedisEndpoint, DefaultsForWhatIsLeftOut) {
  const auto e = RedisEndpoint::parse("redis://");
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 6379);
  EXPECT_EQ(e.db, 0);
  EXPECT_EQ(RedisEndpoint::parse("redis://cache").host, "cache");
}

TEST(RedisEndpoint, PasswordAndUserAreNeverDescribed) {
  const auto e = RedisEndpoint::parse("redis://:s3cr@t@cache:6379");
  EXPECT_EQ(e.password, "s3cr@t");  // the last '@' ends the credentials
  EXPECT_TRUE(e.user.empty());
  EXPECT_EQ(e.host, "cache");
  const auto acl = RedisEndpoint::parse("redis://chat:pw@cache/1");
  EXPECT_EQ(acl.user, "chat");
  EXPECT_EQ(acl.password, "pw");
  EXPECT_EQ(acl.describe().find("pw"), std::string::npos);
}

TEST(RedisEndpoint, MalformedUrlsAreRefusedWithAReason) {
  for (const char* bad :
       {"http://cache:6379", "cache:6379", "redis://cache:0", "redis://cache:70000",
        "redis://cache:63x9", "redis://cache/one", "redis://cache/-1"}) {
    EXPECT_THROW(RedisEndpoint::parse(bad), std::invalid_argument) << bad;
  }
  try {
    RedisEndpoint::parse("rediss://:s3cr@t@cache:6379");  // no TLS: refused, password not shown
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find("s3cr"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rediss://***@cache:6379"), std::string::npos) << e.what();
  }
  try {
    RedisEndpoint::parse("redis://cache:port");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("port"), std::string::npos);
  }
}

}  // namespace
}  // namespace roomcast::cluster
