// TimedSink: wraps a sink and measures each append from the moment the pipeline hands it over to
// its answer (time spent waiting for a free in-flight slot inside the sink included), into a
// log-scaled histogram; it also remembers when the last answer arrived. The run report's
// append_latency_p50_ms / p99_ms and first_to_last_s come from here, and so do the metrics' append
// and stream-read latency histograms.
//
// Threads: `append` from any thread; answers on the wrapped sink's threads; the readers from any
// thread. Lifecycle: must outlive every append it forwards (like the wrapped sink).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "core/sink.h"

namespace kingest::pipeline {

// Latencies in buckets 3 % wide from 1 µs to about 150 s: lock-free to record, percentiles within 3 %.
class LatencyHistogram {
 public:
  void record(std::chrono::nanoseconds d);
  [[nodiscard]] uint64_t count() const;
  // The latency at or below which `q` (0..1) of the records lie, in milliseconds; 0 when empty.
  [[nodiscard]] double quantile_ms(double q) const;
  // Sum of the recorded latencies, in seconds.
  [[nodiscard]] double sum_s() const;
  // For each upper bound (seconds, ascending): the records in buckets that end at or below it
  // (Prometheus' cumulative `le` buckets, within the 3 % bucket width).
  [[nodiscard]] std::vector<std::pair<double, uint64_t>> cumulative(const std::vector<double>& bounds_s) const;

 private:
  static constexpr size_t kBuckets = 640;
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

class TimedSink final : public Sink {
 public:
  explicit TimedSink(Sink& inner) : inner_(inner) {}

  [[nodiscard]] std::string name() const override { return inner_.name(); }
  [[nodiscard]] std::string append_mode() const override { return inner_.append_mode(); }
  [[nodiscard]] bool exact_answers() const override { return inner_.exact_answers(); }
  [[nodiscard]] bool wants_record_properties() const override { return inner_.wants_record_properties(); }
  void append(AppendRequest request, AppendDone done) override;
  // The same, timed by a caller that keeps the send time with its append: `begin_append` (the
  // send time), then `append_untimed`, whose `done` goes to the wrapped sink as it is (a wrapper
  // holding the time and the caller's callback is a heap allocation per append), and `answered`
  // with that time on the wrapped sink's thread when the answer comes, before acting on it.
  std::chrono::steady_clock::time_point begin_append() { return begin_appends(1); }
  // The send time of `n` appends handed over together.
  std::chrono::steady_clock::time_point begin_appends(size_t n);
  void append_untimed(AppendRequest request, AppendDone done) { inner_.append(std::move(request), std::move(done)); }
  // The same for many, each begun with `begin_append`.
  void append_many_untimed(std::vector<PendingAppend>& appends) { inner_.append_many(appends); }
  void append_many(std::vector<PendingAppend>& appends) override;
  // `at`: the outcome's `answered_at`; at the clock's epoch, now.
  void answered(std::chrono::steady_clock::time_point sent, std::chrono::steady_clock::time_point at = {});
  absl::StatusOr<StreamTail> read_tail(const std::string& stream) override;
  std::vector<absl::StatusOr<StreamTail>> read_tails(const std::vector<std::string>& streams) override;
  absl::StatusOr<std::vector<RecordedEventData>> read_forwards(const std::string& stream, StreamRevision from,
                                                               uint64_t max_count) override {
    return inner_.read_forwards(stream, from, max_count);
  }

  [[nodiscard]] const LatencyHistogram& latency() const { return latency_; }
  // First-touch reads of a stream's tail (one record per read call, however many streams it asks
  // for) and the streams they covered.
  [[nodiscard]] const LatencyHistogram& read_latency() const { return read_latency_; }
  [[nodiscard]] uint64_t streams_read() const { return streams_read_.load(std::memory_order_relaxed); }
  // Appends handed to the wrapped sink and not answered yet.
  [[nodiscard]] uint64_t appends_in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  // When the last answer arrived (nullopt before the first).
  [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> last_answer_at() const;

 private:
  Sink& inner_;
  LatencyHistogram latency_;
  LatencyHistogram read_latency_;
  std::atomic<uint64_t> streams_read_{0};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<int64_t> last_answer_ns_{0};  // steady_clock since its epoch; 0 = none yet
};

}  // namespace kingest::pipeline
