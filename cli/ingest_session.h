// Wires one ingest run: the Kafka source's polling thread feeds the engine, the engine's
// completions feed the source's offset tracker, and the owner's thread watches progress.
//
// Owner: a command (demo, replay, run). Threads: the owner calls start / run_until / finish; the
// source's thread and the sink's threads do the work. Lifecycle: start → run_until → finish (stops
// fetching, drains in-flight appends, commits what is done, leaves the group).
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <functional>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "cli/progress.h"
#include "core/sink.h"
#include "kafka/kafka_source.h"
#include "kafka/replier.h"
#include "pipeline/dead_letter.h"
#include "pipeline/ingest_engine.h"
#include "pipeline/run_report.h"
#include "pipeline/timed_sink.h"

namespace kingest::cli {

enum class RunEnd { kReached, kFatal, kInterrupted, kTimedOut };

// How run_until shows progress: the mode, how often a plain line is logged, the expected count (0
// when unknown) and further text for the line (consumer lag, say).
struct ProgressOptions {
  ProgressMode mode = ProgressMode::kPlain;
  std::chrono::milliseconds every{10000};
  uint64_t total = 0;
  std::function<std::string(double rate)> extra;
};

// Seconds since this process started (its whole life, start-up included).
double process_seconds();

// User + system CPU seconds of a getrusage/wait4 result.
double cpu_seconds(const rusage& ru);
// CPU seconds (user + system, every thread) this process has used so far.
double process_cpu_seconds();
// The process's peak resident set so far, in MiB.
double process_peak_rss_mib();

class IngestSession {
 public:
  // `replier` (may be null: no replies) answers request/reply messages once each is done, and is
  // flushed before every offset commit; it must outlive the session.
  IngestSession(kafka::SourceOptions source, pipeline::EngineOptions engine, Sink& sink,
                pipeline::DeadLetterSink* dead_letters, kafka::Replier* replier = nullptr);
  ~IngestSession();

  absl::Status start();
  // Returns when `reached(stats)` holds, on a fatal error, on SIGINT/SIGTERM, or after `timeout`,
  // showing progress as `progress` says. The rate shown is events appended per second since the
  // first batch, the run report's events_per_s.
  RunEnd run_until(const std::function<bool(const pipeline::EngineStats&)>& reached,
                   std::chrono::milliseconds timeout, const ProgressOptions& progress);
  // Stops fetching, waits for in-flight work, commits, leaves the group. With `kafka_lost` (the
  // brokers stopped answering) nothing is committed and the group is not left: each would wait on
  // the brokers.
  absl::Status finish(bool kafka_lost = false);

  // A bounded run: every partition assigned here was read to its end and every message read is
  // through the pipeline (done, or held waiting for a missing version).
  [[nodiscard]] bool read_everything() const;
  // Re-checks every open gap and dead-letters those still open (the end of a bounded run).
  void give_up_gaps() { engine_->give_up_gaps(); }
  [[nodiscard]] std::set<TopicPartition> assignment() const { return source_ ? source_->assignment() : std::set<TopicPartition>{}; }

  [[nodiscard]] pipeline::EngineStats stats() const { return engine_->stats(); }
  [[nodiscard]] absl::Status fatal() const;
  [[nodiscard]] uint64_t offset_commits() const { return source_ ? source_->commits() : 0; }
  [[nodiscard]] uint64_t messages_lost() const { return source_ ? source_->messages_lost() : 0; }
  [[nodiscard]] bool assigned_any() const { return source_ && source_->assigned_any(); }
  // When the first batch reached the engine (the time before it is group join and fetch start).
  [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> first_batch_at() const;
  // CPU seconds (user + system) this process had used when the first batch arrived.
  [[nodiscard]] double cpu_s_at_first_batch() const { return cpu_s_at_first_batch_; }
  // Message bytes handed to the engine and not completed yet.
  [[nodiscard]] uint64_t bytes_in_flight() const;
  // Messages done per second since the first batch (0 before it).
  [[nodiscard]] double done_rate() const;

 private:
  kafka::SourceOptions source_options_;
  kafka::Replier* replier_ = nullptr;
  std::unique_ptr<pipeline::IngestEngine> engine_;
  std::unique_ptr<kafka::KafkaSource> source_;
  mutable std::mutex mu_;
  absl::Status source_fatal_;
  bool finished_ = false;
  // Set before the source is closed: its last revoke ends the run (read by the revoke callback).
  std::atomic<bool> closing_{false};
  std::atomic<bool> got_batch_{false};
  std::chrono::steady_clock::time_point first_batch_at_{};  // written once, before got_batch_
  double cpu_s_at_first_batch_ = 0;                          // likewise
  std::atomic<uint64_t> bytes_submitted_{0};
  std::atomic<uint64_t> bytes_done_{0};
};

// The report's sink figures: first_to_last_s (first batch in → last append answered), cpu_s (this
// process, from the first batch on: `cpu_s`), peak_rss_mib, events_per_append (over the appends
// answered) and append_latency_p50_ms / p99_ms.
void add_sink_figures(pipeline::RunReport& report, const pipeline::TimedSink& sink, const IngestSession& session,
                      double cpu_s);

}  // namespace kingest::cli
