#include "kurrent/connection_string.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace kingest::kurrent {
namespace {

std::string error_of(std::string_view text) {
  auto s = parse_connection_string(text);
  EXPECT_FALSE(s.ok()) << text;
  return s.ok() ? std::string() : std::string(s.status().message());
}

TEST(ConnectionString, ParsesTheSeedsString) {
  auto s = parse_connection_string("esdb://localhost:2113?tls=false");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->scheme, "esdb");
  EXPECT_FALSE(s->discover);
  ASSERT_EQ(s->hosts.size(), 1u);
  EXPECT_EQ(s->hosts[0], (Endpoint{"localhost", 2113}));
  EXPECT_FALSE(s->tls);
  EXPECT_FALSE(s->username.has_value());
}

TEST(ConnectionString, AcceptsEverySchemeAndDiscover) {
  for (const char* scheme : {"esdb", "kurrentdb", "kdb", "kurrent", "KurrentDB"}) {
    auto s = parse_connection_string(std::string(scheme) + "://h");
    ASSERT_TRUE(s.ok()) << scheme;
    EXPECT_EQ(s->hosts[0].port, 2113) << "default port";
    EXPECT_TRUE(s->tls) << "TLS is on by default";
    auto d = parse_connection_string(std::string(scheme) + "+discover://h:1234");
    ASSERT_TRUE(d.ok()) << scheme;
    EXPECT_TRUE(d->discover);
    EXPECT_EQ(d->hosts[0].port, 1234);
  }
}

TEST(ConnectionString, ParsesHostsCredentialsAndOptions) {
  auto s = parse_connection_string(
      "kurrentdb://ad%40min:pa%3Ass@node1:2113,node2:2114,[::1]:2115/?TLS=true&tlsVerifyCert=false&tlsCaFile=/c/ca.crt"
      "&defaultDeadline=2500&connectionName=ingest-1&keepAliveInterval=-1&keepAliveTimeout=3000"
      "&nodePreference=follower&maxDiscoverAttempts=3&discoveryInterval=50&gossipTimeout=700");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->discover) << "several hosts imply discovery";
  ASSERT_EQ(s->hosts.size(), 3u);
  EXPECT_EQ(s->hosts[1], (Endpoint{"node2", 2114}));
  EXPECT_EQ(s->hosts[2], (Endpoint{"::1", 2115}));
  EXPECT_EQ(s->username, "ad@min");
  EXPECT_EQ(s->password, "pa:ss");
  EXPECT_TRUE(s->tls);
  EXPECT_FALSE(s->tls_verify_cert);
  EXPECT_EQ(s->tls_ca_file, "/c/ca.crt");
  EXPECT_EQ(s->default_deadline.count(), 2500);
  EXPECT_EQ(s->connection_name, "ingest-1");
  EXPECT_EQ(s->keep_alive_interval.count(), -1);
  EXPECT_EQ(s->keep_alive_timeout.count(), 3000);
  EXPECT_EQ(s->node_preference, NodePreference::kFollower);
  EXPECT_EQ(s->max_discover_attempts, 3);
  EXPECT_EQ(s->discovery_interval.count(), 50);
  EXPECT_EQ(s->gossip_timeout.count(), 700);
}

TEST(ConnectionString, ErrorsNameThePartToFix) {
  EXPECT_NE(error_of("localhost:2113").find("no scheme"), std::string::npos);
  EXPECT_NE(error_of("http://localhost:2113").find("unknown scheme 'http'"), std::string::npos);
  EXPECT_NE(error_of("esdb://").find("no host"), std::string::npos);
  EXPECT_NE(error_of("esdb://h:99999").find("port"), std::string::npos);
  EXPECT_NE(error_of("esdb://h:abc").find("host 'h'"), std::string::npos);
  EXPECT_NE(error_of("esdb://a,,b").find("empty host"), std::string::npos);
  EXPECT_NE(error_of("esdb://h?tls=maybe").find("tls=maybe"), std::string::npos);
  EXPECT_NE(error_of("esdb://h?defaultDeadline=soon").find("defaultDeadline=soon"), std::string::npos);
  EXPECT_NE(error_of("esdb://h?tsl=false").find("unknown option 'tsl'"), std::string::npos);
  EXPECT_NE(error_of("esdb://h?nodePreference=any").find("nodePreference"), std::string::npos);
  EXPECT_NE(error_of("esdb://h?tls").find("'tls' has no value"), std::string::npos);
  EXPECT_NE(error_of("esdb://admin@h").find("user:password@"), std::string::npos);
  EXPECT_NE(error_of("esdb://h/some/path").find("path"), std::string::npos);
}

TEST(ConnectionString, RedactsThePassword) {
  auto s = parse_connection_string("esdb://admin:changeit@localhost?tls=false");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->redacted(), "esdb://admin:***@localhost:2113?tls=false");
  auto e = parse_connection_string("esdb://admin:changeit@h?tls=maybe");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(std::string(e.status().message()).find("changeit"), std::string::npos);
}

// Whatever the shape of the string, what might be a password is never echoed.
TEST(ConnectionString, NoErrorShowsAPassword) {
  const std::string secret = "S3cretPW";
  for (const std::string text : {
           "esdb://admin:S3cretPW",                 // no @host: the password reads as a port
           "esdb://admin:S3cretPW,other:2113",      // the same in a host list
           "esdb://admin:S3cretPW@h/some/path",     // a path after the hosts
           "admin:S3cretPW@localhost:2113",         // no scheme
           "esdb//admin:S3cretPW@localhost:2113",   // a broken scheme separator
           "esdb://admin:S3cretPW@",                // no host after the credentials
           "esdb://admin:S3cretPW@h:0",             // a bad port after credentials
           "esdb://admin:S3cretPW@[::1",            // a broken IPv6 host
           "esdb://admin:S3cretPW@h?tsl=false",     // an unknown option
           "esdb://admin:S3cretPW%zz@h",            // a bad escape in the password
       }) {
    SCOPED_TRACE(text);
    const std::string msg = error_of(text);
    EXPECT_FALSE(msg.empty());
    EXPECT_EQ(msg.find(secret), std::string::npos) << msg;
  }
  // The no-@ shape is told what to do.
  EXPECT_NE(error_of("esdb://admin:S3cretPW").find("user:password@host"), std::string::npos);
}

TEST(ConnectionString, ParsesIpv6Literals) {
  auto s = parse_connection_string("esdb://[::1]:2113?tls=false");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->hosts.size(), 1u);
  EXPECT_EQ(s->hosts[0].host, "::1");
  EXPECT_EQ(s->hosts[0].port, 2113);
  EXPECT_EQ(s->redacted(), "esdb://[::1]:2113?tls=false");
  EXPECT_EQ(s->hosts[0].address(), "[::1]:2113");
  EXPECT_EQ((Endpoint{.host = "localhost", .port = 1}).address(), "localhost:1");
}

TEST(ConnectionString, ComesFromTheFlagThenTheSeedsVariables) {
  ::unsetenv("KURRENT_CONNECTION_STRING");
  ::unsetenv("EVENTSTORE_CONNECTION_STRING");
  auto none = connection_string_from_environment(std::nullopt);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(std::string(none.status().message()).find("KURRENT_CONNECTION_STRING"), std::string::npos);
  ::setenv("EVENTSTORE_CONNECTION_STRING", "esdb://old:2113", 1);
  EXPECT_EQ(*connection_string_from_environment(std::nullopt), "esdb://old:2113");
  ::setenv("KURRENT_CONNECTION_STRING", "kurrentdb://new:2113", 1);
  EXPECT_EQ(*connection_string_from_environment(std::nullopt), "kurrentdb://new:2113");
  EXPECT_EQ(*connection_string_from_environment(std::string("esdb://flag:1")), "esdb://flag:1");
  ::unsetenv("KURRENT_CONNECTION_STRING");
  ::unsetenv("EVENTSTORE_CONNECTION_STRING");
}

}  // namespace
}  // namespace kingest::kurrent
