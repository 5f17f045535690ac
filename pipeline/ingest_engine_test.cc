// The engine against a fake sink with random latencies and a decoder with random delays: per-stream
// order, revisions, duplicates, conflicts, gaps, bad input and fatal errors.
#include "pipeline/ingest_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <numeric>
#include <random>
#include <thread>

#include "codecs/codec.h"
#include "core/json_writer.h"

namespace kingest::pipeline {
namespace {

using namespace std::chrono_literals;

// Every test runs against a sink whose answers do not tell duplicates (streams read on first
// touch) and against one whose answers do (streams presumed new, not read): see IngestEngine below.
bool g_exact_sink = false;

// A store with KurrentDB's expected-revision and idempotency rules, answering on worker threads
// after a random delay, that records how many appends per stream were ever in flight at once.
class FakeSink final : public Sink {
 public:
  explicit FakeSink(unsigned seed) : rng_(seed) {
    for (int i = 0; i < 3; ++i) workers_.emplace_back([this] { work(); });
  }
  ~FakeSink() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  std::string name() const override { return "fake"; }
  std::string append_mode() const override { return "direct"; }
  // With `exact`, an idempotent re-append says it wrote nothing (as the embedded store does);
  // without, it is a plain success (as KurrentDB's v1 appends are).
  bool exact = g_exact_sink;
  bool exact_answers() const override { return exact; }
  size_t reads() {
    std::lock_guard lock(mu_);
    return reads_;
  }

  void append(AppendRequest req, AppendDone done) override {
    std::lock_guard lock(mu_);
    int& n = in_flight_[req.stream];
    ++n;
    max_in_flight_ = std::max(max_in_flight_, n);
    max_total_in_flight_ = std::max(max_total_in_flight_, ++total_in_flight_);
    queue_.push_back({std::move(req), std::move(done), std::chrono::microseconds(rng_() % 400)});
    cv_.notify_one();
  }

  absl::StatusOr<StreamTail> read_tail(const std::string& stream) override {
    std::lock_guard lock(mu_);
    ++reads_;
    StreamTail t;
    auto it = streams_.find(stream);
    if (it == streams_.end() || it->second.empty()) return t;
    t.exists = true;
    t.last_revision = StreamRevision{it->second.size() - 1};
    t.last_id = it->second.back().id;
    return t;
  }

  absl::StatusOr<std::vector<RecordedEventData>> read_forwards(const std::string& stream, StreamRevision from,
                                                               uint64_t max_count) override {
    std::lock_guard lock(mu_);
    ++reads_;
    std::vector<RecordedEventData> out;
    auto it = streams_.find(stream);
    if (it == streams_.end()) return out;
    for (uint64_t r = from.value(); r < it->second.size() && out.size() < max_count; ++r) out.push_back(it->second[r]);
    return out;
  }

  // Writes directly, as another writer (or an earlier run) would have.
  void preload(const std::string& stream, const EventData& e) {
    std::lock_guard lock(mu_);
    auto& s = streams_[stream];
    s.push_back({e.id, StreamRevision{s.size()}, e.type, e.content_type, e.data, e.metadata});
  }

  std::map<std::string, std::vector<RecordedEventData>> streams() {
    std::lock_guard lock(mu_);
    return streams_;
  }
  int max_in_flight() {
    std::lock_guard lock(mu_);
    return max_in_flight_;
  }
  // The most appends of all streams together that were ever unanswered at once.
  int max_total_in_flight() {
    std::lock_guard lock(mu_);
    return max_total_in_flight_;
  }
  std::string fatal_stream;  // appends to this stream answer kFatal
  size_t max_events_per_append = 0;  // > 0: larger appends answer kTooLarge
  std::string too_large_stream;      // every append to this stream answers kTooLarge

  // While held, appends queue up without being answered.
  void hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  // Event counts of every append answered, in order.
  std::vector<size_t> append_sizes() {
    std::lock_guard lock(mu_);
    return sizes_;
  }
  size_t queued() {
    std::lock_guard lock(mu_);
    return queue_.size();
  }

 private:
  struct Job {
    AppendRequest req;
    AppendDone done;
    std::chrono::microseconds delay;
  };

  void work() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || (!queue_.empty() && !held_); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      std::this_thread::sleep_for(job.delay);
      AppendOutcome out;
      {
        std::lock_guard lock(mu_);
        out = apply(job.req);
        --in_flight_[job.req.stream];
        --total_in_flight_;
      }
      job.done(std::move(out));
    }
  }

  AppendOutcome apply(const AppendRequest& req) {
    if (req.stream == fatal_stream) return {AppendCode::kFatal, std::nullopt, 0, "permission denied for the connection"};
    if ((max_events_per_append > 0 && req.events.size() > max_events_per_append) || req.stream == too_large_stream) {
      return {AppendCode::kTooLarge, std::nullopt, 0, "maximum append size exceeded"};
    }
    sizes_.push_back(req.events.size());
    auto& s = streams_[req.stream];
    std::optional<StreamRevision> current;
    if (!s.empty()) current = StreamRevision{s.size() - 1};
    uint64_t start;
    if (std::holds_alternative<ExpectAny>(req.expected)) {
      start = s.size();
    } else if (std::holds_alternative<ExpectNoStream>(req.expected)) {
      start = 0;
    } else {
      start = std::get<StreamRevision>(req.expected).value() + 1;
    }
    if (start < s.size()) {  // idempotent re-append?
      for (size_t k = 0; k < req.events.size(); ++k) {
        if (start + k >= s.size() || s[start + k].id != req.events[k].id) {
          return {AppendCode::kWrongExpectedVersion, current, 0, ""};
        }
      }
      AppendOutcome same{AppendCode::kSuccess, StreamRevision{start + req.events.size() - 1}, 0, ""};
      same.already_written = exact;
      return same;
    }
    if (start != s.size()) return {AppendCode::kWrongExpectedVersion, current, 0, ""};
    for (const auto& e : req.events) s.push_back({e.id, StreamRevision{s.size()}, e.type, e.content_type, e.data, e.metadata});
    return {AppendCode::kSuccess, StreamRevision{s.size() - 1}, 0, ""};
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::map<std::string, std::vector<RecordedEventData>> streams_;
  std::map<std::string, int> in_flight_;
  int max_in_flight_ = 0;
  int total_in_flight_ = 0;
  int max_total_in_flight_ = 0;
  bool stop_ = false;
  bool held_ = false;
  std::vector<size_t> sizes_;
  size_t reads_ = 0;
  std::mt19937 rng_;
  std::vector<std::thread> workers_;
};

class MemoryDeadLetters final : public DeadLetterSink {
 public:
  absl::Status write(const std::vector<DeadLetter>& letters) override {
    std::lock_guard lock(mu_);
    for (const auto& l : letters) letters_.push_back(l);
    return absl::OkStatus();
  }
  std::string describe() const override { return "memory"; }
  std::vector<DeadLetter> letters() {
    std::lock_guard lock(mu_);
    return letters_;
  }

 private:
  std::mutex mu_;
  std::vector<DeadLetter> letters_;
};

struct Spec {
  std::string aggregate_id;
  int64_t version;
  std::string event_id;  // empty: the pipeline derives one
};

std::string envelope(const Spec& s) {
  JsonWriter w;
  w.begin_object();
  if (!s.event_id.empty()) w.key("eventId").value(s.event_id);
  w.key("eventType").value(s.version == 1 ? "TaskCreated" : "TaskUpdated");
  w.key("aggregateId").value(s.aggregate_id);
  w.key("aggregateType").value("Task");
  w.key("aggregateVersion").value(s.version);
  w.key("correlationId").value("corr-" + s.aggregate_id);
  w.key("v").value(s.version);
  w.end_object();
  return w.take();
}

SourceMessage message(const TopicPartition& tp, int64_t offset, std::string value) {
  SourceMessage m;
  m.tp = tp;
  m.offset = KafkaOffset{offset};
  m.epoch = AssignmentEpoch{1};
  m.key = "k";
  m.assign_value(value.data(), value.size());
  return m;
}

struct Harness {
  FakeSink sink{42};
  MemoryDeadLetters dlq;
  std::mutex mu;
  std::map<TopicPartition, std::vector<int64_t>> done;
  std::unique_ptr<IngestEngine> engine;
  std::map<TopicPartition, int64_t> next_offset;

  explicit Harness(bool slow_decoder = true, size_t max_append_bytes = 1u << 20,
                   std::map<std::string, codecs::Codec> topic_codecs = {}, size_t max_appends_in_flight = 512,
                   bool exact_sink = g_exact_sink, size_t stream_cache_bytes = 32u << 20) {
    sink.exact = exact_sink;
    EngineOptions o;
    o.stream_cache_bytes = stream_cache_bytes;
    o.max_appends_in_flight = max_appends_in_flight;
    o.topic_codecs = std::move(topic_codecs);
    o.max_batches_in_flight = 6;
    o.max_append_bytes = max_append_bytes;
    if (slow_decoder) {
      o.decoder = [](const SourceMessage& m) {
        thread_local std::mt19937 rng(std::hash<std::thread::id>{}(std::this_thread::get_id()));
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 50));
        return codecs::decode_json(m.value);
      };
    }
    engine = std::make_unique<IngestEngine>(std::move(o), sink, &dlq, [this](const std::vector<SourceMessage>& messages) {
      std::lock_guard lock(mu);
      for (const auto& m : messages) done[m.tp].push_back(m.offset.value());
    });
  }

  // Submits the values in batches of random sizes; partition = hash of aggregate id.
  void run(const std::vector<Spec>& specs, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<SourceMessage> batch;
    size_t target = 1 + rng() % 200;
    for (const auto& s : specs) {
      TopicPartition tp{"task-events", int32_t(std::hash<std::string>{}(s.aggregate_id) % 4)};
      batch.push_back(message(tp, next_offset[tp]++, envelope(s)));
      if (batch.size() >= target) {
        while (!engine->has_room()) std::this_thread::sleep_for(100us);
        engine->submit(std::move(batch), 1000);
        batch.clear();
        target = 1 + rng() % 200;
      }
    }
    if (!batch.empty()) engine->submit(std::move(batch), 1000);
    engine->wait_idle();
  }
  size_t done_count() {
    std::lock_guard lock(mu);
    size_t n = 0;
    for (auto& [tp, v] : done) n += v.size();
    return n;
  }
};

// Versions 1..k per aggregate, aggregates interleaved at random.
std::vector<Spec> interleaved(int aggregates, int per_aggregate, unsigned seed, bool with_ids = true) {
  std::mt19937 rng(seed);
  std::vector<int> next(size_t(aggregates), 1);
  std::vector<int> live(static_cast<size_t>(aggregates));
  for (int i = 0; i < aggregates; ++i) live[size_t(i)] = i;
  std::vector<Spec> out;
  while (!live.empty()) {
    size_t pick = rng() % live.size();
    int a = live[pick];
    int v = next[size_t(a)]++;
    std::string id = with_ids ? Uuid::v5(Uuid::nil(), "e" + std::to_string(a) + "." + std::to_string(v)).to_string() : "";
    out.push_back({"agg-" + std::to_string(a), v, id});
    if (next[size_t(a)] > per_aggregate) {
      live[pick] = live.back();
      live.pop_back();
    }
  }
  return out;
}

class IngestEngineTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { g_exact_sink = GetParam(); }
  void TearDown() override { g_exact_sink = false; }
};
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
  for (const auto& [name, events] : first.sink.streams()) {
    for (const auto& e : events) second.sink.preload(name, EventData{e.id, e.type, e.content_type, e.data, e.metadata});
  }
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

// Waits (up to 10 s) until `pred` holds.
template <typename Pred>
bool eventually(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// Submits one single-event batch per spec on task-events[0].
void submit_one_by_one(Harness& h, const std::vector<Spec>& specs) {
  TopicPartition tp{"task-events", 0};
  for (const auto& s : specs) {
    std::vector<SourceMessage> b;
    b.push_back(message(tp, h.next_offset[tp]++, envelope(s)));
    h.engine->submit(std::move(b), 10);
  }
}

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

DomainEvent domain_event(const std::string& aggregate, int64_t version) {
  DomainEvent e;
  e.event_type = "TaskUpdated";
  e.aggregate_id = aggregate;
  e.aggregate_type = "Task";
  e.aggregate_version = version;
  e.payload = "{\"v\":" + std::to_string(version) + "}";
  return e;
}

TEST_P(IngestEngineTest, AppendsNonJsonPayloadsAsBytesAndKeepsTheirTypeInMetadata) {
  Harness h(/*slow_decoder=*/false);
  auto e = domain_event("agg-b", 1);
  e.payload = std::string("\x01\x02\xff", 3);
  e.content_type = "application/x-avro";
  auto msg = message({"task-events", 0}, 0, codecs::encode_protobuf(e));
  msg.content_type = "application/x-protobuf";
  std::vector<SourceMessage> b;
  b.push_back(std::move(msg));
  h.engine->submit(std::move(b), 10);
  h.engine->wait_idle();
  auto events = h.sink.streams()["Task-agg-b"];
  ASSERT_EQ(events.size(), 1u) << (h.dlq.letters().empty() ? "" : h.dlq.letters()[0].detail);
  EXPECT_EQ(events[0].content_type, "application/octet-stream");
  EXPECT_EQ(events[0].data, std::string("\x01\x02\xff", 3));
  EXPECT_NE(events[0].metadata.find("\"payloadContentType\":\"application/x-avro\""), std::string::npos)
      << events[0].metadata;
}

TEST_P(IngestEngineTest, RoutesByContentTypeHeaderThenTopicCodecThenJson) {
  Harness h(/*slow_decoder=*/false, 1u << 20, {{"binary-topic", codecs::Codec::kFlatBuffers}});
  std::vector<SourceMessage> b;
  TopicPartition json_tp{"task-events", 0}, bin_tp{"binary-topic", 0};
  auto with_header = [](SourceMessage m, std::string ct) {
    m.content_type = std::move(ct);
    return m;
  };
  auto pb = codecs::encode_protobuf(domain_event("agg-r", 2));
  auto fb = codecs::encode_flatbuffers(domain_event("agg-r", 3));
  b.push_back(message(json_tp, 0, envelope({"agg-r", 1, ""})));  // no header, JSON topic
  b.push_back(with_header(message(json_tp, 1, pb), "application/x-protobuf"));
  b.push_back(message(bin_tp, 0, fb));  // no header: the topic's codec
  b.push_back(with_header(message(json_tp, 2, envelope({"agg-r", 4, ""})), "application/json; charset=utf-8"));
  b.push_back(with_header(message(json_tp, 3, envelope({"agg-q", 1, ""})), "text/plain"));
  b.push_back(message(bin_tp, 1, envelope({"agg-q", 1, ""})));  // JSON bytes on a FlatBuffers topic
  h.engine->submit(std::move(b), 10);
  h.engine->wait_idle();
  auto events = h.sink.streams()["Task-agg-r"];
  ASSERT_EQ(events.size(), 4u);
  for (size_t r = 0; r < 4; ++r) {
    EXPECT_NE(events[r].data.find("\"v\":" + std::to_string(r + 1)), std::string::npos) << events[r].data;
    EXPECT_EQ(events[r].content_type, "application/json");
  }
  auto letters = h.dlq.letters();
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0].reason, "decode-error");
  EXPECT_NE(letters[0].detail.find("text/plain"), std::string::npos) << letters[0].detail;
  EXPECT_EQ(letters[1].reason, "decode-error");
  EXPECT_EQ(letters[1].topic, "binary-topic");
  EXPECT_EQ(h.done_count(), 6u);
}

// --- Order from the aggregate's version ----------------------------------------------------------

// Versions of each stream as the tests expect them: revision r holds version r + 1.
void expect_in_order(const std::map<std::string, std::vector<RecordedEventData>>& streams, size_t per_stream) {
  for (const auto& [name, events] : streams) {
    ASSERT_EQ(events.size(), per_stream) << name;
    for (size_t r = 0; r < events.size(); ++r) {
      EXPECT_NE(events[r].data.find("\"v\":" + std::to_string(r + 1) + "}"), std::string::npos)
          << name << " revision " << r << " holds " << events[r].data;
    }
  }
}

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
    while (!h.engine->has_room()) std::this_thread::yield();
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

TEST_P(IngestEngineTest, ReportsWhatBecameOfEachMessage) {
  EngineOptions o;
  std::mutex mu;
  std::map<int64_t, MessageOutcome> outcomes;
  o.on_outcome = [&](const SourceMessage& m, const MessageOutcome& out) {
    std::lock_guard lock(mu);
    outcomes[m.offset.value()] = out;
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
  for (const auto& [name, events] : streams) {
    for (const auto& e : events) again.sink.preload(name, EventData{e.id, e.type, e.content_type, e.data, e.metadata});
  }
  again.run(specs, 25);
  auto st2 = again.engine->stats();
  EXPECT_EQ(st2.events_appended, 0u);
  EXPECT_EQ(st2.duplicates, specs.size()) << "appended and duplicates are exact, not inferred";
  EXPECT_EQ(st2.dead_lettered, 0u);
}

}  // namespace
}  // namespace kingest::pipeline
