// KurrentClient in records mode (v2 AppendRecords) against the project's server over loopback gRPC:
// how auto picks it, many streams in one request, the requests on the wire at once, conflicts answered while the others are written,
// tombstoned streams, and the server's size limits.
#include "kurrent/kurrent_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kurrent/testing/fake_services.h"
#include "kurrent/testing/served.h"

// In the helpers' namespace (testing/served.h, testing/fake_services.h).
namespace kingest::kurrent::testing {
namespace {

using std::chrono::milliseconds;

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

TEST(KurrentClient, RecordsRefusesAnAppendThatCannotBeRecordsAndWritesTheRestOfItsRequest) {
  Served s;
  auto c = connect_to(s.url(), one_request_at_a_time());
  ASSERT_TRUE(c);
  constexpr size_t kGood = 6;
  Submitted sub(kGood + 1);
  for (size_t i = 0; i < kGood / 2; ++i) {
    sub.submit(*c, i, {.stream = "mixed-" + std::to_string(i), .expected = ExpectNoStream{}, .events = {event("a")}});
  }
  // Metadata that is not a JSON object has no AppendRecords properties.
  EventData bad = event("bad");
  bad.metadata = "[1,2]";
  sub.submit(*c, kGood, {.stream = "mixed-bad", .expected = ExpectNoStream{}, .events = {event("ok"), bad}});
  for (size_t i = kGood / 2; i < kGood; ++i) {
    sub.submit(*c, i, {.stream = "mixed-" + std::to_string(i), .expected = ExpectNoStream{}, .events = {event("b")}});
  }
  auto refused = sub.get(kGood);
  EXPECT_EQ(refused.code, AppendCode::kRejected);
  EXPECT_NE(refused.message.find("not a JSON object"), std::string::npos) << refused.message;
  EXPECT_NE(refused.message.find(bad.id.to_string()), std::string::npos) << "names the event: " << refused.message;
  for (size_t i = 0; i < kGood; ++i) {
    auto o = sub.get(i);
    EXPECT_EQ(o.code, AppendCode::kSuccess) << i << ": " << o.message;
    auto read = c->read_forwards("mixed-" + std::to_string(i), StreamRevision{0}, 10);
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(read->size(), 1u) << i;
  }
  EXPECT_EQ(c->stats().v2_requests, 1u) << "the others went in the request the refused one was taken out of";
  auto none = c->read_forwards("mixed-bad", StreamRevision{0}, 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty()) << "nothing of the refused append written";
}

// AppendRecords answered with its streams in the reverse of the request's order, each at 100 more
// than its last record's revision in a new stream.
class ReversedRecords final : public kurrentdb::protocol::v2::streams::StreamsService::CallbackService {
  grpc::ServerUnaryReactor* AppendRecords(grpc::CallbackServerContext* ctx,
                                          const kurrentdb::protocol::v2::streams::AppendRecordsRequest* req,
                                          kurrentdb::protocol::v2::streams::AppendRecordsResponse* resp) override {
    std::vector<std::string> order;
    std::map<std::string, int64_t> records;
    for (const auto& r : req->records()) {
      if (records[r.stream()]++ == 0) order.push_back(r.stream());
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      auto* out = resp->add_revisions();
      out->set_stream(*it);
      out->set_revision(records[*it] - 1 + 100);
    }
    resp->set_position(7);
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
};

TEST(KurrentClient, RecordsAnswersAreMatchedToTheirStreamsInAnyOrder) {
  EmptyReads reads;
  ReversedRecords records;
  RecordsFeatures features;
  int port = 0;
  auto server = serve({&reads, &records, &features}, &port);
  ASSERT_TRUE(server);
  auto c = connect_to("kurrentdb://127.0.0.1:" + std::to_string(port) + "?tls=false", one_request_at_a_time());
  ASSERT_TRUE(c);
  constexpr size_t kStreams = 5;
  Submitted sub(kStreams);
  for (size_t i = 0; i < kStreams; ++i) {
    std::vector<EventData> events;
    for (size_t k = 0; k <= i; ++k) events.push_back(event(std::to_string(k)));
    sub.submit(*c, i, {.stream = "order-" + std::to_string(i), .expected = ExpectNoStream{}, .events = events});
  }
  for (size_t i = 0; i < kStreams; ++i) {
    auto o = sub.get(i);
    ASSERT_EQ(o.code, AppendCode::kSuccess) << i << ": " << o.message;
    EXPECT_EQ(o.current_revision, StreamRevision{i + 100}) << "stream order-" << i << " got another stream's answer";
  }
  EXPECT_EQ(c->stats().v2_requests, 1u);
  c->close(milliseconds(2000));
  server->Shutdown(std::chrono::system_clock::now() + milliseconds(1000));
}

// AppendRecords answered `hold` after it arrives, every stream written from revision 0; counts the
// requests it holds at once.
class HeldRecords final : public kurrentdb::protocol::v2::streams::StreamsService::CallbackService {
 public:
  explicit HeldRecords(milliseconds hold) : hold_(hold) {}
  ~HeldRecords() override {
    std::lock_guard lock(mu_);
    for (auto& t : answers_) t.join();
  }
  int most_at_once() const { return most_.load(); }

 private:
  grpc::ServerUnaryReactor* AppendRecords(grpc::CallbackServerContext* ctx,
                                          const kurrentdb::protocol::v2::streams::AppendRecordsRequest* req,
                                          kurrentdb::protocol::v2::streams::AppendRecordsResponse* resp) override {
    const int now = ++held_;
    for (int most = most_.load(); now > most && !most_.compare_exchange_weak(most, now);) {
    }
    std::vector<std::string> order;
    std::map<std::string, int64_t> records;
    for (const auto& r : req->records()) {
      if (records[r.stream()]++ == 0) order.push_back(r.stream());
    }
    for (const auto& stream : order) {
      auto* out = resp->add_revisions();
      out->set_stream(stream);
      out->set_revision(records[stream] - 1);
    }
    resp->set_position(1);
    auto* r = ctx->DefaultReactor();
    std::lock_guard lock(mu_);
    answers_.emplace_back([this, r] {
      std::this_thread::sleep_for(hold_);
      --held_;  // before the answer: the client may send the next request as soon as it has it
      r->Finish(grpc::Status::OK);
    });
    return r;
  }

  const milliseconds hold_;
  std::atomic<int> held_{0}, most_{0};
  std::mutex mu_;
  std::vector<std::thread> answers_;
};

TEST(KurrentClient, RecordsKeepsAtMostItsRequestsInFlightOnTheWire) {
  EmptyReads reads;
  HeldRecords records(milliseconds(100));
  RecordsFeatures features;
  int port = 0;
  auto server = serve({&reads, &records, &features}, &port);
  ASSERT_TRUE(server);
  auto c = connect_to("kurrentdb://127.0.0.1:" + std::to_string(port) + "?tls=false",
                      {.mode = AppendMode::kRecords, .max_sessions_in_flight = 3});
  ASSERT_TRUE(c);
  constexpr size_t kStreams = 40;
  Submitted sub(kStreams);
  for (size_t i = 0; i < kStreams; ++i) {
    sub.submit(*c, i, {.stream = "held-" + std::to_string(i), .expected = ExpectNoStream{}, .events = {event("a")}});
  }
  for (size_t i = 0; i < kStreams; ++i) {
    auto o = sub.get(i);
    ASSERT_EQ(o.code, AppendCode::kSuccess) << i << ": " << o.message;
  }
  // With no linger, each of the first three groups leaves at once in a request of its own; the
  // others wait in the client until an answer frees a request.
  EXPECT_EQ(records.most_at_once(), 3);
  EXPECT_GE(c->stats().v2_requests, 4u);
  EXPECT_EQ(c->stats().v2_request_streams, kStreams);
  c->close(milliseconds(2000));
  server->Shutdown(std::chrono::system_clock::now() + milliseconds(1000));
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

  // The answer told the server's limit and count: later requests are packed under them, none is
  // refused and split again.
  const auto splits = c->stats().splits;
  const auto requests = c->stats().v2_requests;
  Submitted again(kStreams);
  for (size_t i = 0; i < kStreams; ++i) {
    again.submit(*c, i, {.stream = "sz2-" + std::to_string(i), .expected = ExpectNoStream{}, .events = {event("x", 900)}});
  }
  for (size_t i = 0; i < kStreams; ++i) {
    auto o = again.get(i);
    EXPECT_EQ(o.code, AppendCode::kSuccess) << i << ": " << o.message;
  }
  EXPECT_EQ(c->stats().splits, splits) << "a request over the server's limit again";
  EXPECT_GE(c->stats().v2_requests - requests, 3u) << "about 11 KiB in requests of at most 4 KiB";
}

}  // namespace
}  // namespace kingest::kurrent::testing
