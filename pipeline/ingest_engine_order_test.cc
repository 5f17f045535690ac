// The engine keeps each stream's order and revisions under parallel decoding and random sink
// latencies, resumes and replays without writing twice, and reports what became of each message.
#include "pipeline/testing/engine_harness.h"

namespace kingest::pipeline::engine_testing {
namespace {

// Every engine test (in every ingest_engine_*_test.cc) runs against a sink whose answers do not tell
// duplicates (streams read on first touch) and against one whose answers do (streams presumed new).
INSTANTIATE_TEST_SUITE_P(Sinks, IngestEngineTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "ExactAnswers" : "ReadFirst"; });

TEST_P(IngestEngineTest, KeepsPerStreamOrderAndRevisionsUnderParallelDecodeAndRandomLatency) {
  Harness h;
  auto specs = interleaved(150, 40, 1);
  h.run(specs, 2);
  auto st = h.engine->stats();
  EXPECT_TRUE(h.engine->fatal().ok());
  EXPECT_EQ(st.events_read, specs.size());
  EXPECT_EQ(st.events_appended, specs.size());
  EXPECT_EQ(st.duplicates, 0u);
  EXPECT_EQ(st.dead_lettered, 0u);
  EXPECT_EQ(st.streams, 150u);
  EXPECT_EQ(h.sink.max_in_flight(), 1) << "at most one append in flight per stream";
  auto streams = h.sink.streams();
  ASSERT_EQ(streams.size(), 150u);
  for (const auto& [name, events] : streams) {
    ASSERT_EQ(events.size(), 40u) << name;
    for (size_t r = 0; r < events.size(); ++r) {
      EXPECT_EQ(events[r].revision.value(), r);
      EXPECT_NE(events[r].data.find("\"v\":" + std::to_string(r + 1) + "}"), std::string::npos)
          << name << " revision " << r << " holds " << events[r].data;
      if (r > 0) {
        EXPECT_NE(events[r].metadata.find("\"$causationId\":\"" + events[r - 1].id.to_string() + "\""), std::string::npos)
            << "causation = the previous event's id";
      }
    }
  }
  EXPECT_EQ(h.done_count(), specs.size()) << "every message's offset is reported done";
}

TEST_P(IngestEngineTest, ReplayCountsAlreadyWrittenEventsAsDuplicates) {
  auto specs = interleaved(50, 20, 3, /*with_ids=*/false);
  Harness first;
  first.run(specs, 4);
  ASSERT_EQ(first.engine->stats().events_appended, specs.size());

  // A second run against the same store state: every event is already there.
  Harness second;
  second.sink.preload_all(first.sink);
  second.run(specs, 5);
  auto st = second.engine->stats();
  EXPECT_EQ(st.events_appended, 0u);
  EXPECT_EQ(st.duplicates, specs.size()) << "derived ids are stable, so every event is proven written";
  EXPECT_EQ(st.dead_lettered, 0u);
  EXPECT_EQ(second.done_count(), specs.size());
}

TEST_P(IngestEngineTest, ResumesAfterAPartialEarlierRun) {
  auto specs = interleaved(30, 10, 6);
  Harness h;
  // Another writer already wrote the first 4 events of agg-0, with the same ids.
  int preloaded = 0;
  for (const auto& s : specs) {
    if (s.aggregate_id == "agg-0" && s.version <= 4) {
      h.sink.preload("Task-agg-0", EventData{*Uuid::parse(s.event_id), "TaskCreated", "application/json", "{}", "{}"});
      ++preloaded;
    }
  }
  ASSERT_EQ(preloaded, 4);
  h.run(specs, 7);
  auto st = h.engine->stats();
  EXPECT_EQ(st.duplicates, 4u);
  EXPECT_EQ(st.events_appended, specs.size() - 4);
  EXPECT_EQ(h.sink.streams()["Task-agg-0"].size(), 10u);
}

// Streams an earlier run wrote in part, with ids derived from the payloads (no eventId): a group
// reaching past the written part is refused (with exact answers, its first append presumed the
// stream new), then compared by id with what is written and sent again, and both need the payloads
// the refused append took.
TEST_P(IngestEngineTest, ResumesStreamsWrittenInPartWithIdsDerivedFromThePayloads) {
  auto specs = interleaved(30, 10, 8, /*with_ids=*/false);
  std::vector<Spec> early;
  for (const auto& s : specs) {
    if (s.version <= 4) early.push_back(s);
  }
  Harness first;
  first.run(early, 9);
  ASSERT_EQ(first.engine->stats().events_appended, early.size());
  Harness h;
  h.sink.preload_all(first.sink);
  h.run(specs, 10);
  auto st = h.engine->stats();
  EXPECT_TRUE(h.engine->fatal().ok());
  EXPECT_EQ(st.duplicates, early.size());
  EXPECT_EQ(st.events_appended, specs.size() - early.size());
  EXPECT_EQ(st.dead_lettered, 0u);
  const auto streams = h.sink.streams();
  ASSERT_EQ(streams.size(), 30u);
  for (const auto& [name, events] : streams) {
    ASSERT_EQ(events.size(), 10u) << name;
    for (size_t r = 0; r < events.size(); ++r) {
      EXPECT_NE(events[r].data.find("\"v\":" + std::to_string(r + 1)), std::string::npos) << name << " @ " << r;
    }
  }
}

TEST_P(IngestEngineTest, EventsItWroteOnAnAppendWhoseAnswerWasLostCountAsAppended) {
  // The first try of agg-0's first append is written, its answer lost; sent again, it finds the
  // stream past it. The events are this run's (ingestRunId on the append's first event): appended,
  // not duplicates, so two runs' counts add up to what the store holds.
  std::vector<Spec> specs;
  for (int v = 1; v <= 6; ++v) specs.push_back({"agg-0", v, ""});
  for (int v = 1; v <= 3; ++v) specs.push_back({"agg-1", v, ""});
  Harness h(/*slow_decoder=*/false);
  h.sink.lost_answer_stream = "Task-agg-0";
  h.run(specs, 1);
  auto st = h.engine->stats();
  EXPECT_EQ(st.events_appended, specs.size());
  EXPECT_EQ(st.duplicates, 0u);
  EXPECT_EQ(st.dead_lettered, 0u);
  auto stored = h.sink.streams()["Task-agg-0"];
  ASSERT_EQ(stored.size(), 6u);
  EXPECT_NE(stored[0].metadata.find("\"ingestRunId\":\""), std::string::npos) << stored[0].metadata;
}

TEST_P(IngestEngineTest, ReportsWhatBecameOfEachMessage) {
  EngineOptions o;
  std::mutex mu;
  struct Kept {
    MessageOutcome::Kind kind;
    Uuid event_id;
    std::string stream, reason;
  };
  std::map<int64_t, Kept> outcomes;
  o.on_outcome = [&](const SourceMessage& m, const MessageOutcome& out) {
    std::lock_guard lock(mu);
    outcomes[m.offset.value()] = Kept{out.kind, out.event_id, std::string(out.stream), std::string(out.reason)};
  };
  FakeSink sink(6);
  MemoryDeadLetters dlq;
  std::vector<int64_t> done;
  IngestEngine engine(std::move(o), sink, &dlq, [&](const std::vector<SourceMessage>& ms) {
    std::lock_guard lock(mu);
    for (const auto& m : ms) {
      EXPECT_TRUE(outcomes.contains(m.offset.value())) << "the outcome comes before the message is done";
      done.push_back(m.offset.value());
    }
  });
  TopicPartition tp{"task-events", 0};
  const std::string id1 = Uuid::v4().to_string();
  std::vector<SourceMessage> b;
  b.push_back(message(tp, 0, envelope({"agg-o", 1, id1})));
  b.push_back(message(tp, 1, envelope({"agg-o", 1, id1})));  // the same event again
  b.push_back(message(tp, 2, "{"));
  engine.submit(std::move(b), 10);
  engine.wait_idle();
  std::lock_guard lock(mu);
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_EQ(outcomes[0].kind, MessageOutcome::Kind::kAppended);
  EXPECT_EQ(outcomes[0].event_id.to_string(), id1);
  EXPECT_EQ(outcomes[0].stream, "Task-agg-o");
  EXPECT_EQ(outcomes[1].kind, MessageOutcome::Kind::kDuplicate);
  EXPECT_EQ(outcomes[1].event_id.to_string(), id1) << "a retry of a written event gets the same id";
  EXPECT_EQ(outcomes[2].kind, MessageOutcome::Kind::kDeadLettered);
  EXPECT_EQ(outcomes[2].reason, "decode-error");
  EXPECT_EQ(done.size(), 3u);
}

TEST_P(IngestEngineTest, ReportsTheWantedMessagesAndEveryDeadLetter) {
  EngineOptions o;
  std::mutex mu;
  std::map<int64_t, MessageOutcome::Kind> outcomes;
  o.on_outcome = [&](const SourceMessage& m, const MessageOutcome& out) {
    std::lock_guard lock(mu);
    outcomes[m.offset.value()] = out.kind;
  };
  o.outcome_wanted = [](const SourceMessage& m) { return m.key.view() == "wanted"; };
  FakeSink sink(6);
  MemoryDeadLetters dlq;
  size_t done = 0;
  IngestEngine engine(std::move(o), sink, &dlq, [&](const std::vector<SourceMessage>& ms) {
    std::lock_guard lock(mu);
    done += ms.size();
  });
  TopicPartition tp{"task-events", 0};
  std::vector<SourceMessage> b;
  b.push_back(message(tp, 0, envelope({"agg-w", 1, Uuid::v4().to_string()})));
  b.push_back(message(tp, 1, envelope({"agg-w", 2, Uuid::v4().to_string()})));
  b.push_back(message(tp, 2, envelope({"agg-x", 1, Uuid::v4().to_string()})));
  b.push_back(message(tp, 3, "{"));
  b[1].key.assign("wanted");
  b[2].key.assign("wanted");
  engine.submit(std::move(b), 10);
  engine.wait_idle();
  std::lock_guard lock(mu);
  EXPECT_EQ(done, 4u);
  ASSERT_EQ(outcomes.size(), 3u) << "offset 0 is appended but not wanted";
  EXPECT_EQ(outcomes[1], MessageOutcome::Kind::kAppended);
  EXPECT_EQ(outcomes[2], MessageOutcome::Kind::kAppended);
  EXPECT_EQ(outcomes[3], MessageOutcome::Kind::kDeadLettered) << "a dead letter is reported whether wanted or not";
}

}  // namespace
}  // namespace kingest::pipeline::engine_testing
