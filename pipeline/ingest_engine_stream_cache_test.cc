// The stream-state cache: which streams are read before their first append, and a cache too small
// for the workload that drops and reloads states without a wrong revision.
#include "pipeline/testing/engine_harness.h"

namespace kingest::pipeline::engine_testing {
namespace {

// With a sink whose answers tell written from duplicate, a backfill of new streams reads nothing:
// each stream's first append (no_stream) is its own check.
TEST_P(IngestEngineTest, ReadsNoStreamBeforeItsFirstAppendWhenTheAnswersTellDuplicates) {
  Harness h;
  auto specs = interleaved(150, 20, 21);
  h.run(specs, 22);
  auto st = h.engine->stats();
  EXPECT_EQ(st.events_appended, specs.size());
  EXPECT_EQ(st.dead_lettered, 0u);
  if (GetParam()) {
    EXPECT_EQ(h.sink.reads(), 0u) << "every stream's first version came first (keyed by aggregate)";
    EXPECT_EQ(st.stream_reads, 0u);
  } else {
    EXPECT_EQ(h.sink.reads(), 150u) << "one tail read per stream on first touch";
  }
}

// A tiny stream-state cache: states are dropped and loaded again (presumed new or read), and
// nothing is written twice, lost or put at a wrong revision; a second run counts exact duplicates.
TEST_P(IngestEngineTest, ASmallStreamCacheDropsStatesWithoutAWrongRevision) {
  auto specs = interleaved(200, 12, 23, /*with_ids=*/false);
  Harness h(true, 1u << 20, {}, 512, GetParam(), /*stream_cache_bytes=*/4096);
  h.run(specs, 24);
  auto st = h.engine->stats();
  EXPECT_TRUE(h.engine->fatal().ok());
  EXPECT_EQ(st.events_appended, specs.size());
  EXPECT_EQ(st.duplicates, 0u);
  EXPECT_EQ(st.dead_lettered, 0u);
  EXPECT_EQ(st.streams, 200u) << "distinct streams, however often a state was dropped";
  EXPECT_GT(st.stream_cache_evictions, 0u);
  EXPECT_GE(st.stream_cache_misses, 200u) << "each stream loaded at least once";
  EXPECT_LE(st.stream_cache_misses, st.cached_streams + st.stream_cache_evictions)
      << "a miss adds a state, which is either still there or was dropped";
  EXPECT_GT(st.stream_cache_hits, 0u);
  EXPECT_LE(st.cached_streams, 200u);
  auto streams = h.sink.streams();
  ASSERT_EQ(streams.size(), 200u);
  for (const auto& [name, events] : streams) {
    ASSERT_EQ(events.size(), 12u) << name;
    for (size_t r = 1; r < events.size(); ++r) {
      EXPECT_NE(events[r].metadata.find("\"$causationId\":\"" + events[r - 1].id.to_string() + "\""), std::string::npos)
          << name << ": causation = the previous event's id, also across a dropped state";
    }
  }

  Harness again(true, 1u << 20, {}, 512, GetParam(), 4096);
  again.sink.preload_all(h.sink);
  again.run(specs, 25);
  auto st2 = again.engine->stats();
  EXPECT_EQ(st2.events_appended, 0u);
  EXPECT_EQ(st2.duplicates, specs.size()) << "appended and duplicates are exact, not inferred";
  EXPECT_EQ(st2.dead_lettered, 0u);
}

// A cache that holds some states and the briefs of the others: a dropped stream resumes from its
// brief, so no stream is read again (and, with exact answers, none at all), with causation and
// revisions as if its state had stayed.
TEST_P(IngestEngineTest, ADroppedStreamResumesFromItsBriefWithoutARead) {
  auto specs = interleaved(200, 12, 26, /*with_ids=*/false);
  Harness h(true, 1u << 20, {}, 512, GetParam(), /*stream_cache_bytes=*/32 * 1024);
  h.run(specs, 27);
  auto st = h.engine->stats();
  EXPECT_TRUE(h.engine->fatal().ok());
  EXPECT_EQ(st.events_appended, specs.size());
  EXPECT_EQ(st.dead_lettered, 0u);
  EXPECT_GT(st.stream_cache_evictions, 0u) << "the cache holds fewer than the 200 states";
  EXPECT_GT(st.stream_cache_misses, 200u) << "dropped streams came back";
  if (GetParam()) {
    EXPECT_EQ(h.sink.reads(), 0u) << "new streams presumed new, dropped ones resumed from their briefs";
  } else {
    EXPECT_EQ(h.sink.reads(), 200u) << "one tail read per stream on first touch, none when it comes back";
  }
  auto streams = h.sink.streams();
  ASSERT_EQ(streams.size(), 200u);
  for (const auto& [name, events] : streams) {
    ASSERT_EQ(events.size(), 12u) << name;
    for (size_t r = 1; r < events.size(); ++r) {
      EXPECT_NE(events[r].metadata.find("\"$causationId\":\"" + events[r - 1].id.to_string() + "\""), std::string::npos)
          << name << ": causation = the previous event's id, also across a dropped state";
    }
  }
}

}  // namespace
}  // namespace kingest::pipeline::engine_testing
