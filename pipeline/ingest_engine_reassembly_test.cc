// Order from the aggregate's version: versions that arrive out of order are held and reassembled,
// gaps are re-checked against the store, given up when the run says so or the held budget is spent,
// and a revoke drops what the revoked partitions held.
#include "pipeline/testing/engine_harness.h"

namespace kingest::pipeline::engine_testing {
namespace {

TEST_P(IngestEngineTest, ReassemblesVersionsThatArriveOutOfOrderOnOnePartition) {
  Harness h(/*slow_decoder=*/false);
  submit_one_by_one(h, {{"agg-o", 1, ""}, {"agg-o", 3, ""}, {"agg-o", 2, ""}, {"agg-o", 4, ""}});
  h.engine->wait_idle();
  auto st = h.engine->stats();
  EXPECT_EQ(st.dead_lettered, 0u);
  EXPECT_EQ(st.events_appended, 4u);
  EXPECT_EQ(st.events_held, 0u);
  EXPECT_GE(st.events_reordered, 1u) << "version 3 waited for version 2";
  expect_in_order(h.sink.streams(), 4);
  EXPECT_EQ(h.done_count(), 4u);
}

TEST_P(IngestEngineTest, AHeldEventIsNotDoneUntilItIsWritten) {
  Harness h(/*slow_decoder=*/false);
  TopicPartition p0{"task-events", 0}, p1{"task-events", 1};
  std::vector<SourceMessage> b1;
  b1.push_back(message(p1, 0, envelope({"agg-h", 2, ""})));
  b1.push_back(message(p1, 1, envelope({"agg-other", 1, ""})));
  h.engine->submit(std::move(b1), 10);
  h.engine->wait_idle();
  {
    std::lock_guard lock(h.mu);
    EXPECT_EQ(h.done[p1], (std::vector<int64_t>{1})) << "version 2 waits; its offset is not done";
  }
  EXPECT_EQ(h.engine->stats().events_held, 1u);
  EXPECT_EQ(h.engine->stats().open_gaps, 1u);
  EXPECT_TRUE(h.sink.streams()["Task-agg-h"].empty());

  std::vector<SourceMessage> b2;
  b2.push_back(message(p0, 0, envelope({"agg-h", 1, ""})));
  h.engine->submit(std::move(b2), 10);
  h.engine->wait_idle();
  EXPECT_EQ(h.engine->stats().events_held, 0u);
  EXPECT_EQ(h.engine->stats().dead_lettered, 0u);
  EXPECT_EQ(h.engine->stats().streams_on_several_partitions, 1u);
  expect_in_order({{"Task-agg-h", h.sink.streams()["Task-agg-h"]}}, 2);
  EXPECT_EQ(h.done_count(), 3u);
  std::lock_guard lock(h.mu);
  EXPECT_EQ(h.done[p1], (std::vector<int64_t>{1, 0}));
}

// Each aggregate's versions produced in one burst without a key: spread over partitions at random,
// read partition by partition in chunks, so versions arrive out of order and across batches.
TEST_P(IngestEngineTest, UnkeyedBurstsOverSeveralPartitionsAreStoredInOrderWithoutDeadLetters) {
  Harness h;
  std::mt19937 rng(11);
  constexpr int kAggregates = 300, kVersions = 10, kPartitions = 8;
  std::vector<std::vector<SourceMessage>> partitions(kPartitions);
  for (int a = 0; a < kAggregates; ++a) {
    for (int v = 1; v <= kVersions; ++v) {
      auto p = int32_t(rng() % kPartitions);
      TopicPartition tp{"task-events", p};
      partitions[size_t(p)].push_back(message(tp, int64_t(partitions[size_t(p)].size()), envelope({"agg-" + std::to_string(a), v, ""})));
    }
  }
  // A consumer reads partitions in fetch-sized chunks, in no fixed order.
  std::vector<size_t> pos(kPartitions, 0);
  size_t total = 0;
  for (;;) {
    std::vector<size_t> live;
    for (size_t p = 0; p < kPartitions; ++p) {
      if (pos[p] < partitions[p].size()) live.push_back(p);
    }
    if (live.empty()) break;
    size_t p = live[rng() % live.size()];
    size_t n = std::min(partitions[p].size() - pos[p], size_t(1 + rng() % 60));
    std::vector<SourceMessage> batch(std::make_move_iterator(partitions[p].begin() + long(pos[p])),
                                     std::make_move_iterator(partitions[p].begin() + long(pos[p] + n)));
    pos[p] += n;
    total += n;
    ASSERT_TRUE(eventually([&] { return h.engine->has_room(); }, 60s, "room in the engine's in-flight budget"));
    h.engine->submit(std::move(batch), 1000);
  }
  h.engine->wait_idle();
  auto st = h.engine->stats();
  ASSERT_TRUE(h.engine->fatal().ok());
  EXPECT_EQ(st.dead_lettered, 0u);
  EXPECT_EQ(st.events_held, 0u);
  EXPECT_EQ(st.events_appended, total);
  EXPECT_GT(st.events_reordered, 0u);
  EXPECT_GT(st.streams_on_several_partitions, size_t(kAggregates) * 9 / 10) << "every split stream is counted";
  EXPECT_EQ(h.sink.max_in_flight(), 1);
  expect_in_order(h.sink.streams(), kVersions);
  EXPECT_EQ(h.done_count(), total);
}

TEST_P(IngestEngineTest, AGapIsRecheckedAgainstTheStoreAfterTheWindow) {
  EngineOptions o;
  o.reorder_window = 0ms;
  o.give_up_expired_gaps = false;  // a bounded replay: re-check, never give up before the end
  FakeSink sink(3);
  MemoryDeadLetters dlq;
  std::atomic<int> done{0};
  IngestEngine engine(std::move(o), sink, &dlq, [&](const std::vector<SourceMessage>& m) { done += int(m.size()); });
  std::vector<SourceMessage> b;
  b.push_back(message({"task-events", 0}, 0, envelope({"agg-w", 2, ""})));
  engine.submit(std::move(b), 10);
  engine.wait_idle();
  engine.check_gaps();
  engine.wait_idle();
  EXPECT_EQ(engine.stats().events_held, 1u) << "still open after the re-check: it waits again";
  EXPECT_EQ(engine.stats().dead_lettered, 0u);

  // Another group member writes version 1 (the id it derives is the same as ours would be).
  DomainEvent v1 = std::get<DomainEvent>(codecs::decode_json(envelope({"agg-w", 1, ""})));
  sink.preload("Task-agg-w", EventData{derive_event_id(v1, "Task-agg-w", 0), "TaskCreated", "application/json", "{}", "{}"});
  engine.check_gaps();
  engine.wait_idle();
  EXPECT_EQ(engine.stats().events_held, 0u);
  EXPECT_EQ(engine.stats().events_appended, 1u);
  EXPECT_EQ(sink.streams()["Task-agg-w"].size(), 2u);
  EXPECT_EQ(done.load(), 1);
}

TEST_P(IngestEngineTest, AnExpiredGapIsDeadLetteredWhenTheRunGivesUpAfterTheWindow) {
  EngineOptions o;
  o.reorder_window = 0ms;
  o.give_up_expired_gaps = true;  // `run`
  FakeSink sink(4);
  MemoryDeadLetters dlq;
  std::atomic<int> done{0};
  IngestEngine engine(std::move(o), sink, &dlq, [&](const std::vector<SourceMessage>& m) { done += int(m.size()); });
  std::vector<SourceMessage> b;
  TopicPartition tp{"task-events", 0};
  b.push_back(message(tp, 0, envelope({"agg-x", 2, ""})));
  b.push_back(message(tp, 1, envelope({"agg-x", 3, ""})));
  b.push_back(message(tp, 2, envelope({"agg-y", 1, ""})));
  engine.submit(std::move(b), 10);
  engine.wait_idle();
  EXPECT_EQ(sink.streams()["Task-agg-y"].size(), 1u) << "nothing else is held back";
  engine.check_gaps();
  engine.wait_idle();
  auto letters = dlq.letters();
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0].reason, "revision-gap");
  EXPECT_EQ(letters[0].offset, 0);
  EXPECT_EQ(letters[1].reason, "after-dead-letter");
  EXPECT_EQ(done.load(), 3);
}

TEST_P(IngestEngineTest, HeldEventsOverTheirBudgetGiveUpTheOldestGap) {
  EngineOptions o;
  o.max_held_bytes = 1;  // any held event is over the budget
  o.give_up_expired_gaps = false;
  FakeSink sink(5);
  MemoryDeadLetters dlq;
  IngestEngine engine(std::move(o), sink, &dlq, nullptr);
  std::vector<SourceMessage> b;
  b.push_back(message({"task-events", 0}, 0, envelope({"agg-b", 3, ""})));
  engine.submit(std::move(b), 10);
  engine.wait_idle();
  EXPECT_EQ(engine.stats().events_held, 1u);
  engine.check_gaps();
  engine.wait_idle();
  EXPECT_EQ(engine.stats().events_held, 0u);
  ASSERT_EQ(dlq.letters().size(), 1u);
  EXPECT_EQ(dlq.letters()[0].reason, "revision-gap");
}

TEST_P(IngestEngineTest, ARevokeDropsTheHeldEventsOfTheRevokedPartitions) {
  Harness h(/*slow_decoder=*/false);
  TopicPartition p0{"task-events", 0}, p1{"task-events", 1};
  std::vector<SourceMessage> b;
  b.push_back(message(p0, 0, envelope({"agg-r", 3, ""})));
  b.push_back(message(p1, 0, envelope({"agg-r", 4, ""})));
  h.engine->submit(std::move(b), 10);
  h.engine->wait_idle();
  EXPECT_EQ(h.engine->stats().events_held, 2u);
  h.engine->on_revoke({p0});
  EXPECT_EQ(h.engine->stats().events_held, 1u) << "version 4 from the partition still assigned stays held";
  std::vector<SourceMessage> b2;
  b2.push_back(message(p1, 1, envelope({"agg-r", 1, ""})));
  b2.push_back(message(p1, 2, envelope({"agg-r", 2, ""})));
  b2.push_back(message(p1, 3, envelope({"agg-r", 3, ""})));
  h.engine->submit(std::move(b2), 10);
  h.engine->wait_idle();
  expect_in_order({{"Task-agg-r", h.sink.streams()["Task-agg-r"]}}, 4);
  std::lock_guard lock(h.mu);
  EXPECT_TRUE(h.done[p0].empty()) << "the revoked partition's held event is never reported done";
  EXPECT_EQ(h.done[p1].size(), 4u);
}

TEST_P(IngestEngineTest, AClosingRevokeDropsTheHeldEventsAndLeavesTheStreamStates) {
  Harness h(/*slow_decoder=*/false);
  TopicPartition p0{"task-events", 0}, p1{"task-events", 1};
  std::vector<SourceMessage> b;
  b.push_back(message(p0, 0, envelope({"agg-c", 1, ""})));
  b.push_back(message(p0, 1, envelope({"agg-c", 3, ""})));  // version 2 missing: held
  b.push_back(message(p1, 0, envelope({"agg-d", 1, ""})));
  h.engine->submit(std::move(b), 10);
  h.engine->wait_idle();
  ASSERT_EQ(h.engine->stats().events_held, 1u);
  const uint64_t cached = h.engine->stats().cached_streams;
  ASSERT_EQ(cached, 2u);
  h.engine->on_revoke({p0, p1}, /*closing=*/true);
  EXPECT_EQ(h.engine->stats().events_held, 0u) << "what the revoked partitions held goes, as in any revoke";
  EXPECT_EQ(h.engine->stats().cached_streams, cached) << "the states go with the engine, not one by one";
  // A revoke that is not the last forgets the free streams of its partitions.
  h.engine->on_revoke({p0, p1});
  EXPECT_EQ(h.engine->stats().cached_streams, 0u);
}

}  // namespace
}  // namespace kingest::pipeline::engine_testing
