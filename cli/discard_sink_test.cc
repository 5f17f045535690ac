// DiscardSink (`--sink discard`): answers each append with the revision it would have reached,
// keeps each stream's tail for reads, and refuses what the gRPC sink's records mode would refuse.
#include "cli/discard_sink.h"

#include <gtest/gtest.h>

#include <future>
#include <string>
#include <vector>

#include "kurrent/testing/served.h"

namespace kingest::cli {
namespace {

EventData event(const std::string& metadata = "{\"source\":\"test\"}") {
  return EventData{.id = Uuid::v4(),
                   .type = "TestEvent",
                   .content_type = "application/json",
                   .data = "{\"n\":1}",
                   .metadata = metadata,
                   .properties = {}};
}

using kurrent::testing::append_sync;

TEST(DiscardSink, AnswersTheRevisionReachedAndKeepsTheTail) {
  DiscardSink sink;
  const std::vector<EventData> first{event(), event()};
  auto o = append_sync(sink, "s-1", ExpectNoStream{}, first);
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_EQ(o.current_revision, StreamRevision{1});
  const std::vector<EventData> next{event(), event(), event()};
  o = append_sync(sink, "s-1", StreamRevision{1}, next);
  ASSERT_EQ(o.code, AppendCode::kSuccess) << o.message;
  EXPECT_EQ(o.current_revision, StreamRevision{4});

  auto tail = sink.read_tail("s-1");
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_TRUE(tail->exists);
  EXPECT_EQ(tail->last_revision, StreamRevision{4});
  EXPECT_EQ(tail->last_id, next.back().id);
  auto none = sink.read_tail("s-2");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->exists);
  EXPECT_GT(sink.encoded_bytes(), 0u);
}

TEST(DiscardSink, RefusesMetadataThatIsNotAnObjectAndAnswersTheRestOfTheCall) {
  DiscardSink sink;
  // Three appends handed over in one call; the second's metadata cannot be record properties.
  const std::vector<std::vector<EventData>> sent{{event(), event()}, {event("[1]")}, {event()}};
  std::vector<Sink::PendingAppend> many;
  std::vector<std::promise<AppendOutcome>> answers(sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    many.push_back({AppendRequest{.stream = "m-" + std::to_string(i), .expected = ExpectNoStream{}, .events = sent[i]},
                    [&answers, i](AppendOutcome o) { answers[i].set_value(std::move(o)); }});
  }
  sink.append_many(many);
  EXPECT_TRUE(many.empty());
  for (size_t i = 0; i < sent.size(); ++i) {
    const AppendOutcome o = answers[i].get_future().get();
    if (i == 1) {
      EXPECT_EQ(o.code, AppendCode::kRejected);
      EXPECT_NE(o.message.find("not a JSON object"), std::string::npos) << o.message;
      EXPECT_FALSE(sink.read_tail("m-1")->exists) << "a refused append leaves no tail";
    } else {
      EXPECT_EQ(o.code, AppendCode::kSuccess) << o.message;
      EXPECT_EQ(o.current_revision, StreamRevision{sent[i].size() - 1});
      EXPECT_EQ(sink.read_tail("m-" + std::to_string(i))->last_id, sent[i].back().id);
    }
  }
}

}  // namespace
}  // namespace kingest::cli
