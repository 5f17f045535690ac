// `kurrent-ingest generate`: produces seed-domain events to any Kafka, deterministic for a seed.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/signals.h"
#include "kafka/producer.h"
#include "pipeline/run_report.h"
#include "workload/generator.h"

namespace kingest::cli {
namespace {

struct GenerateOptions {
  std::string brokers;
  uint64_t events = 100000;
  uint64_t streams = 0;
  std::string topics;
  std::string payload_bytes = "200-600";
  uint64_t seed = 1;
  std::string format = "json";
  std::vector<std::string> properties;
};

int run_generate(const GenerateOptions& o) {
  install_interrupt_handlers();
  auto payload = parse_range(o.payload_bytes, "--payload-bytes");
  if (!payload.ok()) return usage_error(payload.status());
  auto format = workload::parse_format(o.format);
  if (!format) return usage_error(absl::InvalidArgumentError("--format '" + o.format + "': use json, protobuf, flatbuffers or mixed"));
  std::map<std::string, std::string> props;
  for (const auto& kv : o.properties) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return usage_error(absl::InvalidArgumentError("-X '" + kv + "': expected KEY=VALUE"));
    props[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  workload::GeneratorOptions gen{.events = o.events, .aggregates = o.streams, .seed = o.seed,
                                 .payload_min = payload->first, .payload_max = payload->second, .format = *format};
  if (!o.topics.empty()) {
    std::stringstream ss(o.topics);
    std::string t;
    while (std::getline(ss, t, ',')) {
      if (!t.empty()) gen.topics.push_back(t);
    }
  }
  auto producer = kafka::Producer::create(o.brokers, props);
  if (!producer.ok()) return usage_error(producer.status());
  auto start = std::chrono::steady_clock::now();
  workload::Generator g(gen);
  workload::GeneratedEvent e;
  uint64_t n = 0;
  while (!interrupted() && g.next(e)) {
    if (auto s = (*producer)->produce(e.topic, e.key, e.value, e.content_type); !s.ok()) return fatal_error(s);
    ++n;
  }
  if (auto s = (*producer)->flush(std::chrono::seconds(120)); !s.ok()) return fatal_error(s);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "produced " << n << " events of " << g.aggregates() << " streams in " << fmt::format("{:.2f}", secs)
            << " s (" << fmt::format("{:.0f}", secs > 0 ? double(n) / secs : 0.0) << " events/s)" << std::endl;
  return interrupted() ? pipeline::kExitInterrupted : pipeline::kExitDone;
}

}  // namespace

void register_generate(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Produce deterministic seed-domain events (versions in order per aggregate, "
                                             "streams interleaved, keyed by aggregate id) to a Kafka cluster");
  cmd->add_option("--brokers", o->brokers, "Kafka bootstrap servers HOST:PORT[,...]")->required();
  cmd->add_option("--events", o->events, "How many events")->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{1000000000}));
  cmd->add_option("--streams", o->streams, "How many aggregates (streams); 0 = events / 20")->capture_default_str();
  cmd->add_option("--topics", o->topics, "Comma-separated topics, round-robin per aggregate (default: the seed's topic per aggregate type)");
  cmd->add_option("--payload-bytes", o->payload_bytes, "Payload size range MIN-MAX in bytes")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed: the same seed and options produce the same bytes")->capture_default_str();
  cmd->add_option("--format", o->format, "json, protobuf, flatbuffers or mixed")->capture_default_str();
  cmd->add_option("-X,--kafka-property", o->properties, "librdkafka producer property KEY=VALUE (repeatable)");
  cmd->callback([o, set_action] { set_action([o] { return run_generate(*o); }); });
}

}  // namespace kingest::cli
