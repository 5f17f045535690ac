// `kurrent-ingest audit`: re-reads a bounded range of the topics (partitions assigned directly: no
// group membership, no commits), decodes every message with the ingest's codecs and rules, and
// checks each against the store or the dead-letter file. Exit 0 when everything is accounted for,
// 4 when not (with the first examples of each finding).
#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <thread>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "audit/audit.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/inspect_output.h"
#include "kafka/group_progress.h"
#include "pipeline/run_report.h"

namespace kingest::cli {
namespace {

struct AuditOptions {
  std::string brokers;
  std::vector<std::string> topics;
  std::string group;
  std::string from = "beginning";
  std::vector<std::string> until_offsets;
  std::string dlq_file;
  std::string report;
  size_t examples = 10;
  size_t read_threads = 32;
  size_t page_size = 4096;
  std::string store_read = "auto";
  KurrentFlags kurrent;
  IngestFlags ingest;
};

// TOPIC:PARTITION:OFFSET[,...] into `out` (only partitions of `known`); the error names the flag.
absl::Status parse_offsets(const std::string& text, const std::string& flag, const kafka::Offsets& known,
                           kafka::Offsets& out) {
  for (auto item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(item, ':');
    int32_t partition = 0;
    int64_t offset = 0;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &partition) || !absl::SimpleAtoi(parts[2], &offset) ||
        offset < 0) {
      return absl::InvalidArgumentError(flag + " '" + std::string(item) + "': expected TOPIC:PARTITION:OFFSET");
    }
    TopicPartition tp{parts[0], partition};
    if (!known.contains(tp)) {
      return absl::InvalidArgumentError(flag + " '" + std::string(item) + "': no such partition among --topics");
    }
    out[tp] = offset;
  }
  return absl::OkStatus();
}

int run_audit(const AuditOptions& o) {
  log_to_stderr();
  using Clock = std::chrono::steady_clock;
  auto started = Clock::now();
  std::vector<std::string> topics;
  for (const auto& t : o.topics) {
    for (auto part : absl::StrSplit(t, ',', absl::SkipEmpty())) topics.emplace_back(part);
  }
  if (topics.empty()) return usage_error(absl::InvalidArgumentError("--topics: name at least one topic"));
  auto engine = o.ingest.engine_options();
  if (!engine.ok()) return usage_error(engine.status());
  auto props = parse_properties(o.ingest.kafka_properties);
  if (!props.ok()) return usage_error(props.status());
  auto store_read = audit::parse_store_read(o.store_read);
  if (!store_read.ok()) return usage_error(store_read.status());
  audit::Rules rules{.stream_names = engine->stream_names,
                     .version_base = engine->version_base,
                     .topic_codecs = engine->topic_codecs,
                     .allow_system_streams = engine->allow_system_streams};

  std::set<audit::SourcePosition> dead_letters;
  if (!o.dlq_file.empty()) {
    auto d = audit::read_dead_letter_file(o.dlq_file);
    if (!d.ok()) return usage_error(d.status());
    dead_letters = std::move(*d);
  }

  // The range: the high watermarks now (or the group's commits, or --until-offset), from the
  // beginning or --from.
  auto gp = kafka::GroupProgress::open(o.brokers, o.group.empty() ? "kurrent-ingest-audit" : o.group, *props);
  if (!gp.ok()) return usage_error(gp.status());
  auto ends = (*gp)->end_offsets(topics);
  if (!ends.ok()) return fatal_error(ends.status());
  if (!o.group.empty()) {
    auto committed = (*gp)->committed(*ends);
    if (!committed.ok()) return fatal_error(committed.status());
    for (auto& [tp, end] : *ends) end = std::max<int64_t>(0, std::min(end, (*committed)[tp]));
  }
  for (const auto& text : o.until_offsets) {
    kafka::Offsets until;
    if (auto s = parse_offsets(text, "--until-offset", *ends, until); !s.ok()) return usage_error(s);
    for (const auto& [tp, offset] : until) (*ends)[tp] = std::min((*ends)[tp], offset);
  }
  kafka::Offsets starts;
  if (o.from != "beginning") {
    if (auto s = parse_offsets(o.from, "--from", *ends, starts); !s.ok()) {
      return usage_error(absl::InvalidArgumentError(std::string(s.message()) + " (or beginning)"));
    }
  }
  uint64_t planned = 0;
  {
    auto low = (*gp)->start_offsets(*ends);
    if (!low.ok()) return fatal_error(low.status());
    for (const auto& [tp, end] : *ends) {
      int64_t from = std::max((*low)[tp], starts.contains(tp) ? starts[tp] : 0);
      if (end > from) planned += uint64_t(end - from);
    }
  }

  bool usage_fault = false;
  auto client = connect_kurrent(o.kurrent, o.ingest, std::nullopt, &usage_fault);
  if (!client.ok()) return usage_fault ? usage_error(client.status()) : fatal_error(client.status());
  std::cerr << "audit: " << planned << " message(s) of " << topics.size() << " topic(s) from " << o.brokers
            << " against " << (*client)->endpoint() << (o.dlq_file.empty() ? "" : ", dead letters from " + o.dlq_file)
            << std::endl;

  const audit::CheckOptions check{.read_threads = o.read_threads,
                                  .page_size = o.page_size,
                                  .examples = o.examples,
                                  .store_read = *store_read,
                                  .planned_messages = planned};
  audit::Auditor auditor(rules);
  auditor.add_dead_letters(dead_letters);
  // The store is read while Kafka is still being read: the audit takes about as long as the longer
  // of the two, not their sum.
  if (*store_read == audit::StoreRead::kStreams) {
    auditor.prefetch_from(**client, check);
  } else {
    kurrent::KurrentClient* c = client->get();
    auditor.read_all_from([c](uint64_t from, uint64_t count) { return c->read_all(from, count); }, check);
  }
  // Kafka is read on its own thread while this one decodes the previous batches (a few batches
  // queued at most, to bound memory).
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<SourceMessage>> queue;
  bool reading = true;
  absl::Status read;
  std::thread reader([&] {
    auto s = audit::read_bounded(o.brokers, *props, starts, *ends, [&](std::vector<SourceMessage> batch) {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return queue.size() < 4; });
      queue.push_back(std::move(batch));
      cv.notify_all();
    });
    std::lock_guard lock(mu);
    read = s;
    reading = false;
    cv.notify_all();
  });
  for (;;) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return !queue.empty() || !reading; });
    if (queue.empty()) break;
    auto batch = std::move(queue.front());
    queue.pop_front();
    cv.notify_all();
    lock.unlock();
    auditor.add(std::move(batch));
  }
  reader.join();
  if (!read.ok()) return fatal_error(read);
  auto kafka_done = Clock::now();
  auto report = auditor.check(**client, check);
  (*client)->close();
  if (!report.ok()) return fatal_error(report.status());
  report->kafka_s = std::chrono::duration<double>(kafka_done - started).count();
  report->seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::cout << report->to_text() << std::flush;
  if (!o.report.empty()) {
    std::ofstream out(o.report, std::ios::trunc);
    out << report->to_json() << "\n";
    if (!out.flush()) return usage_error(absl::InvalidArgumentError("--report: cannot write " + o.report));
  }
  return report->accounted() ? kExitDone : kExitFatal;
}

}  // namespace

void register_audit(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<AuditOptions>();
  auto* cmd = app.add_subcommand(
      "audit",
      "Check a finished backfill: every message of the topics is in KurrentDB at its revision with the same id, type "
      "and data, or in the dead-letter file (exit 0), else exit 4 with examples");
  cmd->add_option("--brokers", o->brokers, "Kafka bootstrap servers HOST:PORT[,HOST:PORT...]")->required();
  cmd->add_option("--topics", o->topics, "Topics the ingest read (comma-separated or repeated)")->required();
  cmd->add_option("--group", o->group,
                  "Audit up to this consumer group's committed offsets (what it finished) instead of the high "
                  "watermarks; the group is only read, never joined");
  cmd->add_option("--from", o->from, "beginning, or TOPIC:PARTITION:OFFSET[,...] where those partitions start")
      ->capture_default_str();
  cmd->add_option("--until-offset", o->until_offsets,
                  "End these partitions earlier: TOPIC:PARTITION:OFFSET[,...] (the offset is excluded)");
  cmd->add_option("--dlq-file", o->dlq_file, "The ingest's dead-letter NDJSON file: the messages it accounts for");
  cmd->add_option("--report", o->report, "Write the counts and examples as JSON to FILE");
  cmd->add_option("--examples", o->examples, "Examples kept per finding")->capture_default_str();
  cmd->add_option("--read-threads", o->read_threads, "Streams read from the store at once")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1024}));
  cmd->add_option("--store-read", o->store_read,
                  "How the store is read: streams (each audited stream on its own), all ($all once, in large "
                  "pages, keeping the audited streams' events) or auto ($all unless the store holds much more than "
                  "the audited streams)")
      ->capture_default_str();
  cmd->add_option("--page-size", o->page_size, "Events per stream read")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1000000}));
  cmd->add_option("--kurrent", o->kurrent.url,
                  "KurrentDB connection string (default: $KURRENT_CONNECTION_STRING, then "
                  "$EVENTSTORE_CONNECTION_STRING)");
  cmd->add_option("--version-base", o->ingest.version_base, "As given to the ingest: 1, 0 or none")->capture_default_str();
  cmd->add_option("--stream-template", o->ingest.stream_template, "As given to the ingest")->capture_default_str();
  cmd->add_option("--codec", o->ingest.topic_codecs, "As given to the ingest: TOPIC=json|protobuf|flatbuffers");
  cmd->add_option("-X,--kafka-property", o->ingest.kafka_properties, "librdkafka property KEY=VALUE (repeatable)");
  cmd->add_flag("--allow-system-streams", o->ingest.allow_system_streams,
                "The ingest wrote streams whose names start with '$' (else they must be dead letters)");
  cmd->callback([o, set_action] { set_action([o] { return run_audit(*o); }); });
}

}  // namespace kingest::cli
