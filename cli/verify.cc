// `kurrent-ingest verify`: checks that a KurrentDB holds exactly what `generate` produced with the
// same options: per stream the count, order, revisions, ids, types, payloads and metadata. Exit 0
// when it does, 4 when it does not (the first problems are printed).
#include <CLI/CLI.hpp>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "pipeline/run_report.h"
#include "workload/generator.h"
#include "workload/verifier.h"

namespace kingest::cli {
namespace {

struct VerifyOptions {
  uint64_t events = 100000;
  uint64_t streams = 0;
  std::string topics;
  std::string payload_bytes = "200-600";
  uint64_t seed = 1;
  std::string format = "json";
  KurrentFlags kurrent;
  IngestFlags ingest;  // only for the client's size limit
};

int run_verify(const VerifyOptions& o) {
  auto payload = parse_range(o.payload_bytes, "--payload-bytes");
  if (!payload.ok()) return usage_error(payload.status());
  auto format = workload::parse_format(o.format);
  if (!format) {
    return usage_error(absl::InvalidArgumentError("--format '" + o.format + "': use json, protobuf, flatbuffers or mixed"));
  }
  workload::GeneratorOptions gen{.events = o.events, .aggregates = o.streams, .seed = o.seed,
                                 .payload_min = payload->first, .payload_max = payload->second, .format = *format};
  std::stringstream ss(o.topics);
  for (std::string t; std::getline(ss, t, ',');) {
    if (!t.empty()) gen.topics.push_back(t);
  }
  bool usage_fault = false;
  auto client = connect_kurrent(o.kurrent, o.ingest, std::nullopt, &usage_fault);
  if (!client.ok()) return usage_fault ? usage_error(client.status()) : fatal_error(client.status());
  auto v = workload::verify(gen, **client);
  for (const auto& p : v.problems) std::cout << "problem: " << p << "\n";
  std::cout << "streams: " << v.streams_checked << ", events: " << v.events_checked << ", problems: " << v.problem_count
            << "\nverified: " << (v.ok ? "true" : "false") << std::endl;
  return v.ok ? pipeline::kExitDone : pipeline::kExitFatal;
}

}  // namespace

void register_verify(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<VerifyOptions>();
  auto* cmd = app.add_subcommand("verify", "Check that KurrentDB holds exactly what `generate` produced with the same options");
  cmd->add_option("--events", o->events, "How many events were generated")->capture_default_str();
  cmd->add_option("--streams", o->streams, "How many aggregates (streams); 0 = events / 20")->capture_default_str();
  cmd->add_option("--topics", o->topics, "The --topics given to generate");
  cmd->add_option("--payload-bytes", o->payload_bytes, "Payload size range MIN-MAX in bytes")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed given to generate")->capture_default_str();
  cmd->add_option("--format", o->format, "json, protobuf, flatbuffers or mixed")->capture_default_str();
  add_kurrent_flags(*cmd, o->kurrent);
  cmd->callback([o, set_action] { set_action([o] { return run_verify(*o); }); });
}

}  // namespace kingest::cli
