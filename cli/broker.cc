// `kurrent-ingest broker`: the embedded Kafka (librdkafka's mock cluster) as a standalone process,
// for local work and for tests whose processes must outlive each other.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/signals.h"
#include "kafka/embedded_broker.h"
#include "kafka/kafka_source.h"
#include "cli/exit_codes.h"

namespace kingest::cli {
namespace {

struct BrokerOptions {
  std::string topics;
  int partitions = 8;
  int brokers = 1;
  std::string bootstrap_file;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int run_broker(const BrokerOptions& o) {
  install_interrupt_handlers();
  auto topics = o.topics.empty() ? kafka::kDefaultTopics : split_list(o.topics);
  if (topics.empty()) return usage_error(absl::InvalidArgumentError("--topics: give at least one topic name"));
  auto broker = kafka::EmbeddedBroker::start(o.brokers);
  if (!broker.ok()) return fatal_error(broker.status());
  for (const auto& t : topics) {
    if (auto s = (*broker)->create_topic(t, o.partitions); !s.ok()) return fatal_error(s);
  }
  const std::string& bootstrap = (*broker)->bootstrap();
  if (!o.bootstrap_file.empty()) {
    // Written whole, then renamed: a reader never sees half an address.
    std::string tmp = o.bootstrap_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << bootstrap << "\n";
      if (!out.flush()) return usage_error(absl::InvalidArgumentError("cannot write --bootstrap-file " + o.bootstrap_file));
    }
    std::filesystem::rename(tmp, o.bootstrap_file);
  }
  std::cout << "kafka: embedded broker at " << bootstrap << ", topics";
  for (const auto& t : topics) std::cout << " " << t;
  std::cout << " (" << o.partitions << " partitions each); stop with Ctrl-C" << std::endl;
  while (!interrupted()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!o.bootstrap_file.empty()) std::filesystem::remove(o.bootstrap_file);
  return kExitDone;
}

}  // namespace

void register_broker(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<BrokerOptions>();
  auto* cmd = app.add_subcommand("broker", "Run the embedded Kafka (librdkafka's mock cluster) until signalled");
  cmd->add_option("--topics", o->topics, "Comma-separated topics to create (default: the seed's four topics)");
  cmd->add_option("--partitions", o->partitions, "Partitions per topic")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--brokers", o->brokers, "Mock brokers in the cluster")->capture_default_str()->check(CLI::Range(1, 9));
  cmd->add_option("--bootstrap-file", o->bootstrap_file, "Write the bootstrap address (HOST:PORT) to FILE once ready");
  cmd->callback([o, set_action] { set_action([o] { return run_broker(*o); }); });
}

}  // namespace kingest::cli
