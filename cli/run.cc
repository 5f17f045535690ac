// `kurrent-ingest run`: ingests continuously from a Kafka cluster into KurrentDB until SIGINT or
// SIGTERM, then stops fetching, drains what is in flight, commits what is done and exits 130.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>

#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/ingest_session.h"
#include "cli/signals.h"
#include "pipeline/dead_letter.h"
#include "pipeline/run_report.h"

namespace kingest::cli {
namespace {

struct RunOptions {
  std::string brokers;
  std::vector<std::string> topics;
  std::string group = "kurrent-ingest";
  std::string dlq_file = "kurrent-ingest-dead-letters.ndjson";
  std::string dlq_topic;
  std::string report;
  int64_t progress_s = 10;
  IngestFlags ingest;
  KurrentFlags kurrent;
};

int run_run(const RunOptions& o) {
  using Clock = std::chrono::steady_clock;
  install_interrupt_handlers();
  std::vector<std::string> topics;
  for (const auto& t : o.topics) {
    for (auto part : absl::StrSplit(t, ',', absl::SkipEmpty())) topics.emplace_back(part);
  }
  if (topics.empty()) return usage_error(absl::InvalidArgumentError("--topics: give at least one topic"));
  auto engine_options = o.ingest.engine_options();
  if (!engine_options.ok()) return usage_error(engine_options.status());
  auto source_options = o.ingest.source_options();
  if (!source_options.ok()) return usage_error(source_options.status());

  bool usage_fault = false;
  auto client = connect_kurrent(o.kurrent, o.ingest, std::nullopt, &usage_fault);
  if (!client.ok()) return usage_fault ? usage_error(client.status()) : fatal_error(client.status());

  auto dlq = pipeline::NdjsonDeadLetterFile::open(o.dlq_file);
  if (!dlq.ok()) return usage_error(dlq.status());
  std::vector<pipeline::DeadLetterSink*> dead_letter_sinks{dlq->get()};
  std::unique_ptr<pipeline::KafkaDeadLetterTopic> dlq_topic;
  if (!o.dlq_topic.empty()) {
    auto t = pipeline::KafkaDeadLetterTopic::open(o.brokers, o.dlq_topic);
    if (!t.ok()) return usage_error(t.status());
    dlq_topic = std::move(*t);
    dead_letter_sinks.push_back(dlq_topic.get());
  }
  pipeline::TeeDeadLetters dead_letters(dead_letter_sinks);

  kafka::SourceOptions src = std::move(*source_options);
  src.brokers = o.brokers;
  src.group_id = o.group;
  src.topics = topics;
  IngestSession session(src, std::move(*engine_options), **client, &dead_letters);
  auto started = Clock::now();
  if (auto s = session.start(); !s.ok()) return fatal_error(s);
  std::cout << "run: " << topics.size() << " topic(s) from " << o.brokers << " (group " << o.group << ") into "
            << (*client)->endpoint() << " (append mode " << (*client)->append_mode() << "); stop with Ctrl-C"
            << std::endl;
  RunEnd end = session.run_until([](const pipeline::EngineStats&) { return false; }, 0,
                                 std::chrono::hours(24 * 365 * 100), std::chrono::seconds(o.progress_s));
  if (auto s = session.finish(); !s.ok()) spdlog::warn("{}", s.ToString());
  (*client)->close();

  pipeline::RunReport report;
  report.command = "run";
  report.sink = (*client)->name();
  report.append_mode = (*client)->append_mode();
  report.stats = session.stats();
  report.elapsed_s = std::chrono::duration<double>(Clock::now() - session.first_batch_at().value_or(started)).count();
  report.numbers["wall_s"] = std::chrono::duration<double>(Clock::now() - started).count();
  report.numbers["offset_commits"] = double(session.offset_commits());
  report.text["kurrent"] = (*client)->endpoint();
  report.text["dead_letter_file"] = o.dlq_file;
  const auto cs = (*client)->stats();
  report.numbers["kurrent_retries"] = double(cs.retries);
  report.numbers["kurrent_redirects"] = double(cs.redirects);

  int code = pipeline::kExitInterrupted;
  if (end == RunEnd::kFatal) {
    report.error = session.fatal().ToString();
    code = pipeline::kExitFatal;
  }
  report.outcome = code == pipeline::kExitFatal ? "fatal" : "interrupted";
  const auto& s = report.stats;
  std::cout << "events: " << s.events_read << " read, " << s.events_appended << " appended, " << s.duplicates
            << " duplicates, " << s.dead_lettered << " dead-lettered (" << o.dlq_file << ")\n";
  if (!report.error.empty()) std::cout << "error: " << report.error << "\n";
  if (!o.report.empty()) {
    if (auto st = pipeline::write_report(report, o.report); !st.ok()) std::cerr << "error: " << st.message() << "\n";
  }
  return code;
}

}  // namespace

void register_run(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<RunOptions>();
  auto* cmd = app.add_subcommand("run", "Ingest continuously from Kafka into KurrentDB until interrupted");
  cmd->add_option("--brokers", o->brokers, "Kafka bootstrap servers HOST:PORT[,HOST:PORT...]")->required();
  cmd->add_option("--topics", o->topics, "Topics to consume (comma-separated or repeated)")->required();
  cmd->add_option("--group", o->group, "Kafka consumer group (offsets are committed there)")->capture_default_str();
  cmd->add_option("--dlq-file", o->dlq_file, "Dead-letter NDJSON file (appended to)")->capture_default_str();
  cmd->add_option("--dlq-topic", o->dlq_topic, "Also write dead letters to this Kafka topic");
  cmd->add_option("--report", o->report, "Write the JSON run report to FILE when the run ends");
  cmd->add_option("--progress-s", o->progress_s, "Seconds between progress lines")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600}));
  add_ingest_flags(*cmd, o->ingest);
  add_kurrent_flags(*cmd, o->kurrent);
  cmd->callback([o, set_action] { set_action([o] { return run_run(*o); }); });
}

}  // namespace kingest::cli
