// Where a command writes: the event sink and the dead-letter sinks, opened the same way for demo,
// replay and run. Errors say what to fix; `*usage_fault` tells whether the fault is in the flags
// (exit 2) or in reaching the server (exit 4).
//
// Lifecycle: the command owns what these return and keeps it until its IngestSession finished.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "cli/commands.h"
#include "core/sink.h"
#include "kafka/dead_letter_topic.h"
#include "kurrent/kurrent_client.h"
#include "pipeline/dead_letter.h"
#include "pipeline/run_report.h"
#include "store/event_store.h"

namespace kingest::cli {

struct OpenedSink {
  std::unique_ptr<Sink> sink;
  kurrent::KurrentClient* client = nullptr;  // when `sink` is the gRPC client: its stats and close
};

// `kind`: "discard" (the BatchAppend encoding, dropped), "direct" (`store` in-process), else
// KurrentDB over gRPC at `url` (nullopt: --kurrent, then the environment).
absl::StatusOr<OpenedSink> open_sink(const std::string& kind, const KurrentFlags& kurrent, const IngestFlags& ingest,
                                     const std::optional<std::string>& url, store::EventStore* store,
                                     bool* usage_fault);

// The report's figures of the gRPC client: kurrent_appends, _retries, _reconnects, _redirects, and
// in records and session modes kurrent_requests (AppendRecords or session requests sent) and
// kurrent_streams_per_request (the stream groups they carried, per request).
void add_client_figures(pipeline::RunReport& report, const kurrent::ClientStats& stats);

// The NDJSON file, and the Kafka topic when `topic` is not empty; `sink()` writes to both.
class DeadLetterSinks {
 public:
  static absl::StatusOr<std::unique_ptr<DeadLetterSinks>> open(const std::string& file, const std::string& brokers,
                                                               const std::string& topic);
  DeadLetterSink& sink() { return *tee_; }

 private:
  DeadLetterSinks() = default;
  std::unique_ptr<pipeline::NdjsonDeadLetterFile> file_;
  std::unique_ptr<kafka::KafkaDeadLetterTopic> topic_;
  std::unique_ptr<pipeline::TeeDeadLetters> tee_;
};

}  // namespace kingest::cli
