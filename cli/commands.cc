#include "cli/commands.h"

#include "absl/time/time.h"

#include <sstream>

#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/exit_codes.h"
#include "kafka/properties.h"

namespace kingest::cli {

absl::StatusOr<pipeline::EngineOptions> IngestFlags::engine_options() const {
  pipeline::EngineOptions o;
  auto names = pipeline::StreamNameTemplate::parse(stream_template);
  if (!names.ok()) return absl::InvalidArgumentError("--stream-template: " + std::string(names.status().message()));
  o.stream_names = *names;
  auto base = pipeline::VersionBase::parse(version_base);
  if (!base.ok()) return absl::InvalidArgumentError("--version-base: " + std::string(base.status().message()));
  o.version_base = *base;
  if (base->kind == pipeline::VersionBase::Kind::kNone) {
    spdlog::warn("--version-base none: appends use expected revision 'any'; a replay cannot tell written events "
                 "from new ones and may duplicate them");
  }
  absl::Duration window;
  if (!absl::ParseDuration(reorder_window, &window) || window < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--reorder-window '" + reorder_window +
                                      "': expected a duration such as 30s, 500ms or 2m");
  }
  o.reorder_window = absl::ToChronoMilliseconds(window);
  o.max_held_bytes = max_held_bytes;
  o.stream_cache_bytes = stream_cache_bytes;
  o.allow_system_streams = allow_system_streams;
  o.max_batches_in_flight = max_batches_in_flight;
  o.max_bytes_in_flight = max_bytes_in_flight;
  o.max_append_bytes = max_append_bytes;
  for (const auto& tc : topic_codecs) {
    auto eq = tc.find('=');
    auto codec = eq == std::string::npos ? std::nullopt : codecs::parse_codec_name(tc.substr(eq + 1));
    if (eq == std::string::npos || eq == 0 || !codec) {
      return absl::InvalidArgumentError("--codec '" + tc + "': expected TOPIC=json|json-nested|protobuf|flatbuffers");
    }
    o.topic_codecs[tc.substr(0, eq)] = *codec;
  }
  return o;
}

absl::StatusOr<kafka::SourceOptions> IngestFlags::source_options() const {
  kafka::SourceOptions o;
  auto props = parse_properties(kafka_properties);
  if (!props.ok()) return props.status();
  if (auto st = kafka::check_consumer_properties(*props); !st.ok()) return st;
  o.properties = std::move(*props);
  o.batch.max_events = batch_max_events;
  o.batch.max_bytes = batch_max_bytes;
  o.batch.max_age = std::chrono::milliseconds(batch_max_age_ms);
  o.on_data_loss = on_data_loss == "skip" ? kafka::SourceOptions::DataLoss::kSkip : kafka::SourceOptions::DataLoss::kFail;
  return o;
}

void add_ingest_flags(CLI::App& cmd, IngestFlags& f) {
  cmd.add_option("--batch-max-events", f.batch_max_events, "A batch closes at this many events")
      ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{1000000}));
  cmd.add_option("--batch-max-bytes", f.batch_max_bytes, "A batch closes at this many bytes")
      ->capture_default_str()->check(CLI::Range(size_t{1024}, size_t{1} << 31));
  cmd.add_option("--batch-max-age-ms", f.batch_max_age_ms, "A batch closes this long after its first event")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{600000}));
  cmd.add_option("--max-batches-in-flight", f.max_batches_in_flight, "Batches inside the pipeline at once")
      ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{4096}));
  cmd.add_option("--max-bytes-in-flight", f.max_bytes_in_flight, "Bytes inside the pipeline before Kafka is paused")
      ->capture_default_str()->check(CLI::Range(size_t{1} << 16, size_t{1} << 40));
  cmd.add_option("--max-append-bytes,--max-append-size", f.max_append_bytes,
                 "A stream group is split so one append stays under this (KurrentDB < 25.1: 1 MiB)")
      ->capture_default_str()->check(CLI::Range(size_t{1024}, size_t{256} << 20));
  cmd.add_option("--version-base", f.version_base,
                 "aggregateVersion of a stream's first event: 1 (seed), 0, or none (expected revision any; replays unsafe)")
      ->capture_default_str();
  cmd.add_option("--codec", f.topic_codecs,
                 "Codec of a topic's messages that carry no content-type header: TOPIC=json|json-nested|protobuf|flatbuffers "
                 "(repeatable; default json)");
  cmd.add_option("-X,--kafka-property", f.kafka_properties,
                 "librdkafka consumer property KEY=VALUE (repeatable), e.g. -X security.protocol=SASL_SSL");
  cmd.add_option("--on-data-loss", f.on_data_loss,
                 "When retention deleted messages the group never ingested: fail (stop, exit 4) or skip (log, count "
                 "them as events_lost, go on from the oldest retained message)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fail", "skip"}));
  cmd.add_option("--reorder-window", f.reorder_window,
                 "How long an event ahead of its stream's next version waits for the missing ones (arriving from any "
                 "partition) before the gap is re-checked against the store; run then dead-letters it revision-gap, "
                 "replay waits until every partition reached its end")
      ->capture_default_str();
  cmd.add_option("--max-held-bytes", f.max_held_bytes,
                 "Message bytes of events waiting for missing versions above which the oldest gaps are dead-lettered "
                 "(re-checked first)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1} << 16, size_t{1} << 40));
  cmd.add_option("--stream-cache-bytes", f.stream_cache_bytes,
                 "Memory for the per-stream states (next revision, last event id) kept between batches; above it the "
                 "least recently used are dropped and loaded again when their stream comes back")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1} << 16, size_t{1} << 40));
  cmd.add_flag("--allow-system-streams", f.allow_system_streams,
               "Write streams whose names start with '$' (KurrentDB's system and metadata streams); without it such "
               "events are dead-lettered system-stream");
  cmd.add_option("--stream-template", f.stream_template,
                 "Stream name from {AggregateType}, {AggregateId}, {EventType}")
      ->capture_default_str();
}

absl::StatusOr<std::map<std::string, std::string>> parse_properties(const std::vector<std::string>& items) {
  std::map<std::string, std::string> props;
  for (const auto& kv : items) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError("-X '" + kv + "': expected KEY=VALUE, e.g. -X fetch.wait.max.ms=100");
    }
    props[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return props;
}

absl::StatusOr<workload::GeneratorOptions> WorkloadFlags::generator_options() const {
  auto payload = parse_range(payload_bytes, "--payload-bytes");
  if (!payload.ok()) return payload.status();
  auto parsed = workload::parse_format(format);
  if (!parsed) return absl::InvalidArgumentError("--format '" + format + "': use json, protobuf, flatbuffers or mixed");
  workload::GeneratorOptions gen{.events = events, .aggregates = streams, .seed = seed,
                                 .payload_min = payload->first, .payload_max = payload->second, .format = *parsed,
                                 .keyed = key != "none", .burst = burst};
  std::stringstream ss(topics);
  for (std::string t; std::getline(ss, t, ',');) {
    if (!t.empty()) gen.topics.push_back(t);
  }
  return gen;
}

void add_workload_flags(CLI::App& cmd, WorkloadFlags& f) {
  cmd.add_option("--events", f.events, "How many events")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1000000000}));
  cmd.add_option("--streams", f.streams, "How many aggregates (streams); 0 = events / 20")->capture_default_str();
  cmd.add_option("--topics", f.topics,
                 "Comma-separated topics, round-robin per aggregate (default: the seed's topic per aggregate type)");
  cmd.add_option("--payload-bytes", f.payload_bytes, "Payload size range MIN-MAX in bytes")->capture_default_str();
  cmd.add_option("--seed", f.seed, "Seed: the same seed and options produce the same events")->capture_default_str();
  cmd.add_option("--format", f.format, "json, protobuf, flatbuffers or mixed")->capture_default_str();
  cmd.add_option("--key", f.key,
                 "aggregate: messages keyed by aggregate id; none: no key, as NestJS emit(topic, event) sends them "
                 "(one aggregate's events then spread over partitions)")
      ->capture_default_str()
      ->check(CLI::IsMember({"aggregate", "none"}));
  cmd.add_flag("--burst", f.burst,
               "Produce each aggregate's versions together, one after another, instead of interleaving aggregates");
}

void add_kurrent_flags(CLI::App& cmd, KurrentFlags& f) {
  cmd.add_option("--kurrent", f.url,
                 "KurrentDB connection string, e.g. kurrentdb://admin:changeit@localhost:2113?tls=false (default: "
                 "$KURRENT_CONNECTION_STRING, then $EVENTSTORE_CONNECTION_STRING)");
  cmd.add_option("--append-mode", f.append_mode,
                 "auto (records when the server offers AppendRecords, else batch), records (v2 AppendRecords, "
                 "KurrentDB 26.1+: the stream groups waiting at one moment in one atomic request), batch "
                 "(BatchAppend on one call; Append when the server lacks it), append (one Append call per stream "
                 "group) or session (v2 multi-stream AppendSession, KurrentDB 25.1+)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "records", "batch", "append", "session"}));
  cmd.add_option("--max-appends-in-flight", f.max_in_flight_appends, "Appends on the wire to KurrentDB at once")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{65536}));
  cmd.add_option("--max-requests-in-flight", f.max_requests_in_flight,
                 "Records and session modes: requests on the wire to KurrentDB at once, each carrying the stream "
                 "groups waiting when it is sent")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1024}));
  cmd.add_option("--retry-for-s", f.retry_for_s,
                 "Keep retrying an append that fails with a retryable error (server down, timeout) this long before "
                 "stopping the run")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{86400}));
}

absl::StatusOr<std::unique_ptr<kurrent::KurrentClient>> connect_kurrent(const KurrentFlags& flags,
                                                                        const IngestFlags& ingest,
                                                                        const std::optional<std::string>& url,
                                                                        bool* usage_fault) {
  *usage_fault = true;
  auto text = url ? absl::StatusOr<std::string>(*url) : kurrent::connection_string_from_environment(
                                flags.url.empty() ? std::nullopt : std::optional<std::string>(flags.url));
  if (!text.ok()) return text.status();
  auto settings = kurrent::parse_connection_string(*text);
  if (!settings.ok()) return settings.status();
  auto mode = kurrent::parse_append_mode(flags.append_mode);
  if (!mode.ok()) return mode.status();
  *usage_fault = false;
  return kurrent::KurrentClient::connect(*settings, {.mode = *mode,
                                                     .max_append_size = ingest.max_append_bytes,
                                                     .max_in_flight_appends = flags.max_in_flight_appends,
                                                     .retry_for = std::chrono::seconds(flags.retry_for_s),
                                                     .max_sessions_in_flight = flags.max_requests_in_flight});
}

std::string redacted_kurrent_url(const KurrentFlags& flags) {
  auto text = kurrent::connection_string_from_environment(flags.url.empty() ? std::nullopt
                                                                            : std::optional<std::string>(flags.url));
  if (!text.ok()) return {};
  auto settings = kurrent::parse_connection_string(*text);
  return settings.ok() ? settings->redacted() : std::string();
}

absl::StatusOr<std::pair<size_t, size_t>> parse_range(const std::string& text, const std::string& flag) {
  auto dash = text.find('-');
  try {
    size_t pos = 0;
    if (dash == std::string::npos) {
      size_t v = std::stoul(text, &pos);
      if (pos != text.size()) throw std::invalid_argument(text);
      return std::pair{v, v};
    }
    size_t a = std::stoul(text.substr(0, dash), &pos);
    if (pos != dash) throw std::invalid_argument(text);
    size_t b = std::stoul(text.substr(dash + 1), &pos);
    if (pos != text.size() - dash - 1 || b < a) throw std::invalid_argument(text);
    return std::pair{a, b};
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(flag + " '" + text + "': expected MIN-MAX with MIN <= MAX, e.g. 200-600");
  }
}

int parse_and_run(CLI::App& app, int argc, char** argv, const std::string& log_level,
                  const std::function<int()>& run) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitDone : kExitUsage;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFatal;
  }
}

int usage_error(const absl::Status& s) {
  std::cerr << "error: " << s.message() << "\n";
  return kExitUsage;
}

int fatal_error(const absl::Status& s) {
  std::cerr << "error: " << s.message() << "\n";
  return kExitFatal;
}

}  // namespace kingest::cli
