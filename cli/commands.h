// Subcommand registration and the flags every ingest command shares.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "kafka/kafka_source.h"
#include "kurrent/kurrent_client.h"
#include "pipeline/ingest_engine.h"
#include "workload/generator.h"

namespace kingest::cli {

// Batching, in-flight bounds and revision rules: the same flags on demo, replay and run.
struct IngestFlags {
  size_t batch_max_events = 4096;
  size_t batch_max_bytes = 4u << 20;
  int64_t batch_max_age_ms = 20;
  size_t max_batches_in_flight = 32;
  size_t max_bytes_in_flight = 16u << 20;
  size_t max_append_bytes = 1u << 20;
  std::string version_base = "1";
  std::string stream_template = "{AggregateType}-{AggregateId}";
  std::vector<std::string> kafka_properties;  // -X KEY=VALUE, passed to librdkafka
  std::vector<std::string> topic_codecs;      // --codec TOPIC=json|protobuf|flatbuffers
  std::string on_data_loss = "fail";          // fail | skip
  std::string reorder_window = "30s";         // how long a gap waits before it is re-checked
  size_t max_held_bytes = 32u << 20;          // message bytes of held events before the oldest gaps are given up
  bool allow_system_streams = false;          // write stream names starting with `$`
  size_t stream_cache_bytes = 48u << 20;      // per-stream states kept between batches

  [[nodiscard]] absl::StatusOr<pipeline::EngineOptions> engine_options() const;
  [[nodiscard]] absl::StatusOr<kafka::SourceOptions> source_options() const;
};

void add_ingest_flags(CLI::App& cmd, IngestFlags& flags);

// What `generate` produces, and what `verify` expects: the same flags give the same events.
struct WorkloadFlags {
  uint64_t events = 100000;
  uint64_t streams = 0;
  std::string topics;
  std::string payload_bytes = "200-600";
  uint64_t seed = 1;
  std::string format = "json";
  std::string key = "aggregate";  // aggregate | none
  bool burst = false;

  [[nodiscard]] absl::StatusOr<workload::GeneratorOptions> generator_options() const;
};

void add_workload_flags(CLI::App& cmd, WorkloadFlags& flags);

// Where and how to write: a KurrentDB connection string (--kurrent, else the environment) and the
// append mode.
struct KurrentFlags {
  std::string url;  // --kurrent (empty: KURRENT_CONNECTION_STRING, then EVENTSTORE_CONNECTION_STRING)
  std::string append_mode = "auto";
  size_t max_in_flight_appends = 8192;
  size_t max_requests_in_flight = 16;  // records and session modes: v2 requests on the wire at once
  int64_t retry_for_s = 60;
};

void add_kurrent_flags(CLI::App& cmd, KurrentFlags& flags);

// Connects the gRPC sink; `url` overrides flags.url (the demo's own server). Errors say what to
// fix; `*usage_fault` tells whether the fault is in the flags (exit 2) or in reaching the server
// (exit 4).
absl::StatusOr<std::unique_ptr<kurrent::KurrentClient>> connect_kurrent(const KurrentFlags& flags,
                                                                        const IngestFlags& ingest,
                                                                        const std::optional<std::string>& url,
                                                                        bool* usage_fault);
// The connection string connect_kurrent uses (flag, else environment), password hidden: for reports
// and logs. Empty when there is none.
std::string redacted_kurrent_url(const KurrentFlags& flags);

// -X KEY=VALUE items → a property map; the error names the bad item.
absl::StatusOr<std::map<std::string, std::string>> parse_properties(const std::vector<std::string>& items);

// "MIN-MAX" → {MIN, MAX}; the error names the flag.
absl::StatusOr<std::pair<size_t, size_t>> parse_range(const std::string& text, const std::string& flag);

// Print the error and return the exit code for it.
int usage_error(const absl::Status& s);
int fatal_error(const absl::Status& s);

// Parses the command line, sets the log level and pattern, then runs `run` (which calls the action
// the parse chose); a parse error is a usage error, an exception a fatal one. `log_level` is the
// variable the app's --log-level option writes.
int parse_and_run(CLI::App& app, int argc, char** argv, const std::string& log_level,
                  const std::function<int()>& run);

using ActionSetter = std::function<void(std::function<int()>)>;
void register_demo(CLI::App& app, ActionSetter set_action);
void register_broker(CLI::App& app, ActionSetter set_action);
void register_generate(CLI::App& app, ActionSetter set_action);
void register_serve_store(CLI::App& app, ActionSetter set_action);
void register_run(CLI::App& app, ActionSetter set_action);  // replay and run
void register_verify(CLI::App& app, ActionSetter set_action);
void register_dlq(CLI::App& app, ActionSetter set_action);
void register_read(CLI::App& app, ActionSetter set_action);
void register_streams(CLI::App& app, ActionSetter set_action);
void register_audit(CLI::App& app, ActionSetter set_action);
void register_sandbox(CLI::App& app, ActionSetter set_action);

}  // namespace kingest::cli
