// `kurrent-ingest dlq replay`: puts dead letters back into Kafka once they are fixed, so that the
// next `replay` or `run` ingests them. Reads the NDJSON dead-letter file (one letter per line, as
// `--dlq-file` writes it) and produces each letter's bytes, with its key, to its original topic (or
// `--topic`), in file order: the order in which a stream's letters were written.
//
// The bytes are the line's `value` when present (edit it to fix a letter), else `value_base64`.
// `--reason` keeps only letters with that reason (repeatable).
#include <simdjson.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <set>

#include "absl/strings/escaping.h"
#include "cli/commands.h"
#include "kafka/producer.h"
#include "kafka/properties.h"
#include "pipeline/run_report.h"

namespace kingest::cli {
namespace {

struct DlqReplayOptions {
  std::string file;
  std::string brokers;
  std::string topic;
  std::vector<std::string> reasons;
  std::vector<std::string> properties;
};

int run_dlq_replay(const DlqReplayOptions& o) {
  std::ifstream in(o.file);
  if (!in) return usage_error(absl::InvalidArgumentError("--file: cannot read " + o.file));
  auto props = parse_properties(o.properties);
  if (!props.ok()) return usage_error(props.status());
  if (auto st = kafka::check_producer_properties(*props); !st.ok()) return usage_error(st);
  const std::set<std::string> reasons(o.reasons.begin(), o.reasons.end());
  auto producer = kafka::Producer::create(o.brokers, *props);
  if (!producer.ok()) return usage_error(producer.status());

  simdjson::dom::parser parser;
  std::string line;
  uint64_t line_no = 0, produced = 0, skipped = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto where = o.file + ":" + std::to_string(line_no);
    simdjson::dom::element doc;
    if (parser.parse(line).get(doc) != simdjson::SUCCESS) {
      return usage_error(absl::InvalidArgumentError(where + ": not a JSON object (a dead letter per line)"));
    }
    std::string_view reason, topic, key, value, value_b64;
    if (doc["reason"].get(reason) != simdjson::SUCCESS || doc["topic"].get(topic) != simdjson::SUCCESS) {
      return usage_error(absl::InvalidArgumentError(where + ": a dead letter needs \"reason\" and \"topic\""));
    }
    if (!reasons.empty() && !reasons.contains(std::string(reason))) {
      ++skipped;
      continue;
    }
    if (doc["key"].get(key) != simdjson::SUCCESS) key = {};  // a message without a key
    std::string bytes;
    if (doc["value"].get(value) == simdjson::SUCCESS) {
      bytes = std::string(value);
    } else if (doc["value_base64"].get(value_b64) == simdjson::SUCCESS) {
      if (!absl::Base64Unescape(absl::string_view(value_b64.data(), value_b64.size()), &bytes)) {
        return usage_error(absl::InvalidArgumentError(where + ": value_base64 is not base64"));
      }
    } else {
      return usage_error(absl::InvalidArgumentError(where + ": a dead letter needs \"value\" or \"value_base64\""));
    }
    const std::string to = o.topic.empty() ? std::string(topic) : o.topic;
    if (auto s = (*producer)->produce(to, key, bytes, ""); !s.ok()) return fatal_error(s);
    ++produced;
  }
  if (auto s = (*producer)->flush(std::chrono::seconds(60)); !s.ok()) return fatal_error(s);
  std::cout << "dlq replay: " << produced << " dead letter(s) produced to Kafka" << (skipped ? ", " : "")
            << (skipped ? std::to_string(skipped) + " skipped by --reason" : "") << std::endl;
  return pipeline::kExitDone;
}

}  // namespace

void register_dlq(CLI::App& app, ActionSetter set_action) {
  auto* dlq = app.add_subcommand("dlq", "Work with dead letters");
  dlq->require_subcommand(1);
  auto o = std::make_shared<DlqReplayOptions>();
  auto* cmd = dlq->add_subcommand("replay", "Produce (fixed) dead letters back to Kafka for the next replay or run");
  cmd->add_option("--file", o->file, "The dead-letter NDJSON file (as written by --dlq-file)")->required();
  cmd->add_option("--brokers", o->brokers, "Kafka bootstrap servers HOST:PORT[,...]")->required();
  cmd->add_option("--topic", o->topic, "Produce every letter to this topic (default: each letter's own topic)");
  cmd->add_option("--reason", o->reasons, "Only letters with this reason (repeatable), e.g. decode-error");
  cmd->add_option("-X,--kafka-property", o->properties, "librdkafka producer property KEY=VALUE (repeatable)");
  cmd->callback([o, set_action] { set_action([o] { return run_dlq_replay(*o); }); });
}

}  // namespace kingest::cli
