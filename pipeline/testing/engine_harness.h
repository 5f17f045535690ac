// What the engine's tests share: a fake sink with KurrentDB's revision rules and random latencies,
// an in-memory dead-letter sink, envelopes and messages to feed the engine, a harness that runs a
// workload through it, and the fixture that runs every test against both kinds of sink answers.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "codecs/codec.h"
#include "core/json_writer.h"
#include "core/testing/eventually.h"
#include "pipeline/ingest_engine.h"

namespace kingest::pipeline::engine_testing {

using namespace std::chrono_literals;
using kingest::testing::eventually;

// Every test runs against a sink whose answers do not tell duplicates (streams read on first
// touch) and against one whose answers do (streams presumed new, not read): see IngestEngineTest below.
inline bool g_exact_sink = false;

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

  // Counted, then appended one by one (the default).
  void append_many(std::vector<PendingAppend>& appends) override {
    {
      std::lock_guard lock(mu_);
      ++many_calls_;
      largest_many_ = std::max(largest_many_, appends.size());
    }
    Sink::append_many(appends);
  }
  // append_many calls, and the most appends one of them handed over.
  std::pair<size_t, size_t> many_calls() {
    std::lock_guard lock(mu_);
    return {many_calls_, largest_many_};
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
    s.push_back({e.id, StreamRevision{s.size()}, e.type.str(), e.content_type.str(), e.data, e.metadata});
  }

  std::map<std::string, std::vector<RecordedEventData>> streams() {
    std::lock_guard lock(mu_);
    return streams_;
  }

  // Preloads everything `earlier` holds, as if this store were the one an earlier run wrote.
  void preload_all(FakeSink& earlier) {
    for (const auto& [name, events] : earlier.streams()) {
      for (const auto& e : events) preload(name, EventData{e.id, e.type, e.content_type, e.data, e.metadata});
    }
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
  // The first append to this stream is written, then answered as its retry after a lost answer
  // would be: wrong expected version at the revision it wrote (AppendRecords' answer to a retry).
  std::string lost_answer_stream;

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
  size_t many_calls_ = 0;
  size_t largest_many_ = 0;
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
    for (const auto& e : req.events) s.push_back({e.id, StreamRevision{s.size()}, e.type.str(), e.content_type.str(), e.data, e.metadata});
    if (req.stream == lost_answer_stream && !lost_answer_given_) {
      lost_answer_given_ = true;
      return {AppendCode::kWrongExpectedVersion, StreamRevision{s.size() - 1}, 0, ""};
    }
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
  bool lost_answer_given_ = false;
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

inline std::string envelope(const Spec& s) {
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

inline SourceMessage message(const TopicPartition& tp, int64_t offset, std::string value) {
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
        ASSERT_TRUE(eventually([&] { return engine->has_room(); }, 60s, "room in the engine's in-flight budget"));
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
inline std::vector<Spec> interleaved(int aggregates, int per_aggregate, unsigned seed, bool with_ids = true) {
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

// Submits one single-event batch per spec on task-events[0].
inline void submit_one_by_one(Harness& h, const std::vector<Spec>& specs) {
  TopicPartition tp{"task-events", 0};
  for (const auto& s : specs) {
    std::vector<SourceMessage> b;
    b.push_back(message(tp, h.next_offset[tp]++, envelope(s)));
    h.engine->submit(std::move(b), 10);
  }
}

inline DomainEvent domain_event(const std::string& aggregate, int64_t version) {
  DomainEvent e;
  e.event_type = "TaskUpdated";
  e.aggregate_id = aggregate;
  e.aggregate_type = "Task";
  e.aggregate_version = version;
  e.payload = "{\"v\":" + std::to_string(version) + "}";
  return e;
}

// Versions of each stream as the tests expect them: revision r holds version r + 1.
inline void expect_in_order(const std::map<std::string, std::vector<RecordedEventData>>& streams, size_t per_stream) {
  for (const auto& [name, events] : streams) {
    ASSERT_EQ(events.size(), per_stream) << name;
    for (size_t r = 0; r < events.size(); ++r) {
      EXPECT_NE(events[r].data.find("\"v\":" + std::to_string(r + 1) + "}"), std::string::npos)
          << name << " revision " << r << " holds " << events[r].data;
    }
  }
}

// The suite every engine test belongs to (instantiated once, in ingest_engine_order_test.cc).
class IngestEngineTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { g_exact_sink = GetParam(); }
  void TearDown() override { g_exact_sink = false; }
};

}  // namespace kingest::pipeline::engine_testing
