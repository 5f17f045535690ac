// `kurrent-ingest generate`: produces seed-domain events to any Kafka, deterministic for a seed.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/signals.h"
#include "kafka/producer.h"
#include "cli/exit_codes.h"
#include "workload/generator.h"

namespace kingest::cli {
namespace {

struct GenerateOptions {
  std::string brokers;
  WorkloadFlags workload;
  std::vector<std::string> properties;
  bool request_reply = false;
};

int run_generate(const GenerateOptions& o) {
  install_interrupt_handlers();
  auto gen = o.workload.generator_options();
  if (!gen.ok()) return usage_error(gen.status());
  auto props = parse_properties(o.properties);
  if (!props.ok()) return usage_error(props.status());
  // Unkeyed messages go to a random partition each (librdkafka would otherwise stick to one
  // partition for a while), as a NestJS publisher's kafkajs spreads them.
  if (!gen->keyed && !props->contains("sticky.partitioning.linger.ms")) (*props)["sticky.partitioning.linger.ms"] = "0";
  auto producer = kafka::Producer::create(o.brokers, *props);
  if (!producer.ok()) return usage_error(producer.status());
  auto start = std::chrono::steady_clock::now();
  workload::Generator g(*gen);
  workload::GeneratedEvent e;
  uint64_t n = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  while (!interrupted() && g.next(e)) {
    if (o.request_reply) {
      // As NestJS ClientKafka send() does: an answer is awaited on TOPIC.reply.
      headers = {{"kafka_correlationId", "generate-" + std::to_string(n)}, {"kafka_replyTopic", e.topic + ".reply"}};
    }
    if (auto s = (*producer)->produce(e.topic, e.key_view(), e.value, e.content_type, headers); !s.ok()) return fatal_error(s);
    ++n;
  }
  if (auto s = (*producer)->flush(std::chrono::seconds(120)); !s.ok()) return fatal_error(s);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "produced " << n << " events of " << g.aggregates() << " streams in " << fmt::format("{:.2f}", secs)
            << " s (" << fmt::format("{:.0f}", secs > 0 ? double(n) / secs : 0.0) << " events/s)" << std::endl;
  return interrupted() ? kExitInterrupted : kExitDone;
}

}  // namespace

void register_generate(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Produce deterministic seed-domain events (versions in order per aggregate, "
                                             "streams interleaved, keyed by aggregate id) to a Kafka cluster");
  cmd->add_option("--brokers", o->brokers, "Kafka bootstrap servers HOST:PORT[,...]")->required();
  add_workload_flags(*cmd, o->workload);
  cmd->add_option("-X,--kafka-property", o->properties, "librdkafka producer property KEY=VALUE (repeatable)");
  cmd->add_flag("--request-reply", o->request_reply,
                "Send each event as a request awaiting a reply, like NestJS ClientKafka send(): headers "
                "kafka_correlationId and kafka_replyTopic (TOPIC.reply, which must exist)");
  cmd->callback([o, set_action] { set_action([o] { return run_generate(*o); }); });
}

}  // namespace kingest::cli
