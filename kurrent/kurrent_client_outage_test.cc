// KurrentClient when the connection fails: a refused or mismatched (TLS) connection, an IPv6 literal,
// an outage's one retry budget for reads, the server restarting mid-stream, and a fake server for
// what the real one never does (dropping an answer).
#include "kurrent/kurrent_client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/testing/eventually.h"
#include "kurrent/testing/fake_services.h"
#include "kurrent/testing/served.h"
#include "proto/kurrentdb/serverfeatures.grpc.pb.h"
#include "proto/kurrentdb/streams.grpc.pb.h"
#include "server/kurrent_server.h"
#include "store/event_store.h"

// In the helpers' namespace (testing/served.h, testing/fake_services.h).
namespace kingest::kurrent::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// An outage has one retry budget, however many reads meet it: reads one after another, or many at
// once, all give up within `retry_for` of the first failure (plus a backoff step), not each after
// its own `retry_for`.
TEST(KurrentClient, ReadsShareOneRetryBudgetPerOutage) {
  Served served;
  ClientOptions o{.backoff_initial = milliseconds(50), .backoff_max = milliseconds(200),
                  .retry_for = milliseconds(1500)};
  auto c = connect_to(served.url("&defaultDeadline=1000"), o);
  ASSERT_TRUE(c);
  served.stop();
  const auto start = Clock::now();
  for (int i = 0; i < 3; ++i) {
    auto tail = c->read_tail("gone-" + std::to_string(i));
    ASSERT_FALSE(tail.ok());
    EXPECT_EQ(tail.status().code(), absl::StatusCode::kUnavailable) << tail.status();
  }
  auto tails = c->read_tails({"gone-a", "gone-b", "gone-c", "gone-d"});
  for (const auto& t : tails) EXPECT_FALSE(t.ok());
  auto forwards = c->read_forwards("gone-e", StreamRevision{0}, 10);
  EXPECT_FALSE(forwards.ok());
  // One budget (1.5 s) and the last backoff step, not eight of them (12 s and more).
  EXPECT_LT(Clock::now() - start, milliseconds(3000));
  c->close(milliseconds(0));
}

// An append gives up when `retry_for` is up, not one backoff step later: its last wait is cut to
// what is left of the budget. With a first wait of 1-2 s and a budget of 2.5 s, an uncut second
// wait (2-4 s) would end the append 3-6 s after the outage began.
class GivesUp : public ::testing::TestWithParam<AppendMode> {};

TEST_P(GivesUp, AnAppendGivesUpWhenRetryForIsUpNotABackoffLater) {
  Served served;
  auto c = connect_to(served.url("&defaultDeadline=1000"),
                      {.mode = GetParam(), .backoff_initial = milliseconds(2000), .backoff_max = milliseconds(8000),
                       .retry_for = milliseconds(2500)});
  ASSERT_TRUE(c);
  served.stop();
  const auto start = Clock::now();
  auto o = append_sync(*c, "gone", ExpectNoStream{}, {event("x")});
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  EXPECT_EQ(o.code, AppendCode::kFatal) << o.message;
  EXPECT_NE(o.message.find("kept failing for 2 s"), std::string::npos) << o.message;
  EXPECT_GE(took, milliseconds(2500));
  EXPECT_LT(took, milliseconds(2950)) << "the last wait was not cut to the budget";
  c->close(milliseconds(0));
}

INSTANTIATE_TEST_SUITE_P(Modes, GivesUp, ::testing::Values(AppendMode::kBatch, AppendMode::kRecords),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// The address serve-store prints for an IPv6 listener works as a connection string.
TEST(KurrentClient, ConnectsToAnIpv6Literal) {
  auto store = store::EventStore::open({.in_memory = true}).value();
  auto server = server::KurrentServer::start(*store, {.listen = "[::1]:0"});
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << server.status();
  auto c = connect_to("esdb://" + (*server)->address() + "?tls=false");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->endpoint(), (*server)->address());
  auto tail = c->read_tail("v6-stream");
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_FALSE(tail->exists);
  c->close(std::chrono::seconds(5));
  (*server)->shutdown();
  store->close();
}

TEST(KurrentClient, RefusedConnectionSaysWhatToCheck) {
  int port;
  {
    Served s;
    port = std::stoi(s.url().substr(s.url().rfind(':') + 1));
  }
  auto settings = parse_connection_string("kurrentdb://127.0.0.1:" + std::to_string(port) + "?tls=false");
  ASSERT_TRUE(settings.ok());
  auto c = KurrentClient::connect(*settings, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("Is the server up"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos) << c.status();
}

TEST(KurrentClient, TlsAgainstAPlaintextServerSaysSo) {
  Served s;
  std::string url = s.url();
  url = url.substr(0, url.find('?'));  // tls defaults to true
  auto settings = parse_connection_string(url + "?defaultDeadline=3000");
  ASSERT_TRUE(settings.ok());
  auto c = KurrentClient::connect(*settings, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("tls=false"), std::string::npos) << c.status();
}

class Restart : public ::testing::TestWithParam<AppendMode> {};

TEST_P(Restart, SurvivesTheServerRestartingMidStream) {
  auto dir = std::filesystem::temp_directory_path() /
             ("ki-client-restart-" + std::string(to_string(GetParam())) + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string db = (dir / "events.db").string();
  {
    Served s({}, db);
    auto c = connect_to(s.url(),
                        {.mode = GetParam(), .backoff_initial = milliseconds(20), .backoff_max = milliseconds(200)});
    ASSERT_TRUE(c);
    EXPECT_EQ(c->append_mode(), to_string(GetParam()));
    constexpr int kStreams = 20;
    constexpr int kPerStream = 30;
    // Each stream appends one event at a time with its exact revision; one writer per stream.
    std::atomic<int> failures{0};
    std::atomic<int> acknowledged{0};
    std::vector<std::vector<EventData>> written(kStreams);
    std::vector<std::thread> writers;
    for (int st = 0; st < kStreams; ++st) {
      writers.emplace_back([&, st] {
        for (int i = 0; i < kPerStream; ++i) {
          EventData e = event(std::to_string(i));
          ExpectedRevision expected = i == 0 ? ExpectedRevision{ExpectNoStream{}} : StreamRevision{uint64_t(i - 1)};
          const std::string stream = "restart-" + std::to_string(st);
          auto o = append_sync(*c, stream, expected, {e});
          if (o.code == AppendCode::kWrongExpectedVersion && GetParam() == AppendMode::kRecords) {
            // Written before the restart, its answer lost: records' checks are exact, so the state
            // comes back and the caller classifies it, as the pipeline does (read, compare ids).
            auto there = c->read_forwards(stream, StreamRevision{uint64_t(i)}, 1);
            if (there.ok() && there->size() == 1 && (*there)[0].id == e.id) o.code = AppendCode::kSuccess;
          }
          if (o.code != AppendCode::kSuccess) {
            failures++;
            ADD_FAILURE() << "stream " << st << " event " << i << ": " << o.message;
            return;
          }
          written[size_t(st)].push_back(e);
          acknowledged++;
          // A pace, not a wait for a result: it spreads each stream's appends over the restart.
          std::this_thread::sleep_for(milliseconds(5));
        }
      });
    }
    // Stopped once the streams have written a little (two appends each, on average), with most of
    // their appends still to come.
    EXPECT_TRUE(kingest::testing::eventually([&] { return acknowledged.load() >= 2 * kStreams; },
                                             std::chrono::seconds(30), "the first acknowledged appends"));
    s.stop();  // acknowledged appends are durable; the rest are retried
    EXPECT_TRUE(kingest::testing::eventually([&] { return c->stats().retries >= 1; }, std::chrono::seconds(30),
                                             "the client to retry against the stopped server"));
    s.restart();
    for (auto& w : writers) w.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_GE(c->stats().retries, 1u) << "the restart was noticed";
    for (int st = 0; st < kStreams; ++st) {
      auto read = c->read_forwards("restart-" + std::to_string(st), StreamRevision{0}, 1000);
      ASSERT_TRUE(read.ok()) << read.status();
      ASSERT_EQ(read->size(), size_t(kPerStream)) << "nothing lost or doubled in stream " << st;
      for (int i = 0; i < kPerStream; ++i) EXPECT_EQ((*read)[size_t(i)].id, written[size_t(st)][size_t(i)].id);
    }
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Modes, Restart, ::testing::Values(AppendMode::kBatch, AppendMode::kRecords),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// ---- a fake server that drops the first answer of each stream -------------------------------------

namespace streams = event_store::client::streams;
namespace features = event_store::client::server_features;

class DroppingStreams final : public streams::Streams::CallbackService {
 public:
  std::atomic<int> received{0};

  grpc::ServerBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp>* BatchAppend(
      grpc::CallbackServerContext*) override {
    class R final : public grpc::ServerBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp> {
     public:
      explicit R(DroppingStreams* svc) : svc_(svc) { StartRead(&req_); }
      void OnReadDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::OK);
        int n = ++svc_->received;
        if (req_.is_final() && n % 2 == 0) {  // every second correlation id gets an answer
          std::lock_guard lock(mu_);
          resp_.emplace_back();
          auto& r = resp_.back();
          *r.mutable_correlation_id() = req_.correlation_id();
          r.mutable_success()->set_current_revision(uint64_t(req_.proposed_messages_size() - 1));
          r.mutable_success()->mutable_no_position();
          if (!writing_) {
            writing_ = true;
            StartWrite(&resp_.front());
          }
        }
        StartRead(&req_);
      }
      void OnWriteDone(bool) override {
        std::lock_guard lock(mu_);
        resp_.pop_front();
        if (resp_.empty()) {
          writing_ = false;
        } else {
          StartWrite(&resp_.front());
        }
      }
      void OnDone() override { delete this; }

     private:
      DroppingStreams* svc_;
      streams::BatchAppendReq req_;
      std::mutex mu_;
      std::deque<streams::BatchAppendResp> resp_;
      bool writing_ = false;
    };
    return new R(this);
  }

  grpc::ServerWriteReactor<streams::ReadResp>* Read(grpc::CallbackServerContext*, const streams::ReadReq*) override {
    return testing::empty_read();
  }
};

TEST(KurrentClient, ResendsACorrelationIdThatGotNoAnswerWithinTheDeadline) {
  DroppingStreams streams_service;
  BatchFeatures features_service;
  int port = 0;
  auto server = testing::serve({&streams_service, &features_service}, &port);
  ASSERT_TRUE(server);
  auto c = connect_to("kurrentdb://127.0.0.1:" + std::to_string(port) + "?tls=false&defaultDeadline=300",
                      {.backoff_initial = milliseconds(10)});
  ASSERT_TRUE(c);
  auto start = std::chrono::steady_clock::now();
  auto o = append_sync(*c, "dropped-1", ExpectNoStream{}, {event("a")});
  EXPECT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(300)) << "the first send went unanswered";
  EXPECT_EQ(streams_service.received.load(), 2) << "sent once, and once more after the deadline";
  EXPECT_GE(c->stats().retries, 1u);
  c->close();
  server->Shutdown();
}

}  // namespace
}  // namespace kingest::kurrent::testing
