// KurrentClient against the project's KurrentDB-compatible server (server/) over loopback gRPC, in
// each append mode: expected revisions, reads, re-appends, splits under the size limit, many streams
// at once; the fallback when BatchAppend is missing, session conflicts, and many tails at once.
#include "kurrent/kurrent_client.h"

#include <gtest/gtest.h>

#include <future>
#include <string>
#include <vector>

#include "kurrent/testing/served.h"

// In the helpers' namespace (testing/served.h, testing/fake_services.h).
namespace kingest::kurrent::testing {
namespace {

using std::chrono::milliseconds;

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

// append_many: one call for many streams' appends, most of them waiting for room (16 in flight),
// one without events refused at once; every other one written, in every mode.
TEST_P(EveryMode, ManyStreamsHandedOverInOneCall) {
  Served s;
  auto c = connect_to(s.url(), {.mode = GetParam(), .max_in_flight_appends = 16});
  ASSERT_TRUE(c);
  constexpr int kStreams = 200;
  std::vector<std::promise<AppendOutcome>> done(kStreams + 1);
  std::vector<Sink::PendingAppend> many;
  for (int i = 0; i < kStreams; ++i) {
    many.push_back({AppendRequest{.stream = "handed-" + std::to_string(i), .expected = ExpectNoStream{},
                                  .events = {event("x"), event("y")}},
                    [&done, i](AppendOutcome o) { done[size_t(i)].set_value(std::move(o)); }});
  }
  many.push_back({AppendRequest{.stream = "handed-empty", .expected = ExpectNoStream{}, .events = {}},
                  [&done](AppendOutcome o) { done[kStreams].set_value(std::move(o)); }});
  c->append_many(many);
  EXPECT_TRUE(many.empty());
  for (int i = 0; i < kStreams; ++i) {
    auto o = done[size_t(i)].get_future().get();
    EXPECT_EQ(o.code, AppendCode::kSuccess) << "stream " << i << ": " << o.message;
    EXPECT_EQ(o.current_revision, StreamRevision{1});
  }
  EXPECT_EQ(done[kStreams].get_future().get().code, AppendCode::kRejected) << "an append needs an event";
  auto read = c->read_forwards("handed-137", StreamRevision{0}, 10);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->size(), 2u);
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
}  // namespace kingest::kurrent::testing
