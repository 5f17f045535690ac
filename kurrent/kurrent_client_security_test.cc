// KurrentClient against the project's server (server/) over loopback gRPC, for what a deployment
// adds to the plain case: TLS with a certificate made by the openssl tool, Basic credentials, gossip
// discovery (+discover, several seeds, a follower seed), not-leader redirects in every append mode,
// and a fake server that never answers an append at all.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "kurrent/kurrent_client.h"
#include "kurrent/testing/fake_services.h"
#include "kurrent/testing/served.h"
#include "proto/kurrentdb/serverfeatures.grpc.pb.h"
#include "proto/kurrentdb/streams.grpc.pb.h"
#include "proto/kurrentdb/v2/streams.grpc.pb.h"
#include "server/kurrent_server.h"
#include "server/testing/self_signed.h"
#include "store/event_store.h"

// In the helpers' namespace (testing/served.h, testing/fake_services.h).
namespace kingest::kurrent::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// One node of a cluster, or a lone server.
using Node = Served;

bool contains(absl::string_view text, absl::string_view part) { return absl::StrContains(text, part); }

// An append of two events to a new stream, answered with success, and read back by the client.
void expect_round_trip(KurrentClient& c, const std::string& stream) {
  std::vector<EventData> events{event("1"), event("2")};
  auto o = append_sync(c, stream, ExpectNoStream{}, events);
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_EQ(o.current_revision, StreamRevision{1});
  auto read = c.read_forwards(stream, StreamRevision{0}, 10);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].id, events[0].id);
  EXPECT_EQ((*read)[1].id, events[1].id);
  EXPECT_EQ((*read)[1].data, events[1].data);
  auto tail = c.read_tail(stream);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_TRUE(tail->exists);
  EXPECT_EQ(tail->last_revision, StreamRevision{1});
}

// ---- TLS ------------------------------------------------------------------------------------------

using server::testing::make_self_signed;
using server::testing::SelfSigned;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cert_ = make_self_signed("client"); }
  static void TearDownTestSuite() {
    if (cert_) std::filesystem::remove_all(cert_->dir);
  }
  void SetUp() override {
    ASSERT_TRUE(cert_) << "openssl could not make a test certificate";
    node_.emplace(server::ServerOptions{.tls_cert_pem = cert_->cert, .tls_key_pem = cert_->key});
  }
  [[nodiscard]] std::string url(const std::string& host, const std::string& options) const {
    return "kurrentdb://" + host + ":" + std::to_string(node_->port()) + "?" + options;
  }

  static inline std::optional<SelfSigned> cert_;
  std::optional<Node> node_;
};

TEST_F(TlsTest, TrustingTheCertificateByHostName) {
  auto c = connect_to(url("localhost", "tls=true&tlsCaFile=" + cert_->cert_path));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->endpoint(), "localhost:" + std::to_string(node_->port()));
  expect_round_trip(*c, "tls-name");
  EXPECT_EQ(node_->ids("tls-name").size(), 2u);
}

TEST_F(TlsTest, TrustingTheCertificateByIpAddress) {
  auto c = connect_to(url("127.0.0.1", "tls=true&tlsCaFile=" + cert_->cert_path));
  ASSERT_TRUE(c);
  expect_round_trip(*c, "tls-ip");
}

TEST_F(TlsTest, EveryAppendModeOverTls) {
  for (auto mode : {AppendMode::kBatch, AppendMode::kAppend, AppendMode::kSession, AppendMode::kRecords}) {
    SCOPED_TRACE(std::string(to_string(mode)));
    auto c = connect_to(url("localhost", "tlsCaFile=" + cert_->cert_path), {.mode = mode});
    ASSERT_TRUE(c);
    EXPECT_EQ(c->append_mode(), to_string(mode));
    expect_round_trip(*c, "tls-mode-" + std::string(to_string(mode)));
  }
}

TEST_F(TlsTest, WithoutVerificationNoCaFileIsNeeded) {
  auto c = connect_to(url("127.0.0.1", "tls=true&tlsVerifyCert=false"));
  ASSERT_TRUE(c);
  expect_round_trip(*c, "tls-noverify");
}

TEST_F(TlsTest, UntrustedCertificateFailsAndSaysWhatToCheck) {
  // No tlsCaFile: the system's roots, which do not hold the self-signed certificate.
  auto c = try_connect(url("localhost", "tls=true&defaultDeadline=3000"));
  ASSERT_FALSE(c.ok());
  const std::string msg(c.status().message());
  EXPECT_TRUE(contains(msg, "TLS")) << msg;
  EXPECT_TRUE(contains(msg, "tlsCaFile")) << msg;
  EXPECT_TRUE(contains(msg, "tlsVerifyCert")) << msg;
  EXPECT_TRUE(contains(msg, "localhost:" + std::to_string(node_->port()))) << msg;
}

TEST_F(TlsTest, PlaintextClientFailsAndSaysTheServerMayUseTls) {
  auto c = try_connect(url("127.0.0.1", "tls=false&defaultDeadline=3000"));
  ASSERT_FALSE(c.ok());
  const std::string msg(c.status().message());
  EXPECT_TRUE(contains(msg, "tls=true")) << msg;
  EXPECT_TRUE(contains(msg, "127.0.0.1:" + std::to_string(node_->port()))) << msg;
}

TEST_F(TlsTest, UnreadableCaFileIsNamed) {
  auto c = try_connect(url("localhost", "tlsCaFile=" + cert_->dir + "/missing.pem"));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(contains(c.status().message(), "tlsCaFile")) << c.status();
  EXPECT_TRUE(contains(c.status().message(), "missing.pem")) << c.status();
}

// ---- credentials ----------------------------------------------------------------------------------

class CredentialsTest : public ::testing::Test {
 protected:
  [[nodiscard]] std::string url(const std::string& userinfo) const {
    return "kurrentdb://" + userinfo + "127.0.0.1:" + std::to_string(node_.port()) + "?tls=false&defaultDeadline=3000";
  }
  Node node_{server::ServerOptions{.users = {{"admin", "changeit"}}}};
};

TEST_F(CredentialsTest, RightCredentialsAreServedInEveryAppendMode) {
  for (auto mode : {AppendMode::kBatch, AppendMode::kAppend, AppendMode::kSession, AppendMode::kRecords}) {
    SCOPED_TRACE(std::string(to_string(mode)));
    auto c = connect_to(url("admin:changeit@"), {.mode = mode});
    ASSERT_TRUE(c);
    EXPECT_EQ(c->append_mode(), to_string(mode));
    const std::string stream = "cred-" + std::string(to_string(mode));
    expect_round_trip(*c, stream);
    EXPECT_EQ(node_.ids(stream).size(), 2u);
  }
}

TEST_F(CredentialsTest, WrongPasswordFailsWithoutShowingThePassword) {
  const std::string password = "n0t-the-Passw0rd";
  auto c = try_connect(url("admin:" + password + "@"));
  ASSERT_FALSE(c.ok());
  // Fatal by the retry rule: never UNAVAILABLE, which callers retry.
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated) << c.status();
  const std::string msg(c.status().message());
  EXPECT_TRUE(contains(msg, "authentication failed")) << msg;
  EXPECT_TRUE(contains(msg, "user name and password")) << msg;
  EXPECT_FALSE(contains(msg, password)) << msg;
  EXPECT_FALSE(contains(msg, "changeit")) << msg;
}

TEST_F(CredentialsTest, UnknownUserFailsLikeAWrongPassword) {
  auto c = try_connect(url("nobody:changeit@"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated) << c.status();
  const std::string msg(c.status().message());
  EXPECT_TRUE(contains(msg, "user name and password")) << msg;
  EXPECT_FALSE(contains(msg, "changeit")) << msg;
}

TEST_F(CredentialsTest, NoCredentialsFailsAndAsksForThem) {
  auto start = Clock::now();
  auto c = try_connect(url(""));
  // The connection check (a read) is refused at once; closing the half-made client must not wait.
  EXPECT_LT(Clock::now() - start, milliseconds(3000));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kPermissionDenied) << c.status();
  const std::string msg(c.status().message());
  EXPECT_TRUE(contains(msg, "access denied")) << msg;
  EXPECT_TRUE(contains(msg, "credentials")) << msg;
  EXPECT_TRUE(contains(msg, "user:password@")) << msg;
}

// ---- discovery --------------------------------------------------------------------------------------

// A port that nothing listens on any more.
int dead_port() {
  Node gone;
  int port = gone.port();
  gone.stop();
  return port;
}

TEST(Discovery, ConnectsToTheAddressGossipAdvertises) {
  // Gossip names the node "localhost:PORT"; the seed is written "127.0.0.1:PORT": the endpoint in
  // use shows which one the client took.
  Node node;
  const int port = node.port();
  node.restart({.advertise = "localhost:" + std::to_string(port)});
  auto c = connect_to("kurrentdb+discover://127.0.0.1:" + std::to_string(port) + "?tls=false");
  ASSERT_TRUE(c);
  EXPECT_EQ(node.advertised(), "localhost:" + std::to_string(port));
  EXPECT_EQ(c->endpoint(), node.advertised());
  expect_round_trip(*c, "disc-1");
  EXPECT_EQ(node.ids("disc-1").size(), 2u);
  EXPECT_EQ(c->stats().redirects, 0u);
}

TEST(Discovery, PlainSeedIsTheLeaderItself) {
  Node node;
  auto c = connect_to("kurrentdb+discover://127.0.0.1:" + std::to_string(node.port()) + "?tls=false");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->endpoint(), node.advertised());
  expect_round_trip(*c, "disc-plain");
}

TEST(Discovery, ADeadFirstSeedIsSkipped) {
  const int dead = dead_port();
  Node node;
  const std::string hosts = "127.0.0.1:" + std::to_string(dead) + ",127.0.0.1:" + std::to_string(node.port());
  int n = 0;
  for (const std::string scheme : {"kurrentdb+discover", "kurrentdb"}) {  // several hosts imply discovery
    SCOPED_TRACE(scheme);
    auto c = connect_to(scheme + "://" + hosts + "?tls=false&gossipTimeout=2000&maxDiscoverAttempts=2");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->endpoint(), node.address());
    expect_round_trip(*c, "disc-dead-" + std::to_string(n++));
  }
}

TEST(Discovery, OnlyDeadSeedsFailAndNameTheSeeds) {
  const int dead = dead_port();
  auto c = try_connect("kurrentdb+discover://127.0.0.1:" + std::to_string(dead) +
                       "?tls=false&maxDiscoverAttempts=2&discoveryInterval=10&gossipTimeout=1000");
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(contains(c.status().message(), "discovery")) << c.status();
  EXPECT_TRUE(contains(c.status().message(), "127.0.0.1:" + std::to_string(dead))) << c.status();
}

TEST(Discovery, AFollowerSeedLeadsToTheLeader) {
  Node leader;
  Node follower({.follower_of = leader.address()});
  auto c = connect_to("kurrentdb+discover://127.0.0.1:" + std::to_string(follower.port()) + "?tls=false");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->endpoint(), leader.address());
  expect_round_trip(*c, "disc-follower");
  EXPECT_EQ(leader.ids("disc-follower").size(), 2u);
  EXPECT_TRUE(follower.ids("disc-follower").empty());
  EXPECT_EQ(c->stats().redirects, 0u) << "gossip named the leader: no not-leader answer needed";
}

// ---- not-leader redirects ---------------------------------------------------------------------------

class Redirect : public ::testing::TestWithParam<AppendMode> {
 protected:
  ClientOptions options() const {
    return {.mode = GetParam(), .backoff_initial = milliseconds(20), .backoff_max = milliseconds(200)};
  }
};

TEST_P(Redirect, ConnectingToAFollowerWritesToTheLeader) {
  Node leader;
  Node follower({.follower_of = leader.address()});
  auto c = connect_to(follower.url(), options());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->append_mode(), to_string(GetParam()));
  std::vector<EventData> events{event("a"), event("b"), event("c")};
  auto o = append_sync(*c, "redir-1", ExpectNoStream{}, events);
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_EQ(o.current_revision, StreamRevision{2});
  EXPECT_EQ(leader.ids("redir-1"), (std::vector<Uuid>{events[0].id, events[1].id, events[2].id}));
  EXPECT_TRUE(follower.ids("redir-1").empty());
  EXPECT_GE(c->stats().redirects, 1u);
  EXPECT_EQ(c->endpoint(), leader.address());
}

// The leader the client is connected to becomes a follower of another node: the next append meets
// the not-leader answer on its own append path (not the connection check's read).
TEST_P(Redirect, AnAppendFollowsTheLeaderWhenItMoves) {
  Node new_leader;
  Node node;
  auto c = connect_to(node.url(), options());
  ASSERT_TRUE(c);
  ASSERT_EQ(append_sync(*c, "moved-0", ExpectNoStream{}, {event("before")}).code, AppendCode::kSuccess);
  EXPECT_EQ(c->stats().redirects, 0u);

  node.restart({.follower_of = new_leader.address()});
  std::vector<EventData> events{event("a"), event("b")};
  auto o = append_sync(*c, "moved-1", ExpectNoStream{}, events);
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_EQ(new_leader.ids("moved-1"), (std::vector<Uuid>{events[0].id, events[1].id}));
  EXPECT_TRUE(node.ids("moved-1").empty());
  EXPECT_GE(c->stats().redirects, 1u);
  EXPECT_EQ(c->endpoint(), new_leader.address());

  // Later appends go straight to the new leader.
  auto redirects = c->stats().redirects;
  ASSERT_EQ(append_sync(*c, "moved-1", StreamRevision{1}, {event("c")}).code, AppendCode::kSuccess);
  EXPECT_EQ(new_leader.ids("moved-1").size(), 3u);
  EXPECT_EQ(c->stats().redirects, redirects);
}

INSTANTIATE_TEST_SUITE_P(Modes, Redirect,
                         ::testing::Values(AppendMode::kBatch, AppendMode::kAppend, AppendMode::kSession,
                                           AppendMode::kRecords),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(RedirectRead, ReadTailFollowsTheLeaderWhenItMoves) {
  Node new_leader;
  Node node;
  auto c = connect_to(node.url());
  ASSERT_TRUE(c);
  node.restart({.follower_of = new_leader.address()});
  // The follower's own copy is behind; a local read would answer revision 0.
  node.put("tail-1", 1);
  new_leader.put("tail-1", 3);
  auto tail = c->read_tail("tail-1");
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_TRUE(tail->exists);
  EXPECT_EQ(tail->last_revision, StreamRevision{2});
  EXPECT_EQ(tail->last_id, new_leader.ids("tail-1").back());
  EXPECT_EQ(c->stats().redirects, 1u);
  EXPECT_EQ(c->endpoint(), new_leader.address());
  auto read = c->read_forwards("tail-1", StreamRevision{0}, 10);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), 3u);
}

// ---- a server that never answers an append ----------------------------------------------------------

namespace streams = event_store::client::streams;

// BatchAppend reads whatever comes and never answers; Append reads and never finishes (until the
// call is cancelled); Read answers an empty stream, so that the connection check passes.
class SilentStreams final : public streams::Streams::CallbackService {
 public:
  std::atomic<int> batch_requests{0};
  std::atomic<int> append_calls{0};

  grpc::ServerBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp>* BatchAppend(
      grpc::CallbackServerContext*) override {
    class R final : public grpc::ServerBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp> {
     public:
      explicit R(SilentStreams* svc) : svc_(svc) { StartRead(&req_); }
      void OnReadDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::OK);
        if (req_.is_final()) svc_->batch_requests++;
        StartRead(&req_);
      }
      void OnDone() override { delete this; }

     private:
      SilentStreams* svc_;
      streams::BatchAppendReq req_;
    };
    return new R(this);
  }

  grpc::ServerReadReactor<streams::AppendReq>* Append(grpc::CallbackServerContext*, streams::AppendResp*) override {
    append_calls++;
    class R final : public grpc::ServerReadReactor<streams::AppendReq> {
     public:
      R() { StartRead(&req_); }
      void OnReadDone(bool ok) override {
        if (ok) StartRead(&req_);
      }
      void OnCancel() override { Finish(grpc::Status::CANCELLED); }
      void OnDone() override { delete this; }

     private:
      streams::AppendReq req_;
    };
    return new R();
  }

  grpc::ServerWriteReactor<streams::ReadResp>* Read(grpc::CallbackServerContext*, const streams::ReadReq*) override {
    return testing::empty_read();
  }
};

// AppendRecords taken and never answered (until the call is cancelled).
class SilentRecords final : public kurrentdb::protocol::v2::streams::StreamsService::CallbackService {
 public:
  std::atomic<int> calls{0};

  grpc::ServerUnaryReactor* AppendRecords(grpc::CallbackServerContext*,
                                          const kurrentdb::protocol::v2::streams::AppendRecordsRequest*,
                                          kurrentdb::protocol::v2::streams::AppendRecordsResponse*) override {
    calls++;
    class R final : public grpc::ServerUnaryReactor {
     public:
      void OnCancel() override { Finish(grpc::Status::CANCELLED); }
      void OnDone() override { delete this; }
    };
    return new R();
  }
};

class Silent : public ::testing::TestWithParam<AppendMode> {};

TEST_P(Silent, AnAppendWithoutAnyAnswerEndsFatalAfterRetryFor) {
  SilentStreams streams_service;
  SilentRecords records_service;
  BatchFeatures batch_features;
  RecordsFeatures records_features;
  int port = 0;
  auto server = GetParam() == AppendMode::kRecords
                    ? testing::serve({&streams_service, &records_service, &records_features}, &port)
                    : testing::serve({&streams_service, &batch_features}, &port);
  ASSERT_TRUE(server);
  const std::string endpoint = "127.0.0.1:" + std::to_string(port);
  const ClientOptions options{.mode = GetParam(),
                              .backoff_initial = milliseconds(50),
                              .backoff_max = milliseconds(200),
                              .retry_for = milliseconds(1000)};
  auto c = connect_to("kurrentdb://" + endpoint + "?tls=false&defaultDeadline=200", options);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->append_mode(), to_string(GetParam()));
  auto start = Clock::now();
  auto o = append_sync(*c, "silent-1", ExpectNoStream{}, {event("a")});
  auto took = Clock::now() - start;
  EXPECT_EQ(o.code, AppendCode::kFatal) << o.message;
  EXPECT_TRUE(contains(o.message, endpoint)) << o.message;
  EXPECT_GE(took, milliseconds(1000)) << "retry_for is 1 s";
  EXPECT_LT(took, milliseconds(4000)) << "the append ended soon after retry_for";
  EXPECT_GE(c->stats().retries, 2u);
  if (GetParam() == AppendMode::kBatch) {
    EXPECT_GE(streams_service.batch_requests.load(), 2) << "sent again after each deadline";
  } else if (GetParam() == AppendMode::kRecords) {
    EXPECT_GE(records_service.calls.load(), 2) << "a new request after each deadline";
  } else {
    EXPECT_GE(streams_service.append_calls.load(), 2) << "a new call after each deadline";
  }
  c->close(milliseconds(2000));
  server->Shutdown(std::chrono::system_clock::now() + milliseconds(1000));
}

INSTANTIATE_TEST_SUITE_P(Modes, Silent, ::testing::Values(AppendMode::kBatch, AppendMode::kAppend, AppendMode::kRecords),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace kingest::kurrent::testing
