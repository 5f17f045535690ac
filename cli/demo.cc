// `kurrent-ingest demo`: the whole product on its embedded defaults. Starts the embedded Kafka,
// generates seed-domain events into the seed's four topics while ingesting them into the embedded
// store, then reads every stream back and verifies it.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "cli/ingest_metrics.h"
#include "pipeline/timed_sink.h"
#include "cli/ingest_session.h"
#include "cli/signals.h"
#include "cli/sinks.h"
#include "kafka/embedded_broker.h"
#include "kafka/producer.h"
#include "kafka/raw_consume.h"
#include "cli/exit_codes.h"
#include "pipeline/run_report.h"
#include "store/event_store.h"
#include "kurrent/connection_string.h"
#include "cli/discard_sink.h"
#include "kurrent/kurrent_client.h"
#include "server/kurrent_server.h"
#include "store/store_sink.h"
#include "workload/generator.h"
#include "workload/verifier.h"

namespace kingest::cli {
namespace {

struct DemoOptions {
  uint64_t events = 200000;
  uint64_t streams = 0;
  int partitions = 8;
  uint64_t seed = 1;
  std::string db;
  bool mem_db = false;
  std::string report;
  std::string dlq_file;
  std::string dlq_topic;
  std::string payload_bytes = "200-600";
  std::string format = "json";
  bool measure_raw = true;
  bool produce_first = false;
  std::string sink = "grpc";
  std::string progress;
  MetricsFlags metrics;
  IngestFlags ingest;
  KurrentFlags kurrent;
};

// The demo's own files (the default store file and dead-letter file) go in a temp dir made on
// first use. On the way out, empty files and the dir go again, so that a run leaves nothing behind
// but what it says it kept.
class DemoDir {
 public:
  DemoDir() = default;
  DemoDir(const DemoDir&) = delete;
  DemoDir& operator=(const DemoDir&) = delete;
  ~DemoDir() { tidy(); }

  std::string file(const char* name) {
    if (path_.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "kurrent-ingest-demo-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("cannot create a temporary directory");
      path_ = tmpl;
    }
    return path_ + "/" + name;
  }
  // Removes empty files and then the dir if nothing is left; returns the dir if it is still there.
  std::optional<std::string> tidy() {
    if (path_.empty()) return std::nullopt;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(path_, ec)) {
      std::error_code size_ec;
      if (entry.is_regular_file(size_ec) && entry.file_size(size_ec) == 0) std::filesystem::remove(entry.path(), ec);
    }
    std::filesystem::remove(path_, ec);  // fails (and keeps it) when something is left
    if (!std::filesystem::exists(path_, ec)) {
      path_.clear();
      return std::nullopt;
    }
    return path_;
  }

 private:
  std::string path_;
};

int run_demo(const DemoOptions& o) {
  using Clock = std::chrono::steady_clock;
  install_interrupt_handlers();
  auto payload = parse_range(o.payload_bytes, "--payload-bytes");
  if (!payload.ok()) return usage_error(payload.status());
  auto progress_shown = progress_mode(o.progress);
  if (!progress_shown.ok()) return usage_error(progress_shown.status());
  auto engine_options = o.ingest.engine_options();
  if (!engine_options.ok()) return usage_error(engine_options.status());
  // The engine keeps streams waiting (and merging) while the sink's append slots are all taken.
  engine_options->max_appends_in_flight = o.kurrent.max_in_flight_appends;

  {
    // Produced up front, the whole data set must fit the embedded broker's retention.
    const double per_partition = double(o.events) * (double(payload->first + payload->second) / 2 + 350) /
                                 (double(o.partitions) * double(workload::seed_domain().size()));
    if (o.produce_first && per_partition > 4.0 * (1 << 20)) {
      return usage_error(absl::InvalidArgumentError(fmt::format(
          "--produce-first: {} events over {} partitions is about {:.1f} MiB per partition, more than the embedded "
          "broker keeps (~5 MiB); use more --partitions or fewer --events",
          o.events, o.partitions * int(workload::seed_domain().size()), per_partition / (1 << 20))));
    }
  }
  DemoDir dir;
  std::string db_path = o.mem_db ? "memory" : (o.db.empty() ? dir.file("events.db") : o.db);
  std::string dlq_path = o.dlq_file.empty() ? dir.file("dead-letters.ndjson") : o.dlq_file;
  if (!o.mem_db && o.db.empty()) std::cout << "store: " << db_path << "\n";
  if (!o.mem_db && !o.db.empty() && std::filesystem::exists(o.db)) {
    std::cout << "store: " << db_path << " (existing file: events already there count as duplicates)\n";
  }

  // Embedded Kafka with the seed's topics.
  auto broker = kafka::EmbeddedBroker::start();
  if (!broker.ok()) return fatal_error(broker.status());
  auto format = workload::parse_format(o.format);
  if (!format) {
    return usage_error(absl::InvalidArgumentError("--format '" + o.format + "': use json, protobuf, flatbuffers or mixed"));
  }
  workload::GeneratorOptions gen{.events = o.events, .aggregates = o.streams, .seed = o.seed,
                                 .payload_min = payload->first, .payload_max = payload->second, .format = *format};
  workload::Generator probe(gen);
  for (const auto& t : probe.topics()) {
    if (auto s = (*broker)->create_topic(t, o.partitions); !s.ok()) return fatal_error(s);
  }
  std::cout << "kafka: embedded broker at " << (*broker)->bootstrap() << ", " << probe.topics().size()
            << " topics x " << o.partitions << " partitions\n";

  // The sink: by default the embedded store behind the project's KurrentDB-compatible server on
  // an ephemeral loopback port, written through the gRPC client (the production path); with
  // --sink direct, the store in-process; with --kurrent, an external KurrentDB; with --sink
  // discard, nowhere (the pipeline's own cost: requests are encoded, then dropped).
  const bool external = !o.kurrent.url.empty();
  const bool discard = o.sink == "discard";
  if (external && o.sink != "grpc") {
    return usage_error(absl::InvalidArgumentError("--kurrent writes over gRPC: it does not go with --sink " + o.sink));
  }
  std::unique_ptr<store::EventStore> es;
  std::unique_ptr<server::KurrentServer> grpc_server;
  std::string kurrent_url;
  if (discard) {
    db_path = "(discarded)";
  } else if (!external) {
    store::StoreOptions so;
    so.in_memory = o.mem_db;
    so.path = o.mem_db ? "" : db_path;
    auto opened = store::EventStore::open(so);
    if (!opened.ok()) return fatal_error(opened.status());
    es = std::move(*opened);
  } else {
    db_path = "(external)";
  }
  std::optional<std::string> url;
  if (o.sink == "grpc" && !external) {
    auto started = server::KurrentServer::start(
        *es, {.listen = "127.0.0.1:0", .max_append_size = o.ingest.max_append_bytes});
    if (!started.ok()) return fatal_error(started.status());
    grpc_server = std::move(*started);
    url = "kurrentdb://" + grpc_server->address() + "?tls=false";
  }
  bool usage_fault = false;
  auto opened_sink = open_sink(o.sink, o.kurrent, o.ingest, url, es.get(), &usage_fault);
  if (!opened_sink.ok()) return usage_fault ? usage_error(opened_sink.status()) : fatal_error(opened_sink.status());
  std::unique_ptr<Sink> sink_owner = std::move(opened_sink->sink);
  kurrent::KurrentClient* client = opened_sink->client;
  if (client != nullptr) {
    kurrent_url = external ? kurrent::parse_connection_string(o.kurrent.url)->redacted() : *url;
    std::cout << "kurrentdb: " << (external ? "" : "embedded server at ") << client->endpoint() << ", append mode "
              << client->append_mode() << "\n";
  }
  // Timed for the metrics' append and stream-read histograms.
  pipeline::TimedSink sink(*sink_owner);
  if (!o.dlq_topic.empty()) {
    if (auto s = (*broker)->create_topic(o.dlq_topic, 1); !s.ok()) return fatal_error(s);
  }
  auto dead_letter_sinks = DeadLetterSinks::open(dlq_path, (*broker)->bootstrap(), o.dlq_topic);
  if (!dead_letter_sinks.ok()) return usage_error(dead_letter_sinks.status());
  CountingDeadLetters dead_letters((*dead_letter_sinks)->sink());

  // Produce while ingesting. The mock broker silently drops a partition's oldest data past ~5 MiB,
  // so the generator never runs more than a few MiB per partition ahead of the ingest.
  std::atomic<uint64_t> produced{0};
  std::atomic<bool> produced_all{false};
  std::atomic<bool> produce_failed{false};
  std::string produce_error;
  const uint64_t partitions_total = uint64_t(o.partitions) * probe.topics().size();
  const uint64_t avg_bytes = (payload->first + payload->second) / 2 + 350;
  const uint64_t max_ahead = std::max<uint64_t>(10000, partitions_total * (3u << 19) / avg_bytes);

  auto source_options = o.ingest.source_options();
  if (!source_options.ok()) return usage_error(source_options.status());
  kafka::SourceOptions src = std::move(*source_options);
  src.brokers = (*broker)->bootstrap();
  src.group_id = "kurrent-ingest-demo";
  src.topics = probe.topics();
  // The mock broker: a short session keeps any rebalance quick.
  src.properties.emplace("session.timeout.ms", "6000");
  src.properties.emplace("heartbeat.interval.ms", "500");
  // The demo's broker is its own and its group new: every partition is taken at once, without
  // the group's first rebalance (which the broker delays by 3 s).
  src.assign_all = true;
  IngestSession session(src, std::move(*engine_options), sink, &dead_letters);
  metrics::Registry registry;
  metrics::add_process_metrics(registry);
  add_ingest_metrics(registry, {.command = "demo",
                                .append_mode = sink.append_mode(),
                                .session = &session,
                                .sink = &sink,
                                .client = client,
                                .dead_letters = &dead_letters});
  auto metrics_out = start_metrics(registry, o.metrics, std::chrono::seconds(2));
  if (!metrics_out.ok()) return usage_error(metrics_out.status());

  auto produce_all = [&] {
    auto p = kafka::Producer::create((*broker)->bootstrap());
    if (!p.ok()) {
      produce_error = p.status().ToString();
      produce_failed = true;
      return;
    }
    workload::Generator g(gen);
    workload::GeneratedEvent e;
    while (g.next(e) && !interrupted()) {
      while (!o.produce_first && produced.load() - session.stats().events_read > max_ahead && !interrupted() &&
             session.fatal().ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (auto s = (*p)->produce(e.topic, e.key, e.value, e.content_type); !s.ok()) {
        produce_error = s.ToString();
        produce_failed = true;
        return;
      }
      produced.fetch_add(1);
    }
    if (auto s = (*p)->flush(std::chrono::seconds(60)); !s.ok()) {
      produce_error = s.ToString();
      produce_failed = true;
    }
    produced_all = true;
  };
  std::thread producer;
  if (o.produce_first) {
    produce_all();  // the ingest alone is measured: nothing is being produced while it runs
  }
  auto started = Clock::now();
  if (auto s = session.start(); !s.ok()) return fatal_error(s);
  if (!o.produce_first) {
    producer = std::thread([&] {
      pthread_setname_np(pthread_self(), "ki-demo-produce");
      produce_all();
    });
  }

  // Done when every event is done; or when everything was produced, the engine is idle and Kafka
  // has delivered nothing new for a while (then some events never arrived: reported below).
  uint64_t last_read = 0;
  uint64_t last_done = 0;
  auto last_change = Clock::now();
  bool starved = false;
  auto timeout = std::chrono::milliseconds(std::max<uint64_t>(120000, o.events / 2));
  RunEnd end = session.run_until(
      [&](const pipeline::EngineStats& s) {
        if (produce_failed.load() || s.messages_done >= o.events) return true;
        auto now = Clock::now();
        // Progress on either side restarts the clock: while the engine works through a backlog
        // the source is paused and reads nothing.
        if (s.events_read != last_read || s.messages_done != last_done) {
          last_read = s.events_read;
          last_done = s.messages_done;
          last_change = now;
        }
        // Counted only once Kafka delivered something: the consumer group join alone takes seconds.
        starved = produced_all.load() && s.events_read > 0 && s.messages_done == s.events_read &&
                  now - last_change > std::chrono::seconds(5);
        return starved;
      },
      timeout, {.mode = *progress_shown, .every = std::chrono::seconds(2), .total = o.events});
  auto ingest_end = Clock::now();
  if (producer.joinable()) producer.join();
  if (auto s = session.finish(); !s.ok()) spdlog::warn("{}", s.ToString());
  if (client) client->close();

  pipeline::RunReport report;
  report.command = "demo";
  report.sink = sink.name();
  report.append_mode = sink.append_mode();
  report.stats = session.stats();
  // Throughput is measured from the first batch (after the consumer group formed) to the last event
  // done; wall_s is the whole ingest including the group join.
  report.elapsed_s = std::chrono::duration<double>(ingest_end - session.first_batch_at().value_or(started)).count();
  report.numbers["wall_s"] = std::chrono::duration<double>(ingest_end - started).count();
  report.events_produced = produced.load();
  report.text["store"] = db_path;
  if (client) {
    report.text["kurrent"] = kurrent_url;
    add_client_figures(report, client->stats());
  }
  report.text["dead_letter_file"] = dlq_path;
  report.text["kafka_bootstrap"] = (*broker)->bootstrap();
  report.numbers["offset_commits"] = double(session.offset_commits());
  if (es) report.numbers["store_transactions"] = double(es->stats().transactions);

  int code = kExitDone;
  if (produce_failed) {
    report.error = "producing to the embedded broker failed: " + produce_error;
    code = kExitFatal;
  } else if (end == RunEnd::kFatal) {
    report.error = session.fatal().ToString();
    code = kExitFatal;
  } else if (end == RunEnd::kInterrupted) {
    code = kExitInterrupted;
  } else if (starved) {
    report.error = std::to_string(o.events - report.stats.events_read) + " of " + std::to_string(o.events) +
                   " produced events never arrived from Kafka (the embedded broker keeps only ~5 MiB per partition "
                   "and dropped them): use more --partitions or fewer --events";
    code = kExitFatal;
  } else if (end == RunEnd::kTimedOut) {
    report.error = "timed out after " + std::to_string(timeout.count() / 1000) + " s with " +
                   std::to_string(report.stats.messages_done) + " of " + std::to_string(o.events) + " events done";
    code = kExitFatal;
  }

  bool verified = false;
  if (code == kExitDone && discard) {
    // Nothing was stored to read back: every produced event must have been appended.
    verified = report.stats.events_appended == o.events;
  } else if (code == kExitDone) {
    auto v0 = Clock::now();
    auto v = workload::verify(gen, sink);
    verified = v.ok;
    report.numbers["verify_s"] = std::chrono::duration<double>(Clock::now() - v0).count();
    for (const auto& p : v.problems) spdlog::error("verify: {}", p);
    if (!v.ok) spdlog::error("verify: {} problem(s) in {} streams", v.problem_count, v.streams_checked);
    if (report.stats.events_appended + report.stats.duplicates != o.events) verified = false;
  }
  report.verified = verified;

  if (o.measure_raw && code == kExitDone) {
    // The same data, read by librdkafka alone: how close the pipeline gets to simply reading Kafka.
    // (The mock broker may have dropped a few of the oldest messages by now: the rate is over what
    // is still there, and the count is reported beside it.)
    auto raw = kafka::raw_consume((*broker)->bootstrap(), probe.topics(), o.events, std::chrono::seconds(120));
    if (raw.ok() && raw->messages > 0) {
      report.numbers["kafka_raw_events_per_s"] = raw->messages_per_s();
      report.numbers["kafka_raw_messages"] = double(raw->messages);
      report.numbers["kafka_raw_s"] = raw->seconds;
    } else {
      spdlog::warn("raw consume measurement failed: {}", raw.ok() ? "no messages" : raw.status().ToString());
    }
  }

  if (code == kExitDone && !verified) code = report.stats.dead_lettered > 0 ? kExitDeadLetters : kExitFatal;
  report.outcome = code == kExitDone          ? "done"
                   : code == kExitInterrupted ? "interrupted"
                   : code == kExitDeadLetters ? "dead-letters"
                   : verified || report.error.size()    ? "fatal"
                                                        : "not-verified";
  const auto& s = report.stats;
  std::cout << "events: " << *report.events_produced << " produced, " << s.events_appended << " appended, "
            << s.duplicates << " duplicates, " << s.dead_lettered << " dead-lettered\n"
            << "streams: " << s.streams << ", batches: " << s.batches << ", appends: " << s.appends << "\n"
            << "elapsed: " << fmt::format("{:.2f}", report.elapsed_s) << " s, "
            << fmt::format("{:.0f}", report.events_per_s()) << " events/s";
  if (report.numbers.contains("kafka_raw_events_per_s")) {
    std::cout << " (raw Kafka consume of the same data: "
              << fmt::format("{:.0f}", report.numbers["kafka_raw_events_per_s"]) << " events/s)";
  }
  std::cout << "\n";
  if (s.dead_lettered > 0) std::cout << "dead letters: " << dlq_path << "\n";
  if (!report.error.empty()) std::cout << "error: " << report.error << "\n";
  std::cout << "verified: " << (verified ? "true" : "false")
            << (discard ? " (discard sink: every event counted as appended; nothing to read back)" : "") << "\n";
  if (!o.report.empty()) {
    if (auto st = pipeline::write_report(report, o.report); !st.ok()) {
      std::cerr << "error: " << st.message() << "\n";
      if (code == kExitDone) code = kExitFatal;
    }
  }
  if (*metrics_out) {
    if (auto st = (*metrics_out)->stop(); !st.ok()) std::cerr << "error: " << st.message() << "\n";
  }
  sink_owner.reset();
  if (grpc_server) grpc_server->shutdown();
  if (es) es->close();
  if (auto kept = dir.tidy()) {
    std::cout << "kept " << *kept << " (this run's store and dead letters); remove it with: rm -r " << *kept << "\n";
  }
  return code;
}

}  // namespace

void register_demo(CLI::App& app, std::function<void(std::function<int()>)> set_action) {
  auto o = std::make_shared<DemoOptions>();
  auto* cmd = app.add_subcommand("demo", "Generate seed-domain events into an embedded Kafka, ingest them over gRPC into "
                                         "the embedded KurrentDB-compatible store, and verify every stream");
  cmd->add_option("--events", o->events, "How many events to generate")->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  cmd->add_option("--streams", o->streams, "How many aggregates (streams); 0 = events / 20")->capture_default_str();
  cmd->add_option("--partitions", o->partitions, "Partitions per topic")->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--seed", o->seed, "Seed of the deterministic generator")->capture_default_str();
  cmd->add_option("--payload-bytes", o->payload_bytes, "Payload size range MIN-MAX in bytes")->capture_default_str();
  cmd->add_option("--format", o->format,
                  "Message format: json (NestJS shape), protobuf, flatbuffers, or mixed (all three, by content-type header)")
      ->capture_default_str();
  auto* db = cmd->add_option("--db", o->db, "SQLite file for the store (default: a fresh file in a temp dir)");
  cmd->add_flag("--mem-db", o->mem_db, "Keep the store in memory (the same SQLite code, on tmpfs and its WAL in memory; gone when the run ends)")->excludes(db);
  cmd->add_option("--report", o->report, "Write the JSON run report to FILE");
  cmd->add_option("--dlq-file", o->dlq_file, "Dead-letter NDJSON file (default: in the temp dir)");
  cmd->add_option("--dlq-topic", o->dlq_topic, "Also write dead letters to this topic of the embedded broker");
  cmd->add_flag("!--no-raw-consume", o->measure_raw, "Skip the raw Kafka consume measurement");
  cmd->add_flag("--produce-first", o->produce_first,
                "Produce every event before ingesting (measures the ingest alone; the mock broker keeps only "
                "~5 MiB per partition, so keep events x size under that)");
  cmd->add_option("--sink", o->sink,
                  "grpc: through the gRPC client to the embedded KurrentDB-compatible server on a loopback port (or "
                  "to --kurrent); direct: the embedded store in-process; discard: encode each append, then drop it "
                  "(the pipeline's own cost)")
      ->capture_default_str()
      ->check(CLI::IsMember({"grpc", "direct", "discard"}));
  add_ingest_flags(*cmd, o->ingest);
  add_kurrent_flags(*cmd, o->kurrent);
  add_progress_flag(*cmd, o->progress);
  add_metrics_flags(*cmd, o->metrics, "2 s");
  cmd->callback([o, set_action] { set_action([o] { return run_demo(*o); }); });
}

}  // namespace kingest::cli
