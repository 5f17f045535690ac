// What the engine dead-letters and why (conflicts, gaps at the end of a run, bad input, events the
// sink calls too large), without blocking other streams; and a fatal sink error that stops the run.
#include "pipeline/testing/engine_harness.h"

namespace kingest::pipeline::engine_testing {
namespace {

TEST_P(IngestEngineTest, DeadLettersConflictsGapsAndBadInputWithoutBlockingOtherStreams) {
  Harness h;
  // agg-c: revision 0 already holds a different event.
  h.sink.preload("Task-agg-c", EventData{Uuid::v4(), "Other", "application/json", "{}", "{}"});
  std::vector<Spec> specs = {{"agg-c", 1, Uuid::v4().to_string()}, {"agg-ok", 1, ""},  {"agg-c", 2, ""},
                             {"agg-g", 1, ""},                      {"agg-g", 2, ""},   {"agg-g", 4, ""},
                             {"agg-ok", 2, ""},                     {"agg-g", 5, ""},   {"agg-z", 0, ""}};
  std::vector<SourceMessage> batch;
  TopicPartition tp{"task-events", 0};
  int64_t off = 0;
  for (const auto& s : specs) batch.push_back(message(tp, off++, envelope(s)));
  batch.push_back(message(tp, off++, R"({"eventType":"X","aggregateType":"Task","aggregateVersion":1})"));
  batch.push_back(message(tp, off++, "not json at all"));
  batch.push_back(message(tp, off++, R"({"eventType":"X","aggregateType":"$$Victim","aggregateId":"1","aggregateVersion":1})"));
  h.engine->submit(std::move(batch), 100);
  h.engine->wait_idle();
  EXPECT_EQ(h.engine->stats().events_held, 2u) << "agg-g 4 and 5 wait for version 3";
  EXPECT_EQ(h.engine->stats().dead_lettered, 6u);
  h.engine->give_up_gaps();  // the end of a bounded run: version 3 never came
  h.engine->wait_idle();

  auto letters = h.dlq.letters();
  std::map<int64_t, std::string> by_offset;
  for (const auto& l : letters) by_offset[l.offset] = l.reason;
  EXPECT_EQ(by_offset[0], "revision-conflict");
  EXPECT_EQ(by_offset[2], "after-dead-letter");
  EXPECT_EQ(by_offset[5], "revision-gap");
  EXPECT_EQ(by_offset[7], "after-dead-letter");
  EXPECT_EQ(by_offset[8], "version-below-base");
  EXPECT_EQ(by_offset[9], "decode-error");
  EXPECT_EQ(by_offset[10], "decode-error");
  EXPECT_EQ(by_offset[11], "system-stream");
  EXPECT_EQ(letters.size(), 8u);
  auto st = h.engine->stats();
  EXPECT_EQ(st.dead_lettered, 8u);
  EXPECT_EQ(st.events_held, 0u);
  EXPECT_EQ(st.conflicts, 1u);
  EXPECT_EQ(st.events_appended, 4u) << "agg-ok 1,2 and agg-g 1,2";
  EXPECT_EQ(h.sink.streams()["Task-agg-ok"].size(), 2u);
  EXPECT_EQ(h.done_count(), 12u) << "dead letters count as done once durable";
}

TEST_P(IngestEngineTest, AFatalSinkErrorStopsTheRunAndCommitsNothingOfTheFailedBatch) {
  Harness h(/*slow_decoder=*/false);
  h.sink.fatal_stream = "Task-agg-bad";
  TopicPartition tp{"task-events", 0};
  std::vector<SourceMessage> b1, b2;
  b1.push_back(message(tp, 0, envelope({"agg-a", 1, ""})));
  h.engine->submit(std::move(b1), 10);
  h.engine->wait_idle();
  b2.push_back(message(tp, 1, envelope({"agg-bad", 1, ""})));
  b2.push_back(message(tp, 2, envelope({"agg-a", 2, ""})));
  h.engine->submit(std::move(b2), 10);
  h.engine->wait_idle();
  EXPECT_FALSE(h.engine->fatal().ok());
  EXPECT_NE(std::string(h.engine->fatal().message()).find("permission denied"), std::string::npos);
  std::lock_guard lock(h.mu);
  EXPECT_EQ(h.done[tp], (std::vector<int64_t>{0})) << "only the first batch is done";
}

TEST_P(IngestEngineTest, DeadLettersASingleEventTheSinkCallsTooLarge) {
  Harness h(/*slow_decoder=*/false);
  h.sink.too_large_stream = "Task-agg-x";
  std::vector<SourceMessage> b;
  TopicPartition tp{"task-events", 0};
  b.push_back(message(tp, 0, envelope({"agg-x", 1, ""})));
  b.push_back(message(tp, 1, envelope({"agg-x", 2, ""})));
  b.push_back(message(tp, 2, envelope({"agg-y", 1, ""})));
  h.engine->submit(std::move(b), 10);
  h.engine->wait_idle();
  auto letters = h.dlq.letters();
  ASSERT_EQ(letters.size(), 2u);
  std::map<int64_t, std::string> by_offset;
  for (const auto& l : letters) by_offset[l.offset] = l.reason;
  EXPECT_EQ(by_offset[0], "event-too-large");
  EXPECT_EQ(by_offset[1], "after-dead-letter");
  EXPECT_EQ(h.sink.streams()["Task-agg-y"].size(), 1u);
  EXPECT_EQ(h.done_count(), 3u);
}

}  // namespace
}  // namespace kingest::pipeline::engine_testing
