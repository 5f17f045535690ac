// KurrentClient against the project's KurrentDB-compatible server (server/) over loopback gRPC, in
// each append mode; plus a fake server for what the real one never does (dropping an answer).
#include "kurrent/kurrent_client.h"
#include "kurrent/testing/fake_services.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <future>
#include <thread>

#include "kurrent/wire.h"
#include "proto/kurrentdb/serverfeatures.grpc.pb.h"
#include "proto/kurrentdb/streams.grpc.pb.h"
#include "server/kurrent_server.h"
#include "store/event_store.h"

namespace kingest::kurrent {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

EventData event(const std::string& tag, size_t data_bytes = 16) {
  return EventData{.id = Uuid::v4(),
                   .type = "TestEvent",
                   .content_type = "application/json",
                   .data = "{\"tag\":\"" + tag + "\",\"pad\":\"" + std::string(data_bytes, 'x') + "\"}",
                   .metadata = "{\"source\":\"test\"}"};
}

AppendOutcome append_sync(Sink& sink, const std::string& stream, ExpectedRevision expected, std::vector<EventData> events) {
  std::promise<AppendOutcome> p;
  auto f = p.get_future();
  sink.append(AppendRequest{.stream = stream, .expected = expected, .events = std::move(events)},
              [&p](AppendOutcome o) { p.set_value(std::move(o)); });
  return f.get();
}

class Served {
 public:
  explicit Served(server::ServerOptions o = {}, std::string db = {}) : db_(std::move(db)) {
    store_ = store::EventStore::open({.path = db_, .in_memory = db_.empty()}).value();
    o.listen = "127.0.0.1:0";
    server_ = server::KurrentServer::start(*store_, o).value();
    port_ = server_->port();
    options_ = o;
  }
  ~Served() { stop(); }
  void stop() {
    if (server_) server_->shutdown();
    server_.reset();
    if (store_) store_->close();
    store_.reset();
  }
  // Back on the same port (and the same database file).
  void restart() {
    store_ = store::EventStore::open({.path = db_, .in_memory = db_.empty()}).value();
    auto o = options_;
    o.listen = "127.0.0.1:" + std::to_string(port_);
    for (int i = 0; i < 100 && !server_; ++i) {
      auto s = server::KurrentServer::start(*store_, o);
      if (s.ok()) {
        server_ = std::move(*s);
      } else {
        std::this_thread::sleep_for(milliseconds(50));
      }
    }
    ASSERT_TRUE(server_) << "could not listen on port " << port_ << " again";
  }
  [[nodiscard]] std::string url(const std::string& extra = "") const {
    return "kurrentdb://127.0.0.1:" + std::to_string(port_) + "?tls=false" + extra;
  }
  store::EventStore& store() { return *store_; }

 private:
  std::string db_;
  server::ServerOptions options_;
  std::unique_ptr<store::EventStore> store_;
  std::unique_ptr<server::KurrentServer> server_;
  int port_ = 0;
};

std::unique_ptr<KurrentClient> connect_to(const std::string& url, ClientOptions o = {}) {
  auto settings = parse_connection_string(url);
  EXPECT_TRUE(settings.ok()) << settings.status();
  auto c = KurrentClient::connect(*settings, o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

class EveryMode : public ::testing::TestWithParam<AppendMode> {};

TEST_P(EveryMode, ExpectedRevisionCases) {
  Served s;
  auto c = connect_to(s.url(), {.mode = GetParam()});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->append_mode(), to_string(GetParam()));
  EXPECT_EQ(c->name(), "kurrentdb-grpc");

  auto o = append_sync(*c, "s-1", ExpectAny{}, {event("a")});
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_EQ(o.current_revision, StreamRevision{0});

  o = append_sync(*c, "s-1", ExpectNoStream{}, {event("b")});
  EXPECT_EQ(o.code, AppendCode::kWrongExpectedVersion);
  EXPECT_EQ(o.current_revision, StreamRevision{0});

  o = append_sync(*c, "s-1", StreamRevision{0}, {event("c"), event("d")});
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_EQ(o.current_revision, StreamRevision{2});

  o = append_sync(*c, "s-1", StreamRevision{5}, {event("e")});
  EXPECT_EQ(o.code, AppendCode::kWrongExpectedVersion);
  EXPECT_EQ(o.current_revision, StreamRevision{2});

  o = append_sync(*c, "s-2", ExpectStreamExists{}, {event("f")});
  EXPECT_EQ(o.code, AppendCode::kWrongExpectedVersion);
  EXPECT_EQ(o.current_revision, std::nullopt) << "no stream";

  o = append_sync(*c, "s-1", ExpectStreamExists{}, {event("g")});
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_EQ(o.current_revision, StreamRevision{3});

  o = append_sync(*c, "s-3", ExpectNoStream{}, {event("h")});
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_EQ(o.current_revision, StreamRevision{0});

  auto tail = c->read_tail("s-1");
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_TRUE(tail->exists);
  EXPECT_EQ(tail->last_revision, StreamRevision{3});
  auto missing = c->read_tail("nothing-here");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->exists);
}

TEST_P(EveryMode, ReadsBackWhatWasWritten) {
  Served s;
  auto c = connect_to(s.url(), {.mode = GetParam()});
  ASSERT_TRUE(c);
  std::vector<EventData> events{event("1"), event("2"), event("3")};
  events[2].content_type = "application/octet-stream";
  events[2].data = std::string("\x00\x01\xff", 3);
  auto o = append_sync(*c, "read-1", ExpectNoStream{}, events);
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  auto read = c->read_forwards("read-1", StreamRevision{1}, 10);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& r = (*read)[i];
    const auto& e = events[i + 1];
    EXPECT_EQ(r.id, e.id);
    EXPECT_EQ(r.revision, StreamRevision{i + 1});
    EXPECT_EQ(r.type, e.type);
    EXPECT_EQ(r.content_type, e.content_type);
    EXPECT_EQ(r.data, e.data);
    if (GetParam() != AppendMode::kSession && GetParam() != AppendMode::kRecords) {
      EXPECT_EQ(r.metadata, e.metadata);
    } else {
      // v2 properties come back as JSON metadata with KurrentDB's schema keys added.
      EXPECT_NE(r.metadata.find("\"source\":\"test\""), std::string::npos) << r.metadata;
      EXPECT_NE(r.metadata.find("$schema.name"), std::string::npos) << r.metadata;
    }
  }
}

TEST_P(EveryMode, ReappendOfTheSameEventsWritesNothing) {
  Served s;
  auto c = connect_to(s.url(), {.mode = GetParam()});
  ASSERT_TRUE(c);
  std::vector<EventData> events{event("a"), event("b")};
  ASSERT_EQ(append_sync(*c, "idem-1", ExpectNoStream{}, events).code, AppendCode::kSuccess);
  auto again = append_sync(*c, "idem-1", ExpectNoStream{}, events);
  if (GetParam() == AppendMode::kRecords) {
    // AppendRecords' checks are exact: the stream's state comes back, for the caller to classify.
    EXPECT_EQ(again.code, AppendCode::kWrongExpectedVersion) << again.message;
  } else {
    EXPECT_EQ(again.code, AppendCode::kSuccess) << again.message;
  }
  EXPECT_EQ(again.current_revision, StreamRevision{1});
  auto read = c->read_forwards("idem-1", StreamRevision{0}, 100);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->size(), 2u) << "the re-append wrote nothing";
}

TEST_P(EveryMode, SplitsGroupsToStayUnderTheMaxAppendSize) {
  // The server refuses anything over 4 KiB, so the 25 KiB group only lands if it was split.
  Served s({.max_append_size = 4096});
  auto c = connect_to(s.url(), {.mode = GetParam(), .max_append_size = 4096});
  ASSERT_TRUE(c);
  std::vector<EventData> events;
  for (int i = 0; i < 50; ++i) events.push_back(event(std::to_string(i), 480));
  auto o = append_sync(*c, "big-1", ExpectNoStream{}, events);
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_EQ(o.current_revision, StreamRevision{49});
  EXPECT_GE(c->stats().splits, 1u);
  EXPECT_GE(c->stats().appends, 7u) << "25 KiB in parts of at most 4 KiB";
  auto read = c->read_forwards("big-1", StreamRevision{0}, 100);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 50u);
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ((*read)[i].id, events[i].id) << "order kept at " << i;

  // One event over the limit on its own: too large, for the pipeline to dead-letter.
  auto huge = append_sync(*c, "big-2", ExpectAny{}, {event("huge", 8000)});
  EXPECT_EQ(huge.code, AppendCode::kTooLarge) << huge.message;
}

TEST_P(EveryMode, ManyConcurrentStreams) {
  Served s;
  auto c = connect_to(s.url(), {.mode = GetParam(), .max_in_flight_appends = 16});
  ASSERT_TRUE(c);
  constexpr int kStreams = 200;
  std::vector<std::promise<AppendOutcome>> done(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    c->append(AppendRequest{.stream = "many-" + std::to_string(i), .expected = ExpectNoStream{},
                            .events = {event("x"), event("y")}},
              [&done, i](AppendOutcome o) { done[size_t(i)].set_value(std::move(o)); });
  }
  for (auto& d : done) {
    auto o = d.get_future().get();
    EXPECT_EQ(o.code, AppendCode::kSuccess) << o.message;
    EXPECT_EQ(o.current_revision, StreamRevision{1});
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, EveryMode,
                         ::testing::Values(AppendMode::kBatch, AppendMode::kAppend, AppendMode::kSession,
                                           AppendMode::kRecords),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(KurrentClient, FallsBackToAppendWhenBatchAppendIsNotOffered) {
  Served s({.hide_batch_append = true});
  auto c = connect_to(s.url(), {.mode = AppendMode::kBatch});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->append_mode(), "append");
  EXPECT_EQ(append_sync(*c, "fb-1", ExpectNoStream{}, {event("a")}).code, AppendCode::kSuccess);
}

TEST(KurrentClient, SessionConflictOnOneStreamDoesNotSinkTheOthers) {
  Served s;
  // Everything submitted within the linger shares one session.
  auto c = connect_to(s.url(), {.mode = AppendMode::kSession, .max_sessions_in_flight = 1,
                                .session_linger = milliseconds(300)});
  ASSERT_TRUE(c);
  ASSERT_EQ(append_sync(*c, "conflict-x", ExpectNoStream{}, {event("first")}).code, AppendCode::kSuccess);
  constexpr int kOthers = 10;
  std::vector<std::promise<AppendOutcome>> done(kOthers + 1);
  for (int i = 0; i < kOthers; ++i) {
    c->append(AppendRequest{.stream = "conflict-" + std::to_string(i), .expected = ExpectNoStream{}, .events = {event("o")}},
              [&done, i](AppendOutcome o) { done[size_t(i)].set_value(std::move(o)); });
  }
  c->append(AppendRequest{.stream = "conflict-x", .expected = ExpectNoStream{}, .events = {event("second")}},
            [&done](AppendOutcome o) { done[kOthers].set_value(std::move(o)); });
  for (int i = 0; i < kOthers; ++i) {
    auto o = done[size_t(i)].get_future().get();
    EXPECT_EQ(o.code, AppendCode::kSuccess) << "stream " << i << ": " << o.message;
  }
  auto x = done[kOthers].get_future().get();
  EXPECT_EQ(x.code, AppendCode::kWrongExpectedVersion);
  EXPECT_EQ(x.current_revision, StreamRevision{0});
  EXPECT_GE(c->stats().appends, 3u) << "the first session, the conflicting one, and the retry without it";
}

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
          std::this_thread::sleep_for(milliseconds(5));
        }
      });
    }
    std::this_thread::sleep_for(milliseconds(60));
    s.stop();  // acknowledged appends are durable; the rest are retried
    std::this_thread::sleep_for(milliseconds(400));
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

// ---- records mode (v2 AppendRecords) ----------------------------------------------------------------

TEST(KurrentClient, AutoPicksRecordsThenBatchThenAppend) {
  {
    Served s;
    auto c = connect_to(s.url());
    ASSERT_TRUE(c);
    EXPECT_EQ(c->append_mode(), "records");
    EXPECT_TRUE(c->exact_answers()) << "no idempotent re-append: the pipeline need not read new streams";
    EXPECT_EQ(append_sync(*c, "auto-1", ExpectNoStream{}, {event("a")}).code, AppendCode::kSuccess);
    EXPECT_EQ(c->stats().v2_requests, 1u);
  }
  {
    Served s({.hide_append_records = true});
    auto c = connect_to(s.url(), {.mode = AppendMode::kAuto});
    ASSERT_TRUE(c);
    EXPECT_EQ(c->append_mode(), "batch");
    EXPECT_FALSE(c->exact_answers()) << "BatchAppend answers a re-append with success";
    auto settings = parse_connection_string(s.url());
    ASSERT_TRUE(settings.ok());
    auto refused = KurrentClient::connect(*settings, {.mode = AppendMode::kRecords});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(refused.status().message().find("26.1"), std::string::npos) << refused.status();
  }
  {
    Served s({.hide_batch_append = true, .hide_append_records = true});
    auto c = connect_to(s.url());
    ASSERT_TRUE(c);
    EXPECT_EQ(c->append_mode(), "append");
  }
  EXPECT_EQ(parse_append_mode("records").value(), AppendMode::kRecords);
  EXPECT_EQ(parse_append_mode("auto").value(), AppendMode::kAuto);
  EXPECT_NE(parse_append_mode("bulk").status().message().find("auto, records, batch"), std::string::npos);
}

// Groups handed over together, answered from one request: submitted within the linger, with one
// request at a time on the wire.
struct Submitted {
  std::vector<std::promise<AppendOutcome>> done;
  std::vector<std::future<AppendOutcome>> futures;
  explicit Submitted(size_t n) : done(n) {
    for (auto& d : done) futures.push_back(d.get_future());
  }
  void submit(KurrentClient& c, size_t i, AppendRequest req) {
    c.append(std::move(req), [this, i](AppendOutcome o) { done[i].set_value(std::move(o)); });
  }
  AppendOutcome get(size_t i) { return futures[i].get(); }
};

ClientOptions one_request_at_a_time() {
  return {.mode = AppendMode::kRecords, .max_sessions_in_flight = 1, .session_linger = milliseconds(300)};
}

TEST(KurrentClient, RecordsSendsManyStreamsInOneRequest) {
  Served s;
  auto c = connect_to(s.url(), one_request_at_a_time());
  ASSERT_TRUE(c);
  constexpr size_t kStreams = 50;
  Submitted sub(kStreams);
  for (size_t i = 0; i < kStreams; ++i) {
    std::vector<EventData> events;
    for (size_t k = 0; k <= i % 3; ++k) events.push_back(event(std::to_string(k)));
    sub.submit(*c, i, {.stream = "wide-" + std::to_string(i), .expected = ExpectNoStream{}, .events = events});
  }
  for (size_t i = 0; i < kStreams; ++i) {
    auto o = sub.get(i);
    ASSERT_EQ(o.code, AppendCode::kSuccess) << i << ": " << o.message;
    EXPECT_EQ(o.current_revision, StreamRevision{i % 3});
    EXPECT_GT(o.position, 0u);
  }
  EXPECT_EQ(c->stats().v2_requests, 1u) << "one AppendRecords request for every stream";
  EXPECT_EQ(c->stats().v2_request_streams, kStreams);
  auto read = c->read_forwards("wide-8", StreamRevision{0}, 10);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->size(), 3u);
}

TEST(KurrentClient, RecordsConflictsAreAnsweredAndTheOthersWritten) {
  Served s;
  auto c = connect_to(s.url(), one_request_at_a_time());
  ASSERT_TRUE(c);
  // Three streams whose expected revisions are stale, in one request with ten good ones.
  ASSERT_EQ(append_sync(*c, "cf-a", ExpectNoStream{}, {event("a0"), event("a1")}).code, AppendCode::kSuccess);
  ASSERT_EQ(append_sync(*c, "cf-b", ExpectNoStream{}, {event("b0")}).code, AppendCode::kSuccess);
  const uint64_t before = c->stats().v2_requests;
  constexpr size_t kGood = 10;
  Submitted sub(kGood + 3);
  for (size_t i = 0; i < kGood; ++i) {
    sub.submit(*c, i, {.stream = "cf-" + std::to_string(i), .expected = ExpectNoStream{}, .events = {event("o")}});
  }
  sub.submit(*c, kGood, {.stream = "cf-a", .expected = StreamRevision{0}, .events = {event("stale")}});
  sub.submit(*c, kGood + 1, {.stream = "cf-b", .expected = ExpectNoStream{}, .events = {event("stale")}});
  sub.submit(*c, kGood + 2, {.stream = "cf-none", .expected = StreamRevision{3}, .events = {event("stale")}});
  for (size_t i = 0; i < kGood; ++i) {
    auto o = sub.get(i);
    EXPECT_EQ(o.code, AppendCode::kSuccess) << "stream " << i << ": " << o.message;
    EXPECT_EQ(o.current_revision, StreamRevision{0});
  }
  auto a = sub.get(kGood);
  EXPECT_EQ(a.code, AppendCode::kWrongExpectedVersion);
  EXPECT_EQ(a.current_revision, StreamRevision{1});
  auto b = sub.get(kGood + 1);
  EXPECT_EQ(b.code, AppendCode::kWrongExpectedVersion);
  EXPECT_EQ(b.current_revision, StreamRevision{0});
  auto none = sub.get(kGood + 2);
  EXPECT_EQ(none.code, AppendCode::kWrongExpectedVersion);
  EXPECT_EQ(none.current_revision, std::nullopt) << "no stream";
  // Every failing check came back at once: the request with them, and the others sent again.
  EXPECT_EQ(c->stats().v2_requests - before, 2u);
  auto read = c->read_forwards("cf-a", StreamRevision{0}, 10);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->size(), 2u) << "nothing of the stale append written";
}

TEST(KurrentClient, RecordsToATombstonedStreamAreStreamDeleted) {
  Served s;
  auto c = connect_to(s.url(), one_request_at_a_time());
  ASSERT_TRUE(c);
  ASSERT_EQ(append_sync(*c, "ts-dead", ExpectNoStream{}, {event("a")}).code, AppendCode::kSuccess);
  ASSERT_EQ(s.store().tombstone("ts-dead", ExpectAny{}).status, store::AppendStatus::kSuccess);
  Submitted sub(3);
  sub.submit(*c, 0, {.stream = "ts-live", .expected = ExpectAny{}, .events = {event("l")}});
  sub.submit(*c, 1, {.stream = "ts-dead", .expected = ExpectAny{}, .events = {event("d")}});
  sub.submit(*c, 2, {.stream = "ts-live-2", .expected = ExpectNoStream{}, .events = {event("l")}});
  EXPECT_EQ(sub.get(0).code, AppendCode::kSuccess);
  EXPECT_EQ(sub.get(1).code, AppendCode::kStreamDeleted);
  EXPECT_EQ(sub.get(2).code, AppendCode::kSuccess);
}

TEST(KurrentClient, RecordsSizeLimits) {
  // The server allows 4 KiB per request and 2 KiB per event; the client does not know.
  Served s({.max_append_size = 4096, .max_event_size = 2048});
  auto c = connect_to(s.url(), one_request_at_a_time());
  ASSERT_TRUE(c);
  // A request over the limit: split until each part fits.
  constexpr size_t kStreams = 12;
  Submitted sub(kStreams + 1);
  for (size_t i = 0; i < kStreams; ++i) {
    sub.submit(*c, i, {.stream = "sz-" + std::to_string(i), .expected = ExpectNoStream{}, .events = {event("x", 900)}});
  }
  // An event over the server's limit: that stream is answered too large; the others are written.
  sub.submit(*c, kStreams, {.stream = "sz-huge", .expected = ExpectAny{}, .events = {event("huge", 3000)}});
  for (size_t i = 0; i < kStreams; ++i) {
    auto o = sub.get(i);
    EXPECT_EQ(o.code, AppendCode::kSuccess) << i << ": " << o.message;
  }
  auto huge = sub.get(kStreams);
  EXPECT_EQ(huge.code, AppendCode::kTooLarge) << huge.message;
  EXPECT_GE(c->stats().splits, 1u);
  EXPECT_GE(c->stats().v2_requests, 4u) << "about 11 KiB in requests of at most 4 KiB";
}

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

using testing::BatchFeatures;

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
}  // namespace kingest::kurrent

namespace kingest::kurrent {
namespace {

TEST(KurrentClient, ReadsManyTailsAtOnce) {
  Served s;
  auto c = connect_to(s.url());
  ASSERT_TRUE(c);
  std::vector<std::string> names;
  std::vector<Uuid> last;
  for (int i = 0; i < 300; ++i) {
    names.push_back("tails-" + std::to_string(i));
    if (i % 3 == 0) continue;  // a third of them do not exist
    std::vector<EventData> events;
    for (int k = 0; k <= i % 4; ++k) events.push_back(event(std::to_string(k)));
    last.resize(size_t(i) + 1);
    last[size_t(i)] = events.back().id;
    ASSERT_EQ(append_sync(*c, names.back(), ExpectNoStream{}, events).code, AppendCode::kSuccess);
  }
  auto tails = c->read_tails(names);
  ASSERT_EQ(tails.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_TRUE(tails[i].ok()) << tails[i].status();
    if (i % 3 == 0) {
      EXPECT_FALSE(tails[i]->exists) << names[i];
    } else {
      EXPECT_TRUE(tails[i]->exists) << names[i];
      EXPECT_EQ(tails[i]->last_revision, StreamRevision{i % 4}) << names[i];
      EXPECT_EQ(tails[i]->last_id, last[i]) << names[i];
    }
  }
}

}  // namespace
}  // namespace kingest::kurrent
