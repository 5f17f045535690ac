// LatencyHistogram percentiles and TimedSink's forwarding and timing.
#include "pipeline/timed_sink.h"

#include <gtest/gtest.h>

#include <thread>

#include "core/testing/eventually.h"

namespace kingest::pipeline {
namespace {

using namespace std::chrono_literals;

TEST(LatencyHistogram, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.quantile_ms(0.5), 0.0);
}

TEST(LatencyHistogram, QuantilesWithinBucketWidth) {
  LatencyHistogram h;
  // 1..1000 ms, one each: p50 ≈ 500 ms, p99 ≈ 990 ms.
  for (int ms = 1; ms <= 1000; ++ms) h.record(std::chrono::milliseconds(ms));
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_NEAR(h.quantile_ms(0.5), 500.0, 500.0 * 0.03);
  EXPECT_NEAR(h.quantile_ms(0.99), 990.0, 990.0 * 0.03);
  EXPECT_NEAR(h.quantile_ms(1.0), 1000.0, 1000.0 * 0.03);
  EXPECT_NEAR(h.quantile_ms(0.0), 1.0, 0.03);
}

TEST(LatencyHistogram, ClampsBelowOneMicrosecondAndHuge) {
  LatencyHistogram h;
  h.record(0ns);
  h.record(std::chrono::hours(10));
  EXPECT_EQ(h.count(), 2u);
  EXPECT_LT(h.quantile_ms(0.5), 0.002);
  EXPECT_GT(h.quantile_ms(1.0), 100000.0);
}

TEST(LatencyHistogram, CumulativeBucketsAndSumForPrometheus) {
  LatencyHistogram h;
  for (int ms = 1; ms <= 1000; ++ms) h.record(std::chrono::milliseconds(ms));
  auto c = h.cumulative({0.01, 0.1, 0.5, 2.0});
  ASSERT_EQ(c.size(), 4u);
  // Within the 3 % bucket width of the exact counts 10, 100, 500, 1000; never decreasing.
  EXPECT_NEAR(double(c[0].second), 10, 1);
  EXPECT_NEAR(double(c[1].second), 100, 3);
  EXPECT_NEAR(double(c[2].second), 500, 15);
  EXPECT_EQ(c[3].second, 1000u);
  EXPECT_EQ(c[1].first, 0.1);
  EXPECT_NEAR(h.sum_s(), 500.5, 1e-6);
}

// Answers each append on another thread after `delay`.
class SlowSink final : public Sink {
 public:
  explicit SlowSink(std::chrono::milliseconds delay) : delay_(delay) {}
  ~SlowSink() override {
    for (auto& t : threads_) t.join();
  }
  std::string name() const override { return "slow"; }
  std::string append_mode() const override { return "direct"; }
  void append(AppendRequest request, AppendDone done) override {
    last_stream = request.stream;
    threads_.emplace_back([this, done = std::move(done)] {
      std::this_thread::sleep_for(delay_);
      done(AppendOutcome{.code = AppendCode::kSuccess});
    });
  }
  absl::StatusOr<StreamTail> read_tail(const std::string& stream) override {
    StreamTail t;
    t.exists = stream == "known";
    return t;
  }
  absl::StatusOr<std::vector<RecordedEventData>> read_forwards(const std::string&, StreamRevision,
                                                               uint64_t) override {
    return std::vector<RecordedEventData>{};
  }
  std::string last_stream;

 private:
  std::chrono::milliseconds delay_;
  std::vector<std::thread> threads_;
};

TEST(TimedSink, ForwardsAndTimesEachAppend) {
  SlowSink slow(30ms);
  TimedSink timed(slow);
  EXPECT_EQ(timed.name(), "slow");
  EXPECT_FALSE(timed.last_answer_at().has_value());
  EXPECT_TRUE(timed.read_tail("known")->exists);
  std::atomic<int> answered{0};
  const auto before = std::chrono::steady_clock::now();
  for (int i = 0; i < 4; ++i) {
    timed.append(AppendRequest{.stream = "s-" + std::to_string(i)}, [&](AppendOutcome o) {
      EXPECT_EQ(o.code, AppendCode::kSuccess);
      answered.fetch_add(1);
    });
  }
  ASSERT_TRUE(kingest::testing::eventually([&] { return answered.load() == 4; }, 10s, "four answers"));
  EXPECT_EQ(slow.last_stream, "s-3");
  EXPECT_EQ(timed.latency().count(), 4u);
  EXPECT_GE(timed.latency().quantile_ms(0.5), 30.0 * 0.97);
  ASSERT_TRUE(timed.last_answer_at().has_value());
  EXPECT_GE(*timed.last_answer_at() - before, 30ms);
}

TEST(TimedSink, TimesAnAppendWhoseCallerKeepsTheSendTime) {
  SlowSink slow(30ms);
  TimedSink timed(slow);
  std::atomic<int> answered{0};
  const auto sent = timed.begin_append();
  EXPECT_EQ(timed.appends_in_flight(), 1u);
  timed.append_untimed(AppendRequest{.stream = "caller-timed"}, [&, sent](AppendOutcome o) {
    EXPECT_EQ(o.code, AppendCode::kSuccess);
    timed.answered(sent);
    answered.fetch_add(1);
  });
  ASSERT_TRUE(kingest::testing::eventually([&] { return answered.load() == 1; }, 10s, "the answer"));
  EXPECT_EQ(slow.last_stream, "caller-timed");
  EXPECT_EQ(timed.appends_in_flight(), 0u);
  EXPECT_EQ(timed.latency().count(), 1u);
  EXPECT_GE(timed.latency().quantile_ms(0.5), 30.0 * 0.97);
  ASSERT_TRUE(timed.last_answer_at().has_value());
  EXPECT_GE(*timed.last_answer_at() - sent, 30ms);
}

TEST(TimedSink, TimesEachOfManyAppendsHandedOverTogether) {
  SlowSink slow(30ms);
  TimedSink timed(slow);
  std::atomic<int> answered{0};
  std::vector<Sink::PendingAppend> many;
  for (int i = 0; i < 3; ++i) {
    many.push_back({AppendRequest{.stream = "many-" + std::to_string(i)}, [&](AppendOutcome o) {
                      EXPECT_EQ(o.code, AppendCode::kSuccess);
                      answered.fetch_add(1);
                    }});
  }
  timed.append_many(many);
  EXPECT_TRUE(many.empty()) << "handed over";
  ASSERT_TRUE(kingest::testing::eventually([&] { return answered.load() == 3; }, 10s, "three answers"));
  EXPECT_EQ(slow.last_stream, "many-2") << "in order, through the wrapped sink's default append_many";
  EXPECT_EQ(timed.latency().count(), 3u);
  EXPECT_GE(timed.latency().quantile_ms(0.5), 30.0 * 0.97);
  EXPECT_EQ(timed.appends_in_flight(), 0u);
}

// Answers at once, each outcome stamped with a time `ahead` of now (a sink that read the clock
// once for a burst of answers).
class StampingSink final : public Sink {
 public:
  explicit StampingSink(std::chrono::milliseconds ahead) : ahead_(ahead) {}
  [[nodiscard]] std::string name() const override { return "stamping"; }
  [[nodiscard]] std::string append_mode() const override { return "direct"; }
  void append(AppendRequest, AppendDone done) override {
    AppendOutcome o{.code = AppendCode::kSuccess, .current_revision = StreamRevision{0}, .position = 0, .message = {}};
    o.answered_at = std::chrono::steady_clock::now() + ahead_;
    done(std::move(o));
  }
  absl::StatusOr<StreamTail> read_tail(const std::string&) override { return StreamTail{}; }
  absl::StatusOr<std::vector<RecordedEventData>> read_forwards(const std::string&, StreamRevision, uint64_t) override {
    return std::vector<RecordedEventData>{};
  }

 private:
  std::chrono::milliseconds ahead_;
};

TEST(TimedSink, TakesTheAnswersTimeFromTheOutcomeWhenTheSinkGivesIt) {
  // Answered at once, but stamped 200 ms on: the latency and the last answer's time are the
  // stamp's, not the moment the callback ran.
  StampingSink stamping(200ms);
  TimedSink timed(stamping);
  const auto before = std::chrono::steady_clock::now();
  int answered = 0;
  timed.append(AppendRequest{.stream = "stamped"}, [&](AppendOutcome) { ++answered; });
  // The same through a caller that keeps the send time.
  const auto sent = timed.begin_append();
  timed.append_untimed(AppendRequest{.stream = "stamped-2"}, [&, sent](AppendOutcome o) {
    timed.answered(sent, o.answered_at);
    ++answered;
  });
  ASSERT_EQ(answered, 2);
  EXPECT_EQ(timed.latency().count(), 2u);
  EXPECT_GE(timed.latency().quantile_ms(0.0), 200.0 * 0.97);
  ASSERT_TRUE(timed.last_answer_at().has_value());
  EXPECT_GE(*timed.last_answer_at() - before, 200ms);
  EXPECT_LT(std::chrono::steady_clock::now() - before, 200ms) << "the clock did not wait";
  EXPECT_EQ(timed.appends_in_flight(), 0u);
}

}  // namespace
}  // namespace kingest::pipeline
