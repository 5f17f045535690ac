// The engine's budgets: append slots, merging a stream's waiting groups into one append up to the
// append size limit, and splitting a group the sink calls too large.
#include "pipeline/testing/engine_harness.h"

namespace kingest::pipeline::engine_testing {
namespace {

TEST_P(IngestEngineTest, MergesAStreamsWaitingGroupsIntoOneAppend) {
  Harness h(/*slow_decoder=*/false);
  h.sink.hold();
  submit_one_by_one(h, {{"agg-m", 1, ""}});
  ASSERT_TRUE(eventually([&] { return h.sink.queued() == 1; })) << "version 1 is in flight";
  submit_one_by_one(h, {{"agg-m", 2, ""}, {"agg-m", 3, ""}, {"agg-m", 4, ""}});
  ASSERT_TRUE(eventually([&] { return h.engine->stats().pending_groups == 3; })) << "the three wait in the engine";
  EXPECT_EQ(h.sink.queued(), 1u) << "nothing more may be sent while version 1 is in flight";
  h.sink.release();
  h.engine->wait_idle();
  EXPECT_EQ(h.sink.append_sizes(), (std::vector<size_t>{1, 3})) << "versions 2..4 went out as one append";
  auto events = h.sink.streams()["Task-agg-m"];
  ASSERT_EQ(events.size(), 4u);
  for (size_t r = 0; r < 4; ++r) EXPECT_NE(events[r].data.find("\"v\":" + std::to_string(r + 1)), std::string::npos);
  EXPECT_EQ(h.done_count(), 4u) << "each of the four batches completes";
}

// A batch's groups, and the groups a burst of answers starts, reach the sink in append_many calls
// (one turn of its lock and one wake-up for many), and every event is written in order all the same.
TEST_P(IngestEngineTest, HandsABatchsAppendsToTheSinkTogether) {
  Harness h(/*slow_decoder=*/false);
  h.run(interleaved(300, 3, 11), 5);
  ASSERT_TRUE(h.engine->fatal().ok());
  const auto [calls, largest] = h.sink.many_calls();
  EXPECT_GT(calls, 0u);
  EXPECT_GT(largest, 1u) << "several streams' appends in one call";
  EXPECT_EQ(h.done_count(), 300u * 3u);
  auto streams = h.sink.streams();
  ASSERT_EQ(streams.size(), 300u);
  for (const auto& [name, events] : streams) {
    ASSERT_EQ(events.size(), 3u) << name;
    for (size_t r = 0; r < events.size(); ++r) EXPECT_NE(events[r].data.find("\"v\":" + std::to_string(r + 1)), std::string::npos) << name;
  }
}

TEST_P(IngestEngineTest, NeverHasMoreAppendsInFlightThanItsSlots) {
  Harness h(/*slow_decoder=*/true, 1u << 20, {}, /*max_appends_in_flight=*/3);
  h.run(interleaved(150, 8, 5), 9);
  ASSERT_TRUE(h.engine->fatal().ok());
  EXPECT_LE(h.sink.max_total_in_flight(), 3);
  EXPECT_GE(h.sink.max_total_in_flight(), 2) << "the slots are used";
  EXPECT_EQ(h.done_count(), 150u * 8u);
  auto streams = h.sink.streams();
  ASSERT_EQ(streams.size(), 150u);
  for (const auto& [name, events] : streams) {
    ASSERT_EQ(events.size(), 8u) << name;
    for (size_t r = 0; r < events.size(); ++r) EXPECT_EQ(events[r].revision.value(), r) << name;
  }
}

TEST_P(IngestEngineTest, AStreamWaitingForASlotMergesItsLaterGroups) {
  Harness h(/*slow_decoder=*/false, 1u << 20, {}, /*max_appends_in_flight=*/1);
  h.sink.hold();
  submit_one_by_one(h, {{"agg-a", 1, ""}});
  ASSERT_TRUE(eventually([&] { return h.sink.queued() == 1; })) << "agg-a holds the only slot";
  submit_one_by_one(h, {{"agg-b", 1, ""}, {"agg-b", 2, ""}, {"agg-b", 3, ""}});
  ASSERT_TRUE(eventually([&] { return h.engine->stats().pending_groups == 3; })) << "agg-b waits in the engine";
  EXPECT_EQ(h.sink.queued(), 1u) << "agg-b waits for the slot, in the engine";
  h.sink.release();
  h.engine->wait_idle();
  EXPECT_EQ(h.sink.append_sizes(), (std::vector<size_t>{1, 3})) << "agg-b's three versions went out as one append";
  EXPECT_EQ(h.sink.streams()["Task-agg-b"].size(), 3u);
  EXPECT_EQ(h.done_count(), 4u);
}

TEST_P(IngestEngineTest, DoesNotMergePastTheAppendSizeLimit) {
  // Each event is estimated at 541 bytes ({"v":N}, type TaskUpdated, 512 of overhead): two fit in 1100.
  Harness h(/*slow_decoder=*/false, /*max_append_bytes=*/1100);
  h.sink.hold();
  submit_one_by_one(h, {{"agg-s", 1, ""}});
  ASSERT_TRUE(eventually([&] { return h.sink.queued() == 1; }));
  submit_one_by_one(h, {{"agg-s", 2, ""}, {"agg-s", 3, ""}, {"agg-s", 4, ""}, {"agg-s", 5, ""}});
  ASSERT_TRUE(eventually([&] { return h.engine->stats().pending_groups == 4; }));
  h.sink.release();
  h.engine->wait_idle();
  EXPECT_EQ(h.sink.append_sizes(), (std::vector<size_t>{1, 2, 2})) << "merged up to the limit, never past it";
  EXPECT_EQ(h.sink.streams()["Task-agg-s"].size(), 5u);
}

TEST_P(IngestEngineTest, SplitsAGroupTheSinkCallsTooLarge) {
  Harness h(/*slow_decoder=*/false);
  h.sink.max_events_per_append = 3;
  std::vector<Spec> specs;
  for (int v = 1; v <= 10; ++v) specs.push_back({"agg-big", v, ""});
  specs.push_back({"agg-big2", 1, ""});
  std::vector<SourceMessage> b;
  TopicPartition tp{"task-events", 0};
  for (const auto& s : specs) b.push_back(message(tp, h.next_offset[tp]++, envelope(s)));
  h.engine->submit(std::move(b), 10);
  h.engine->wait_idle();
  EXPECT_TRUE(h.engine->fatal().ok());
  auto events = h.sink.streams()["Task-agg-big"];
  ASSERT_EQ(events.size(), 10u);
  for (size_t r = 0; r < 10; ++r) EXPECT_NE(events[r].data.find("\"v\":" + std::to_string(r + 1)), std::string::npos);
  for (size_t n : h.sink.append_sizes()) EXPECT_LE(n, 3u);
  EXPECT_EQ(h.engine->stats().dead_lettered, 0u);
  EXPECT_EQ(h.done_count(), 11u);
}

}  // namespace
}  // namespace kingest::pipeline::engine_testing
