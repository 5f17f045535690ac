// The Prometheus metrics of an ingest run (replay, run, demo): the engine's counters, append and
// stream-read latency, consumer lag, in-flight work, the KurrentDB client's retries, and what the
// run is (kurrent_ingest_run_info). Collected when scraped; nothing is counted twice.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cli/ingest_session.h"
#include "cli/lag.h"
#include "kurrent/kurrent_client.h"
#include "metrics/exposition.h"
#include "metrics/output.h"
#include "pipeline/dead_letter.h"
#include "pipeline/timed_sink.h"

namespace kingest::cli {

// --metrics-listen and --metrics-textfile.
struct MetricsFlags {
  std::string listen;
  std::string textfile;
};
// `every_flag`: the flag that sets how often the textfile is rewritten.
void add_metrics_flags(CLI::App& cmd, MetricsFlags& flags, const std::string& every_flag = "--progress-s");

// Starts the endpoint and the textfile (every `every`); null when neither flag is given. Prints
// where the endpoint listens.
absl::StatusOr<std::unique_ptr<metrics::MetricsOutput>> start_metrics(const metrics::Registry& registry,
                                                                      const MetricsFlags& flags,
                                                                      std::chrono::milliseconds every);

// Counts dead letters by reason on their way to the real sink.
class CountingDeadLetters final : public pipeline::DeadLetterSink {
 public:
  explicit CountingDeadLetters(pipeline::DeadLetterSink& inner) : inner_(inner) {}
  absl::Status write(const std::vector<pipeline::DeadLetter>& letters) override;
  [[nodiscard]] std::string describe() const override { return inner_.describe(); }
  [[nodiscard]] std::map<std::string, uint64_t> by_reason() const;

 private:
  pipeline::DeadLetterSink& inner_;
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> by_reason_;
};

// What the ingest collector reads; pointers may be null (no client with --sink discard, no lag
// watcher). All must outlive the registry's last render.
struct IngestMetricsSources {
  std::string command;
  std::string append_mode;
  const IngestSession* session = nullptr;
  const pipeline::TimedSink* sink = nullptr;
  const kurrent::KurrentClient* client = nullptr;
  const CountingDeadLetters* dead_letters = nullptr;
  const LagWatcher* lag = nullptr;
  bool catch_up = false;  // `run`: export the time to catch up at the current rate
};

void add_ingest_metrics(metrics::Registry& registry, IngestMetricsSources sources);

// "lag N" (and in `run` ", catch up in Ns") for the progress line.
std::string lag_text(const LagSnapshot& lag, double rate, bool catch_up);

}  // namespace kingest::cli
