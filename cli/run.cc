// `kurrent-ingest replay` and `run`: one engine, bounded or not.
//
// `replay` captures every partition's end (its high watermark, or --until-offset) at start and
// exits once the consumer group's committed offsets reach every end, whichever member did the
// work. `run` (= `replay --until never`) ingests until SIGINT or SIGTERM. Either way a signal stops
// fetching, drains what is in flight, commits what is done and exits 130.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "kafka/group_progress.h"
#include "cli/commands.h"
#include "cli/ingest_metrics.h"
#include "cli/ingest_session.h"
#include "cli/lag.h"
#include "cli/progress.h"
#include "metrics/output.h"
#include "cli/signals.h"
#include "cli/sinks.h"
#include "pipeline/dead_letter.h"
#include "cli/exit_codes.h"
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
  std::string progress;
  bool assign = false;
  MetricsFlags metrics;
  int64_t kafka_timeout_s = 60;
  bool allow_missing_topics = false;
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

// The report is written at the end of the run: a path that cannot be written is found before it.
absl::Status check_report_path(const std::string& path) {
  if (std::filesystem::is_directory(path)) {
    return absl::InvalidArgumentError("--report " + path + ": is a directory; give a file name");
  }
  // write_report writes PATH.tmp and renames it: both need the directory to be writable.
  const std::string tmp = path + ".tmp";
  const bool existed = std::filesystem::exists(tmp);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError("--report " + path + ": cannot write there (" + std::strerror(errno) +
                                      "); give a writable path");
  }
  ::close(fd);
  if (!existed) std::filesystem::remove(tmp);
  return absl::OkStatus();
}

// After a signal or a fatal error, stopping (draining in-flight appends, committing, leaving the
// group) may wait on a store or brokers that do not answer. Past this grace the process exits
// anyway: what was not done was not committed either, so the next run reads it again.
constexpr auto kStopGrace = std::chrono::seconds(3);

int run_run(const RunOptions& o) {
  using Clock = std::chrono::steady_clock;
  // The backstop when the owner's thread itself is held up (a blocking call to a store or broker
  // that does not answer): the stop grace below covers the usual case and writes the report.
  install_interrupt_handlers(kStopGrace + std::chrono::seconds(1));
  std::vector<std::string> topics;
  for (const auto& t : o.topics) {
    for (auto part : absl::StrSplit(t, ',', absl::SkipEmpty())) topics.emplace_back(part);
  }
  if (topics.empty()) return usage_error(absl::InvalidArgumentError("--topics: give at least one topic"));
  if (o.assign && o.until == "never") {
    return usage_error(absl::InvalidArgumentError(
        "--assign is for a bounded run (--until end): an unbounded run should join --group so that other "
        "instances can share and take over its partitions"));
  }
  if (o.group.empty()) return usage_error(absl::InvalidArgumentError("--group: give a consumer group name"));
  if (!o.report.empty()) {
    if (auto s = check_report_path(o.report); !s.ok()) return usage_error(s);
  }
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
  auto progress_shown = progress_mode(o.progress);
  if (!progress_shown.ok()) return usage_error(progress_shown.status());
  if (!o.metrics.listen.empty()) {
    if (auto hp = metrics::parse_listen(o.metrics.listen); !hp.ok()) return usage_error(hp.status());
  }

  // The sink: KurrentDB over gRPC, or (--sink discard) the same BatchAppend encoding, dropped.
  bool usage_fault = false;
  auto opened_sink = open_sink(o.sink, o.kurrent, o.ingest, std::nullopt, nullptr, &usage_fault);
  if (!opened_sink.ok()) return usage_fault ? usage_error(opened_sink.status()) : fatal_error(opened_sink.status());
  kurrent::KurrentClient* client = opened_sink->client;
  pipeline::TimedSink sink(*opened_sink->sink);
  const std::string endpoint = client ? client->endpoint() : std::string("(discarded)");

  auto dead_letter_sinks = DeadLetterSinks::open(o.dlq_file, o.brokers, o.dlq_topic);
  if (!dead_letter_sinks.ok()) return usage_error(dead_letter_sinks.status());
  CountingDeadLetters dead_letters((*dead_letter_sinks)->sink());

  kafka::SourceOptions src = std::move(*source_options);
  src.brokers = o.brokers;
  src.group_id = o.group;
  // The brokers answer (or the run stops within --kafka-timeout-s), and every topic exists: a
  // misspelt topic would otherwise read nothing and end "done".
  const auto kafka_timeout = std::chrono::seconds(o.kafka_timeout_s);
  auto gp = kafka::GroupProgress::open(o.brokers, o.group, src.properties);
  if (!gp.ok()) return usage_error(gp.status());
  std::unique_ptr<kafka::GroupProgress> progress = std::move(*gp);
  progress->set_timeout(std::min<std::chrono::milliseconds>(kafka_timeout, std::chrono::seconds(10)));
  {
    auto missing = progress->missing_topics(topics);
    if (!missing.ok()) {
      return fatal_error(absl::UnavailableError("Kafka at " + o.brokers + " did not answer: " +
                                                std::string(missing.status().message()) +
                                                "; is --brokers right and the cluster up?"));
    }
    if (!missing->empty()) {
      const std::string names = absl::StrJoin(*missing, ", ");
      if (!o.allow_missing_topics) {
        return fatal_error(absl::NotFoundError("topic(s) " + names + " do not exist on " + o.brokers +
                                               "; check --topics, or pass --allow-missing-topics to read the others"));
      }
      spdlog::warn("topic(s) {} do not exist on {}; this run reads the others (--allow-missing-topics)", names,
                   o.brokers);
      std::erase_if(topics, [&](const std::string& t) {
        return std::find(missing->begin(), missing->end(), t) != missing->end();
      });
      if (topics.empty() && o.until == "never") {
        return fatal_error(absl::NotFoundError("none of --topics exists on " + o.brokers + ": nothing to run on"));
      }
    }
  }
  src.topics = topics;
  src.assign_all = o.assign;
  // The ends of a bounded run, captured before anything is consumed.
  kafka::Offsets ends;
  uint64_t total = 0;
  if (topics.empty()) {
    // Every topic is missing and that is allowed: a bounded run has nothing to do.
  } else if (bounded || o.from != "committed") {
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

  if (topics.empty()) {
    std::cout << o.command << ": none of --topics exists; nothing to read" << std::endl;
    return kExitDone;
  }
  // Consumer lag, measured beside the run (its own Kafka handle; a watermark request per partition)
  // every --progress-s, at most 5 s apart.
  auto lag = LagWatcher::start(o.brokers, o.group, src.properties, topics,
                               std::chrono::seconds(std::clamp<int64_t>(o.progress_s, 1, 5)));
  if (!lag.ok()) return usage_error(lag.status());

  // Answers to NestJS send() requests, through one batched producer on the same cluster.
  std::unique_ptr<kafka::Replier> replier;
  if (!o.no_replies) {
    auto r = kafka::Replier::create(o.brokers, src.properties);
    if (!r.ok()) return usage_error(r.status());
    replier = std::move(*r);
  }
  IngestSession session(src, std::move(*engine_options), sink, &dead_letters, replier.get());
  metrics::Registry registry;
  metrics::add_process_metrics(registry);
  add_ingest_metrics(registry, {.command = o.command,
                                .append_mode = sink.append_mode(),
                                .session = &session,
                                .sink = &sink,
                                .client = client,
                                .dead_letters = &dead_letters,
                                .lag = lag->get(),
                                .catch_up = !bounded});
  auto metrics_out = start_metrics(registry, o.metrics, std::chrono::seconds(o.progress_s));
  if (!metrics_out.ok()) return usage_error(metrics_out.status());
  auto started = Clock::now();
  if (auto s = session.start(); !s.ok()) {
    return absl::IsFailedPrecondition(s) ? usage_error(s) : fatal_error(s);
  }
  std::cout << o.command << ": " << topics.size() << " topic(s) from " << o.brokers << " (group " << o.group
            << ") into " << endpoint << " (append mode " << sink.append_mode() << ")";
  if (bounded) std::cout << ", " << total << " events to the ends captured now";
  std::cout << "; stop with Ctrl-C" << std::endl;
  auto next_check = Clock::now();
  auto last_contact = Clock::now();
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
  absl::Status kafka_lost;
  // Short calls while running, so that a signal is seen within a second or so even when no broker
  // answers.
  progress->set_timeout(std::chrono::seconds(1));
  RunEnd end = session.run_until(
      [&](const pipeline::EngineStats&) {
        if (Clock::now() < next_check) return false;
        next_check = Clock::now() + std::chrono::milliseconds(500);
        // A broker round trip every check: the run stops once none answered for --kafka-timeout-s.
        absl::Status contact = progress->ping();
        // The end is checked once this instance is in the group: partitions rewound by --from are
        // committed at their assignment.
        if (contact.ok() && bounded && session.assigned_any()) {
          const auto s = session.stats();
          if (s.open_gaps > 0 && session.read_everything() && others_at_end()) {
            // Nothing more can arrive: this member read its partitions to their ends and every other
            // partition's commit is at its end. What is still missing is given up (re-checked first).
            spdlog::info("every partition read to its end: {} stream(s) still miss versions; re-checking them",
                         s.open_gaps);
            session.give_up_gaps();
          }
          auto r = progress->reached(ends);
          if (r.ok()) {
            reached = *r;
          } else {
            spdlog::warn("group progress: {}", r.status().ToString());
          }
        }
        if (contact.ok()) {
          last_contact = Clock::now();
          return reached;
        }
        const auto silent = Clock::now() - last_contact;
        if (silent >= kafka_timeout) {
          kafka_lost = absl::UnavailableError(
              "no Kafka broker of " + o.brokers + " answered for " + std::to_string(o.kafka_timeout_s) +
              " s (--kafka-timeout-s): " + std::string(contact.message()) + "; nothing after the last commit is lost, "
              "rerun once Kafka is back");
          return true;
        }
        spdlog::warn("Kafka: {} (for {:.0f} s; the run stops after --kafka-timeout-s {})", std::string(contact.message()),
                     std::chrono::duration<double>(silent).count(), o.kafka_timeout_s);
        return false;
      },
      std::chrono::hours(24 * 365 * 100),
      {.mode = *progress_shown,
       .every = std::chrono::seconds(o.progress_s),
       .total = total,
       .extra = [&, catch_up = !bounded](double rate) { return lag_text((*lag)->snapshot(), rate, catch_up); }});
  const double rate_at_end = session.done_rate();
  if (!kafka_lost.ok()) {
    spdlog::error("stopping: {}", std::string(kafka_lost.message()));
    end = RunEnd::kFatal;
  }
  const bool stopping_early = end != RunEnd::kReached || !kafka_lost.ok();
  const int early_code = end == RunEnd::kFatal ? kExitFatal : kExitInterrupted;
  // Bounds the stop (see kStopGrace). The watchdog only touches the session under `state->mu`,
  // and the session outlives the moment `disarmed` is set.
  struct WatchdogState {
    std::mutex mu;
    bool disarmed = false;
  };
  auto watchdog = std::make_shared<WatchdogState>();
  if (stopping_early) {
    std::thread([watchdog, &session, &o, &kafka_lost, early_code] {
      std::this_thread::sleep_for(kStopGrace);
      std::lock_guard lock(watchdog->mu);
      if (watchdog->disarmed) return;
      pipeline::RunReport report;
      report.command = o.command;
      report.stats = session.stats();
      report.error = !kafka_lost.ok() ? kafka_lost.ToString() : session.fatal().ToString();
      if (early_code == kExitInterrupted) report.error.clear();
      report.outcome = early_code == kExitFatal ? "fatal" : "interrupted";
      report.text["stop"] = "in-flight work did not finish within the stop grace; it was not committed";
      std::cerr << "error: stopping took longer than " << kStopGrace.count()
                << " s (a store or broker that does not answer): exiting without waiting; what was in flight was "
                   "not committed and is read again by the next run\n";
      if (!o.report.empty()) (void)pipeline::write_report(report, o.report);
      std::cout.flush();
      std::cerr.flush();
      ::_exit(early_code);
    }).detach();
  }
  if (auto s = session.finish(/*kafka_lost=*/!kafka_lost.ok()); !s.ok()) spdlog::warn("{}", s.ToString());
  if (client) client->close();
  if (replier) {
    if (auto s = replier->flush(std::chrono::seconds(10)); !s.ok()) spdlog::warn("{}", s.ToString());
  }
  {
    std::lock_guard lock(watchdog->mu);
    watchdog->disarmed = true;
  }
  // The remainder after the final commit.
  (*lag)->stop();
  if (!kafka_lost.ok()) {
    // No broker answers: asking for the remainder would only wait.
  } else if (auto s = (*lag)->refresh(); !s.ok()) {
    spdlog::warn("consumer lag at the end: {}", s.ToString());
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
  report.numbers["process_s"] = process_seconds();
  if (const auto lag_end = (*lag)->snapshot(); lag_end.at) {
    report.numbers["lag_events"] = double(lag_end.total());
    for (const auto& [topic, n] : lag_end.by_topic()) report.objects["lag_by_topic"][topic] = double(n);
    if (!bounded && rate_at_end > 0) report.numbers["catch_up_s"] = double(lag_end.total()) / rate_at_end;
  }
  add_sink_figures(report, sink, session, cpu_s);
  report.text["dead_letter_file"] = o.dlq_file;
  if (client) {
    report.text["kurrent"] = redacted_kurrent_url(o.kurrent);
    add_client_figures(report, client->stats());
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

  int code = kExitInterrupted;
  if (end == RunEnd::kFatal) {
    report.error = !kafka_lost.ok() ? kafka_lost.ToString() : session.fatal().ToString();
    code = kExitFatal;
  } else if (end == RunEnd::kReached && reached) {
    code = report.stats.dead_lettered > 0 ? kExitDeadLetters : kExitDone;
  }
  report.outcome = code == kExitFatal         ? "fatal"
                   : code == kExitDone        ? "done"
                   : code == kExitDeadLetters ? "dead-letters"
                                                        : "interrupted";
  const auto& s = report.stats;
  std::cout << "events: " << s.events_read << " read, " << s.events_appended << " appended, " << s.duplicates
            << " duplicates, " << s.dead_lettered << " dead-lettered (" << o.dlq_file << ")\n";
  if (!report.error.empty()) std::cout << "error: " << report.error << "\n";
  if (report.numbers.contains("lag_events")) {
    std::cout << "lag: " << uint64_t(report.numbers["lag_events"]) << " events left";
    for (const auto& [topic, n] : report.objects["lag_by_topic"]) std::cout << ", " << topic << " " << uint64_t(n);
    std::cout << "\n";
  }
  if (!o.report.empty()) {
    if (auto st = pipeline::write_report(report, o.report); !st.ok()) std::cerr << "error: " << st.message() << "\n";
  }
  // The last textfile holds the final figures.
  if (*metrics_out) {
    if (auto st = (*metrics_out)->stop(); !st.ok()) std::cerr << "error: " << st.message() << "\n";
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
    cmd->add_flag("--assign", o->assign,
                  "Take every partition at once instead of joining --group (no wait for the group's first rebalance, "
                  "which brokers delay by group.initial.rebalance.delay.ms, 3 s by default); offsets are still "
                  "committed to --group. For a single instance only: refused while the group has active members");
  }
  cmd->add_option("--brokers", o->brokers, "Kafka bootstrap servers HOST:PORT[,HOST:PORT...]")->required();
  cmd->add_option("--topics", o->topics, "Topics to consume (comma-separated or repeated)")->required();
  cmd->add_option("--group", o->group, "Kafka consumer group (offsets are committed there)")->capture_default_str();
  cmd->add_option("--dlq-file", o->dlq_file, "Dead-letter NDJSON file (appended to)")->capture_default_str();
  cmd->add_option("--dlq-topic", o->dlq_topic, "Also write dead letters to this Kafka topic");
  cmd->add_option("--report", o->report, "Write the JSON run report to FILE when the run ends");
  cmd->add_option("--kafka-timeout-s", o->kafka_timeout_s,
                  "Stop the run (exit 4) once no Kafka broker answered for this long; nothing after the last commit "
                  "is lost")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{86400}));
  cmd->add_flag("--allow-missing-topics", o->allow_missing_topics,
                "Read the topics of --topics that exist and warn about the others (default: a missing topic stops "
                "the run, exit 4)");
  cmd->add_option("--progress-s", o->progress_s, "Seconds between progress lines")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600}));
  cmd->add_option("--sink", o->sink,
                  "kurrentdb: write through --kurrent; discard: decode, group and encode the appends, then drop "
                  "them (the pipeline's own cost; offsets are still committed, so use a scratch --group)")
      ->capture_default_str()
      ->check(CLI::IsMember({"kurrentdb", "discard"}));
  add_progress_flag(*cmd, o->progress);
  add_metrics_flags(*cmd, o->metrics);
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
