// `kurrent-ingest replay` and `run`: one engine, bounded or not.
//
// `replay` captures every partition's end (its high watermark, or --until-offset) at start and
// exits once the consumer group's committed offsets reach every end, whichever member did the
// work. `run` (= `replay --until never`) ingests until SIGINT or SIGTERM. Either way a signal stops
// fetching, drains what is in flight, commits what is done and exits 130.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "absl/strings/str_split.h"
#include "kafka/group_progress.h"
#include "cli/commands.h"
#include "cli/ingest_session.h"
#include "cli/signals.h"
#include "pipeline/dead_letter.h"
#include "kurrent/discard_sink.h"
#include "pipeline/run_report.h"
#include "pipeline/timed_sink.h"

namespace kingest::cli {
namespace {

struct RunOptions {
  std::string command = "replay";
  std::string until = "end";            // end | never
  std::string from = "committed";       // committed | beginning | TOPIC:PARTITION:OFFSET,...
  std::vector<std::string> until_offsets;  // TOPIC:PARTITION:OFFSET
  std::string until_time;                  // ISO 8601 / RFC 3339
  std::string brokers;
  std::vector<std::string> topics;
  std::string group = "kurrent-ingest";
  std::string dlq_file = "kurrent-ingest-dead-letters.ndjson";
  std::string dlq_topic;
  std::string report;
  std::string sink = "kurrentdb";  // kurrentdb | discard
  bool no_replies = false;
  int64_t progress_s = 10;
  IngestFlags ingest;
  KurrentFlags kurrent;
};

// RFC 3339 (ISO 8601 with a zone), e.g. 2026-11-27T09:00:00Z → ms since the epoch.
absl::StatusOr<int64_t> parse_time_ms(const std::string& text, const std::string& flag) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InvalidArgumentError(flag + " '" + text + "': expected an ISO 8601 time with a zone, e.g. " +
                                      "2026-11-27T09:00:00Z (" + err + ")");
  }
  return absl::ToUnixMillis(t);
}

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
  // The engine keeps streams waiting (and merging) while the sink's append slots are all taken.
  engine_options->max_appends_in_flight = o.kurrent.max_in_flight_appends;
  const bool bounded = o.until != "never";
  // `run` gives a gap up after the reorder window; a bounded replay only at its end (below): the
  // missing version may still be ahead in Kafka.
  engine_options->give_up_expired_gaps = !bounded;
  auto source_options = o.ingest.source_options();
  if (!source_options.ok()) return usage_error(source_options.status());

  // The sink: KurrentDB over gRPC, or (--sink discard) the same BatchAppend encoding, dropped.
  std::unique_ptr<kurrent::KurrentClient> client;
  std::unique_ptr<kurrent::DiscardSink> discard;
  if (o.sink == "discard") {
    discard = std::make_unique<kurrent::DiscardSink>();
  } else {
    bool usage_fault = false;
    auto c = connect_kurrent(o.kurrent, o.ingest, std::nullopt, &usage_fault);
    if (!c.ok()) return usage_fault ? usage_error(c.status()) : fatal_error(c.status());
    client = std::move(*c);
  }
  Sink& inner_sink = client ? static_cast<Sink&>(*client) : static_cast<Sink&>(*discard);
  pipeline::TimedSink sink(inner_sink);
  const std::string endpoint = client ? client->endpoint() : std::string("(discarded)");

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
  // The ends of a bounded run, captured before anything is consumed.
  std::unique_ptr<kafka::GroupProgress> progress;
  kafka::Offsets ends;
  uint64_t total = 0;
  if (bounded || o.from != "committed") {
    auto gp = kafka::GroupProgress::open(o.brokers, o.group, src.properties);
    if (!gp.ok()) return usage_error(gp.status());
    progress = std::move(*gp);
    auto e = progress->end_offsets(topics);
    if (!e.ok()) return fatal_error(e.status());
    ends = std::move(*e);
    for (const auto& text : o.until_offsets) {
      for (auto item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
        std::vector<std::string> parts = absl::StrSplit(item, ':');
        int32_t partition = 0;
        int64_t offset = 0;
        if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &partition) || !absl::SimpleAtoi(parts[2], &offset) ||
            offset < 0) {
          return usage_error(absl::InvalidArgumentError("--until-offset '" + std::string(item) +
                                                        "': expected TOPIC:PARTITION:OFFSET"));
        }
        auto it = ends.find(TopicPartition{parts[0], partition});
        if (it == ends.end()) {
          return usage_error(absl::InvalidArgumentError("--until-offset '" + std::string(item) +
                                                        "': no such partition among --topics"));
        }
        it->second = std::min(it->second, offset);
      }
    }
    if (!o.until_time.empty()) {
      // Judged on message timestamps: the end is the first message after the time.
      auto t = parse_time_ms(o.until_time, "--until-time");
      if (!t.ok()) return usage_error(t.status());
      auto after = progress->offsets_for_time(ends, *t + 1);
      if (!after.ok()) return fatal_error(after.status());
      for (auto& [tp, end] : ends) end = std::min(end, (*after)[tp]);
    }
    // --from: where each partition starts, while its commit is still the one seen now (a
    // partition that moves between members mid-run continues where it was).
    if (o.from != "committed") {
      kafka::Offsets start;
      if (o.from == "beginning") {
        auto low = progress->start_offsets(ends);
        if (!low.ok()) return fatal_error(low.status());
        start = *low;
      } else if (o.from.starts_with("time:")) {
        auto t = parse_time_ms(o.from.substr(5), "--from time:");
        if (!t.ok()) return usage_error(t.status());
        auto all = progress->end_offsets(topics);
        if (!all.ok()) return fatal_error(all.status());
        auto first = progress->offsets_for_time(*all, *t);
        if (!first.ok()) return fatal_error(first.status());
        start = *first;
      } else {
        for (auto item : absl::StrSplit(o.from, ',', absl::SkipEmpty())) {
          std::vector<std::string> parts = absl::StrSplit(item, ':');
          int32_t partition = 0;
          int64_t offset = 0;
          if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &partition) || !absl::SimpleAtoi(parts[2], &offset) ||
              offset < 0 || !ends.contains(TopicPartition{parts[0], partition})) {
            return usage_error(absl::InvalidArgumentError(
                "--from '" + std::string(item) +
                "': use committed, beginning, time:ISO8601, or TOPIC:PARTITION:OFFSET[,...] for partitions of --topics"));
          }
          start[TopicPartition{parts[0], partition}] = offset;
        }
      }
      auto committed = progress->committed(start);
      if (!committed.ok()) return fatal_error(committed.status());
      for (const auto& [tp, offset] : start) src.start_at[tp] = {(*committed)[tp], offset};
      spdlog::info("group {} starts at --from {} ({} partition(s))", o.group, o.from, start.size());
    }
  }
  if (bounded) {
    src.end_at = ends;
    kafka::Offsets from;
    for (const auto& [tp, at] : src.start_at) from[tp] = at.second;
    auto left = progress->remaining(ends, from);
    if (!left.ok()) return fatal_error(left.status());
    total = *left;
  }

  // Answers to NestJS send() requests, through one batched producer on the same cluster.
  std::unique_ptr<kafka::Replier> replier;
  if (!o.no_replies) {
    auto r = kafka::Replier::create(o.brokers, src.properties);
    if (!r.ok()) return usage_error(r.status());
    replier = std::move(*r);
  }
  IngestSession session(src, std::move(*engine_options), sink, &dead_letters, replier.get());
  auto started = Clock::now();
  if (auto s = session.start(); !s.ok()) return fatal_error(s);
  std::cout << o.command << ": " << topics.size() << " topic(s) from " << o.brokers << " (group " << o.group
            << ") into " << endpoint << " (append mode " << sink.append_mode() << ")";
  if (bounded) std::cout << ", " << total << " events to the ends captured now";
  std::cout << "; stop with Ctrl-C" << std::endl;
  auto next_check = Clock::now();
  bool reached = false;
  // Every partition not assigned here has its group commit at its end (other members are done).
  auto others_at_end = [&] {
    const auto mine = session.assignment();
    auto committed = progress->committed(ends);
    if (!committed.ok()) return false;
    for (const auto& [tp, end] : ends) {
      if (end > 0 && !mine.contains(tp) && (*committed)[tp] < end) return false;
    }
    return true;
  };
  RunEnd end = session.run_until(
      [&](const pipeline::EngineStats&) {
        // Checked once this instance is in the group: partitions rewound by --from are committed
        // at their assignment.
        if (!bounded || Clock::now() < next_check || !session.assigned_any()) return false;
        next_check = Clock::now() + std::chrono::milliseconds(500);
        const auto s = session.stats();
        if (s.open_gaps > 0 && session.read_everything() && others_at_end()) {
          // Nothing more can arrive: this member read its partitions to their ends and every other
          // partition's commit is at its end. What is still missing is given up (re-checked first).
          spdlog::info("every partition read to its end: {} stream(s) still miss versions; re-checking them",
                       s.open_gaps);
          session.give_up_gaps();
        }
        auto r = progress->reached(ends);
        if (!r.ok()) {
          spdlog::warn("group progress: {}", r.status().ToString());
          return false;
        }
        reached = *r;
        return reached;
      },
      total, std::chrono::hours(24 * 365 * 100), std::chrono::seconds(o.progress_s));
  if (auto s = session.finish(); !s.ok()) spdlog::warn("{}", s.ToString());
  if (client) client->close();
  if (replier) {
    if (auto s = replier->flush(std::chrono::seconds(10)); !s.ok()) spdlog::warn("{}", s.ToString());
  }
  const double cpu_s = process_cpu_seconds() - session.cpu_s_at_first_batch();

  pipeline::RunReport report;
  report.command = o.command;
  report.sink = sink.name();
  report.append_mode = sink.append_mode();
  report.stats = session.stats();
  report.elapsed_s = std::chrono::duration<double>(Clock::now() - session.first_batch_at().value_or(started)).count();
  report.numbers["wall_s"] = std::chrono::duration<double>(Clock::now() - started).count();
  report.numbers["offset_commits"] = double(session.offset_commits());
  report.numbers["events_lost"] = double(session.messages_lost());
  add_sink_figures(report, sink, session, cpu_s);
  report.text["dead_letter_file"] = o.dlq_file;
  if (client) {
    report.text["kurrent"] = redacted_kurrent_url(o.kurrent);
    const auto cs = client->stats();
    report.numbers["kurrent_appends"] = double(cs.appends);
    report.numbers["kurrent_retries"] = double(cs.retries);
    report.numbers["kurrent_reconnects"] = double(cs.reconnects);
    report.numbers["kurrent_redirects"] = double(cs.redirects);
  }
  if (replier) {
    const auto rs = replier->stats();
    report.numbers["replies_sent"] = double(rs.delivered);
    report.numbers["replies_failed"] = double(rs.failed);
    if (rs.delivered > 0) {
      report.numbers["reply_latency_p50_ms"] = rs.latency_p50_ms;
      report.numbers["reply_latency_p99_ms"] = rs.latency_p99_ms;
    }
  }

  int code = pipeline::kExitInterrupted;
  if (end == RunEnd::kFatal) {
    report.error = session.fatal().ToString();
    code = pipeline::kExitFatal;
  } else if (end == RunEnd::kReached && reached) {
    code = report.stats.dead_lettered > 0 ? pipeline::kExitDeadLetters : pipeline::kExitDone;
  }
  report.outcome = code == pipeline::kExitFatal         ? "fatal"
                   : code == pipeline::kExitDone        ? "done"
                   : code == pipeline::kExitDeadLetters ? "dead-letters"
                                                        : "interrupted";
  const auto& s = report.stats;
  std::cout << "events: " << s.events_read << " read, " << s.events_appended << " appended, " << s.duplicates
            << " duplicates, " << s.dead_lettered << " dead-lettered (" << o.dlq_file << ")\n";
  if (!report.error.empty()) std::cout << "error: " << report.error << "\n";
  if (!o.report.empty()) {
    if (auto st = pipeline::write_report(report, o.report); !st.ok()) std::cerr << "error: " << st.message() << "\n";
  }
  return code;
}

void register_ingest_command(CLI::App& app, ActionSetter set_action, const std::string& name) {
  auto o = std::make_shared<RunOptions>();
  o->command = name;
  CLI::App* cmd = nullptr;
  if (name == "run") {
    o->until = "never";
    cmd = app.add_subcommand("run", "Ingest continuously from Kafka into KurrentDB until interrupted (replay --until never)");
  } else {
    cmd = app.add_subcommand("replay",
                             "Ingest from Kafka into KurrentDB up to the partitions' ends at start, then exit once the "
                             "consumer group's commits reach them");
    cmd->add_option("--until", o->until, "end: the high watermarks captured at start; never: keep going (= run)")
        ->capture_default_str()
        ->check(CLI::IsMember({"end", "never"}));
    cmd->add_option("--from", o->from,
                    "Where the group starts: committed (its committed offsets, else the beginning), beginning, "
                    "time:ISO8601 (the first message at or after it), or TOPIC:PARTITION:OFFSET[,...]")
        ->capture_default_str();
    cmd->add_option("--until-time", o->until_time,
                    "End each partition at its last message with a timestamp at or before this ISO 8601 time, e.g. "
                    "2026-11-27T09:00:00Z");
    cmd->add_option("--until-offset", o->until_offsets,
                    "End these partitions earlier: TOPIC:PARTITION:OFFSET[,...] (the offset is excluded)");
  }
  cmd->add_option("--brokers", o->brokers, "Kafka bootstrap servers HOST:PORT[,HOST:PORT...]")->required();
  cmd->add_option("--topics", o->topics, "Topics to consume (comma-separated or repeated)")->required();
  cmd->add_option("--group", o->group, "Kafka consumer group (offsets are committed there)")->capture_default_str();
  cmd->add_option("--dlq-file", o->dlq_file, "Dead-letter NDJSON file (appended to)")->capture_default_str();
  cmd->add_option("--dlq-topic", o->dlq_topic, "Also write dead letters to this Kafka topic");
  cmd->add_option("--report", o->report, "Write the JSON run report to FILE when the run ends");
  cmd->add_option("--progress-s", o->progress_s, "Seconds between progress lines")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600}));
  cmd->add_option("--sink", o->sink,
                  "kurrentdb: write through --kurrent; discard: decode, group and encode the appends, then drop "
                  "them (the pipeline's own cost; offsets are still committed, so use a scratch --group)")
      ->capture_default_str()
      ->check(CLI::IsMember({"kurrentdb", "discard"}));
  cmd->add_flag("--no-replies", o->no_replies,
                "Do not answer request/reply messages (NestJS ClientKafka send(): headers kafka_replyTopic and "
                "kafka_correlationId)");
  add_ingest_flags(*cmd, o->ingest);
  add_kurrent_flags(*cmd, o->kurrent);
  cmd->callback([o, set_action] { set_action([o] { return run_run(*o); }); });
}

}  // namespace

void register_run(CLI::App& app, ActionSetter set_action) {
  register_ingest_command(app, set_action, "replay");
  register_ingest_command(app, set_action, "run");
}

}  // namespace kingest::cli
