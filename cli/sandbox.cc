// `kurrent-ingest sandbox`: the seed system's local stack in one process, no Docker: the embedded
// Kafka reachable at 127.0.0.1:9092 with the seed's topics (and their `.reply` topics), the
// KurrentDB-compatible store on 127.0.0.1:2113 (a SQLite file under --data-dir, kept between runs),
// and a continuous ingest with replies between them, until Ctrl-C.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/ingest_metrics.h"
#include "cli/ingest_session.h"
#include "cli/signals.h"
#include "kafka/embedded_broker.h"
#include "kafka/port_forward.h"
#include "kafka/replier.h"
#include "pipeline/dead_letter.h"
#include "pipeline/run_report.h"
#include "metrics/output.h"
#include "pipeline/timed_sink.h"
#include "server/kurrent_server.h"
#include "store/event_store.h"
#include "store/store_sink.h"
#include "web/stream_browser.h"

namespace kingest::cli {
namespace {

struct SandboxOptions {
  std::string kafka_listen = "127.0.0.1:9092";
  std::string kurrent_listen = "127.0.0.1:2113";
  std::string data_dir = "kurrent-ingest-sandbox";
  std::string topics;
  int partitions = 3;
  std::string group = "kurrent-ingest-sandbox";
  bool no_replies = false;
  std::string ready_file;
  std::string http;  // the stream browser's HOST:PORT (empty: none)
  MetricsFlags metrics;
  IngestFlags ingest;
};

std::vector<std::string> split_topics(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int run_sandbox(const SandboxOptions& o) {
  install_interrupt_handlers();
  const auto topics = o.topics.empty() ? kafka::kDefaultTopics : split_topics(o.topics);
  if (topics.empty()) return usage_error(absl::InvalidArgumentError("--topics: give at least one topic name"));
  auto engine_options = o.ingest.engine_options();
  if (!engine_options.ok()) return usage_error(engine_options.status());
  auto source_options = o.ingest.source_options();
  if (!source_options.ok()) return usage_error(source_options.status());
  std::error_code ec;
  std::filesystem::create_directories(o.data_dir, ec);
  if (ec) return usage_error(absl::InvalidArgumentError("--data-dir " + o.data_dir + ": " + ec.message()));
  const std::string db_path = (std::filesystem::path(o.data_dir) / "events.db").string();
  const std::string dlq_path = (std::filesystem::path(o.data_dir) / "dead-letters.ndjson").string();

  // Kafka: the mock brokers bind ephemeral ports; the forwarder gives the fixed bootstrap address.
  auto broker = kafka::EmbeddedBroker::start();
  if (!broker.ok()) return fatal_error(broker.status());
  for (const auto& t : topics) {
    // `<topic>.reply` is where NestJS ClientKafka send() expects its answers.
    for (const auto& name : {t, t + ".reply"}) {
      if (auto s = (*broker)->create_topic(name, o.partitions); !s.ok()) return fatal_error(s);
    }
  }
  auto forward = kafka::PortForward::start(o.kafka_listen, (*broker)->bootstrap());
  if (!forward.ok()) return usage_error(absl::InvalidArgumentError("--kafka-listen: " + std::string(forward.status().message())));

  // The store, behind its KurrentDB-compatible server.
  auto store = store::EventStore::open({.path = db_path});
  if (!store.ok()) return fatal_error(store.status());
  auto server = server::KurrentServer::start(**store, {.listen = o.kurrent_listen});
  if (!server.ok()) {
    return usage_error(absl::InvalidArgumentError("--kurrent-listen " + o.kurrent_listen + ": " +
                                                  std::string(server.status().message()) +
                                                  " (another KurrentDB running? pick another port)"));
  }
  const std::string kurrent_address = (*server)->address();

  // The ingest writes to the same store in-process; clients read it over gRPC.
  store::StoreSink store_sink(**store);
  pipeline::TimedSink sink(store_sink);  // timed for the metrics' append histogram
  auto dlq = pipeline::NdjsonDeadLetterFile::open(dlq_path);
  if (!dlq.ok()) return usage_error(dlq.status());
  CountingDeadLetters dead_letters(**dlq);
  std::unique_ptr<web::StreamBrowser> browser;
  if (!o.http.empty()) {
    auto b = web::StreamBrowser::start(**store, o.http, {.db_path = db_path});
    if (!b.ok()) return usage_error(b.status());
    browser = std::move(*b);
  }
  std::unique_ptr<kafka::Replier> replier;
  if (!o.no_replies) {
    auto r = kafka::Replier::create((*broker)->bootstrap());
    if (!r.ok()) return fatal_error(r.status());
    replier = std::move(*r);
  }
  kafka::SourceOptions src = std::move(*source_options);
  // The embedded Kafka answers a fetch only when its wait ends, not when data arrives: a short
  // wait keeps a send()'s round trip short (-X fetch.wait.max.ms=… overrides it).
  src.properties.try_emplace("fetch.wait.max.ms", "10");
  src.brokers = (*broker)->bootstrap();
  src.group_id = o.group;
  src.topics = topics;
  IngestSession session(src, std::move(*engine_options), sink, &dead_letters, replier.get());
  metrics::Registry registry;
  metrics::add_process_metrics(registry);
  add_ingest_metrics(registry, {.command = "sandbox",
                                .append_mode = sink.append_mode(),
                                .session = &session,
                                .sink = &sink,
                                .dead_letters = &dead_letters});
  auto metrics_out = start_metrics(registry, o.metrics, std::chrono::seconds(10));
  if (!metrics_out.ok()) return usage_error(metrics_out.status());
  if (auto s = session.start(); !s.ok()) return fatal_error(s);

  if (!o.ready_file.empty()) {
    // Written whole, then renamed: a reader never sees half of it.
    const std::string tmp = o.ready_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << "kafka " << (*forward)->address() << "\nkurrent " << kurrent_address << "\n";
      if (!out.flush()) return usage_error(absl::InvalidArgumentError("cannot write --ready-file " + o.ready_file));
    }
    std::filesystem::rename(tmp, o.ready_file);
  }
  std::cout << "sandbox: Kafka at " << (*forward)->address() << " (topics";
  for (const auto& t : topics) std::cout << " " << t;
  std::cout << ", " << o.partitions << " partitions each, replies on <topic>.reply)\n"
            << "sandbox: KurrentDB at " << kurrent_address << ": EVENTSTORE_CONNECTION_STRING=esdb://" << kurrent_address
            << "?tls=false (data in " << db_path << ")\n"
            << "sandbox: ingesting continuously" << (replier ? ", answering send() requests" : ", no replies")
            << "; dead letters in " << dlq_path << "; stop with Ctrl-C" << std::endl;
  if (browser) std::cout << "sandbox: stream browser at " << browser->url() << std::endl;

  const RunEnd end = session.run_until([](const pipeline::EngineStats&) { return false; },
                                       std::chrono::hours(24 * 365 * 100),
                                       ProgressOptions{.mode = ProgressMode::kPlain, .every = std::chrono::seconds(30)});
  if (auto s = session.finish(); !s.ok()) spdlog::warn("{}", s.ToString());
  const auto st = session.stats();
  std::cout << "sandbox: " << st.events_read << " read, " << st.events_appended << " appended, " << st.duplicates
            << " duplicates, " << st.dead_lettered << " dead-lettered";
  if (replier) std::cout << ", " << replier->stats().delivered << " replies";
  std::cout << std::endl;
  replier.reset();
  if (*metrics_out) {
    if (auto st = (*metrics_out)->stop(); !st.ok()) std::cerr << "error: " << st.message() << "\n";
  }
  browser.reset();
  (*forward)->stop();
  (*server)->shutdown();
  (*store)->close();
  if (!o.ready_file.empty()) std::filesystem::remove(o.ready_file);
  if (end == RunEnd::kFatal) {
    std::cerr << "error: " << session.fatal().message() << "\n";
    return kExitFatal;
  }
  return kExitInterrupted;
}

}  // namespace

void register_sandbox(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<SandboxOptions>();
  auto* cmd = app.add_subcommand(
      "sandbox",
      "The seed's local stack in one process: embedded Kafka, the KurrentDB-compatible store and a continuous ingest "
      "with replies between them, until Ctrl-C");
  cmd->add_option("--kafka-listen", o->kafka_listen, "Kafka bootstrap address HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  cmd->add_option("--kurrent-listen", o->kurrent_listen, "KurrentDB gRPC address HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  cmd->add_option("--data-dir", o->data_dir, "Directory of the store's file (events.db, kept between runs) and dead letters")
      ->capture_default_str();
  cmd->add_option("--topics", o->topics, "Comma-separated topics (default: the seed's four); each gets TOPIC.reply too");
  cmd->add_option("--partitions", o->partitions, "Partitions per topic")->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--group", o->group, "Consumer group of the ingest")->capture_default_str();
  cmd->add_flag("--no-replies", o->no_replies, "Do not answer send() requests");
  cmd->add_option("--ready-file", o->ready_file,
                  "Write 'kafka HOST:PORT' and 'kurrent HOST:PORT' lines to FILE once everything listens");
  cmd->add_option("--http", o->http,
                  "Serve the stream browser on HOST:PORT, or PORT on 127.0.0.1 (port 0 picks a free one)");
  add_metrics_flags(*cmd, o->metrics, "10 s");
  add_ingest_flags(*cmd, o->ingest);
  cmd->callback([o, set_action] { set_action([o] { return run_sandbox(*o); }); });
}

}  // namespace kingest::cli
