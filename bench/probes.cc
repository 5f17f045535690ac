// `kurrent-ingest-bench probe kafka|sink|store`: the three ceilings that the harness measures in
// processes of their own (so that each has its own CPU time and peak RSS).
//
//   kafka  reads the topics from the beginning with librdkafka and does nothing else.
//   sink   builds the appends first (decoded, named, grouped by stream in windows of the pipeline's
//          in-flight size, metadata and ids as the pipeline makes them; none of that is timed), then
//          times only their appends through the gRPC client: at most one append in flight per
//          stream, a stream's groups in order, at most --max-appends-in-flight on the wire.
//   store  the same appends, window by window, handed in-process to the embedded store (mem-db or a
//          file; through its bulk append_multi, or a request per stream group with --api append)
//          and committed by its group-commit writer: serve-store's own ceiling, no gRPC.
// Each writes one JSON object to --result: events, bytes, seconds (first event to last; for store,
// the sum of the timed windows), cpu_s (of the timed part), and for sink and store appends,
// events_per_append; for sink append_latency_p50_ms / p99_ms, for store api, requests,
// events_per_request, transactions and events_per_transaction.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "absl/strings/str_split.h"
#include "bench/harness.h"
#include "cli/commands.h"
#include "cli/ingest_session.h"
#include "cli/signals.h"
#include "core/json_writer.h"
#include "kafka/raw_consume.h"
#include "kurrent/connection_string.h"
#include "pipeline/grouping.h"
#include "pipeline/naming.h"
#include "cli/exit_codes.h"
#include "pipeline/stream_table.h"
#include "pipeline/timed_sink.h"
#include "store/event_store.h"
#include "workload/generator.h"

namespace kingest::bench {

using cli::fatal_error;
using cli::install_interrupt_handlers;
using cli::interrupted;
using cli::process_cpu_seconds;
using cli::usage_error;

namespace {

struct ProbeOptions {
  std::string brokers;
  std::string topics;
  std::string kurrent;
  std::string result;
  std::string db;
  bool mem_db = false;
  std::string store_api = "multi";
  size_t request_records = 1000;
  uint64_t window = 65536;
  size_t max_in_flight = 8192;
  cli::WorkloadFlags workload;
};

int write_result(const std::string& path, const JsonWriter& w) {
  std::ofstream out(path, std::ios::trunc);
  out << w.str() << "\n";
  if (!out.flush()) return usage_error(absl::InvalidArgumentError("cannot write --result " + path));
  return cli::kExitDone;
}

int run_kafka_probe(const ProbeOptions& o) {
  std::vector<std::string> topics;
  for (auto part : absl::StrSplit(o.topics, ',', absl::SkipEmpty())) topics.emplace_back(part);
  if (topics.empty()) return usage_error(absl::InvalidArgumentError("--topics: give at least one topic"));
  const double cpu0 = process_cpu_seconds();
  auto r = kafka::raw_consume(o.brokers, topics, o.workload.events, std::chrono::minutes(30));
  if (!r.ok()) return fatal_error(r.status());
  const double cpu = process_cpu_seconds() - cpu0;
  JsonWriter w;
  w.begin_object();
  w.key("events").value(r->messages);
  w.key("bytes").value(r->bytes);
  w.key("seconds").value(r->seconds);
  w.key("cpu_s").value(cpu);
  w.end_object();
  return write_result(o.result, w);
}

// The appends of the data set, window by window: each window of `window` events grouped by stream
// as the engine's serial stage groups a batch (pipeline::BatchGroups), one append per stream and
// window, with the exact expected revision its first version implies; `emit(appends, bytes)` gets
// each window's appends in order of their stream's first event in it, and the window's value bytes.
// With `record_properties`, each event's metadata comes as encoded properties, as the engine hands
// it to a sink that wants them.
absl::Status for_each_window(const workload::GeneratorOptions& gen, uint64_t window, bool record_properties,
                             const std::function<void(std::vector<AppendRequest>&, uint64_t)>& emit) {
  auto names = pipeline::StreamNameTemplate::parse("{AggregateType}-{AggregateId}");
  if (!names.ok()) return names.status();
  pipeline::VersionBase base;
  workload::Generator g(gen);
  workload::GeneratedEvent ge;
  std::unordered_map<std::string, size_t> index;
  std::vector<std::optional<Uuid>> previous;  // per stream index: the id of its last event
  // This window's events (decoded already: the generator's own, whatever --format encoded them
  // as), with their topics, and their grouping.
  std::vector<DomainEvent> events;
  std::vector<std::string> topics;
  pipeline::BatchGroups grouped(window);
  std::vector<AppendRequest> appends;
  uint64_t seen = 0;
  uint64_t bytes = 0;
  auto close_window = [&] {
    if (events.empty()) return;
    const uint64_t first_offset = seen - events.size();
    for (const auto& group : grouped.streams) {
      const std::string& stream = group.name;
      const auto& members = group.members;
      auto [it, fresh] = index.try_emplace(stream, previous.size());
      if (fresh) previous.emplace_back();
      const size_t s = it->second;
      AppendRequest req;
      req.stream = stream;
      for (uint32_t i : members) {
        const DomainEvent& e = events[i];
        const uint64_t rev = base.revision_of(e.aggregate_version).value_or(0);
        if (req.events.empty()) {
          if (rev == 0) {
            req.expected = ExpectNoStream{};
          } else {
            req.expected = StreamRevision{rev - 1};
          }
        }
        EventData ev;
        ev.id = pipeline::derive_event_id(e, stream, rev);
        ev.type = e.event_type;
        ev.content_type = std::string(pipeline::kJsonContentType);
        ev.data = e.payload;
        const pipeline::SourceRef source{topics[i], 0, int64_t(first_offset + i)};
        if (!record_properties || !pipeline::build_properties(e, ev.id, previous[s], source, nullptr, &ev.properties)) {
          ev.metadata = pipeline::build_metadata(e, ev.id, previous[s], source);
        }
        previous[s] = ev.id;
        req.events.push_back(std::move(ev));
      }
      appends.push_back(std::move(req));
    }
    emit(appends, bytes);
    appends.clear();
    events.clear();
    topics.clear();
    grouped = pipeline::BatchGroups(window);
    bytes = 0;
  };
  std::string name;
  while (g.next(ge)) {
    names->render_into(ge.event, name);
    grouped.add(name, pipeline::StreamTable::hash_name(name), uint32_t(events.size()));
    events.push_back(std::move(ge.event));
    topics.push_back(ge.topic);
    bytes += ge.value.size();
    ++seen;
    if (events.size() == window) close_window();
  }
  close_window();
  return absl::OkStatus();
}

// The appends of the whole data set, held per stream in order (none of it timed).
struct PreparedAppends {
  std::vector<std::deque<AppendRequest>> groups;  // per stream index, in order
  std::vector<size_t> order;                      // stream indexes in order of first group
  uint64_t events = 0;
  uint64_t bytes = 0;
  uint64_t appends = 0;
};

absl::StatusOr<PreparedAppends> prepare_appends(const workload::GeneratorOptions& gen, uint64_t window,
                                                bool record_properties) {
  PreparedAppends out;
  std::unordered_map<std::string, size_t> index;
  auto s = for_each_window(gen, window, record_properties, [&](std::vector<AppendRequest>& appends, uint64_t bytes) {
    for (AppendRequest& req : appends) {
      auto [it, fresh] = index.try_emplace(req.stream, out.groups.size());
      if (fresh) {
        out.groups.emplace_back();
        out.order.push_back(it->second);
      }
      out.events += req.events.size();
      out.groups[it->second].push_back(std::move(req));
    }
    out.appends += appends.size();
    out.bytes += bytes;
  });
  if (!s.ok()) return s;
  return out;
}

int run_sink_probe(const ProbeOptions& o) {
  install_interrupt_handlers();
  auto gen = o.workload.generator_options();
  if (!gen.ok()) return usage_error(gen.status());
  auto settings = kurrent::parse_connection_string(o.kurrent);
  if (!settings.ok()) return usage_error(settings.status());
  auto client = kurrent::KurrentClient::connect(*settings, {.max_in_flight_appends = o.max_in_flight});
  if (!client.ok()) return fatal_error(client.status());
  auto prepared = prepare_appends(*gen, o.window, (*client)->wants_record_properties());
  if (!prepared.ok()) return fatal_error(prepared.status());
  pipeline::TimedSink sink(**client);

  // Streams whose next group may go (none of theirs in flight), in order of first appearance.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<size_t> ready(prepared->order.begin(), prepared->order.end());
  size_t in_flight = 0;
  uint64_t appended = 0;
  uint64_t failed = 0;
  std::string first_failure;
  const auto started = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  std::unique_lock lock(mu);
  while (appended + failed < prepared->events && !interrupted()) {
    if (ready.empty() || in_flight >= o.max_in_flight) {
      cv.wait_for(lock, std::chrono::milliseconds(100));
      continue;
    }
    const size_t s = ready.front();
    ready.pop_front();
    AppendRequest req = std::move(prepared->groups[s].front());
    prepared->groups[s].pop_front();
    const size_t n = req.events.size();
    ++in_flight;
    lock.unlock();
    sink.append(std::move(req), [&, s, n](AppendOutcome outcome) {
      std::lock_guard g(mu);
      --in_flight;
      if (outcome.code == AppendCode::kSuccess) {
        appended += n;
      } else {
        failed += n;
        if (first_failure.empty()) first_failure = outcome.message;
      }
      if (!prepared->groups[s].empty()) ready.push_back(s);
      cv.notify_one();
    });
    lock.lock();
  }
  while (in_flight > 0) cv.wait(lock);
  lock.unlock();
  const double cpu = process_cpu_seconds() - cpu0;
  const auto last = sink.last_answer_at().value_or(started);
  (*client)->close();
  if (interrupted()) return cli::kExitInterrupted;
  if (failed > 0) {
    return fatal_error(absl::InternalError(std::to_string(failed) + " events failed to append, first: " + first_failure));
  }
  JsonWriter w;
  w.begin_object();
  w.key("events").value(appended);
  w.key("bytes").value(prepared->bytes);
  w.key("seconds").value(std::chrono::duration<double>(last - started).count());
  w.key("cpu_s").value(cpu);
  w.key("appends").value(prepared->appends);
  w.key("events_per_append").value(double(appended) / double(std::max<uint64_t>(1, prepared->appends)));
  w.key("append_latency_p50_ms").value(sink.latency().quantile_ms(0.5));
  w.key("append_latency_p99_ms").value(sink.latency().quantile_ms(0.99));
  w.end_object();
  return write_result(o.result, w);
}

// The store's own ceiling: each window's appends handed to the embedded store at once and waited
// for; the store's writer commits them in its group-commit transactions. With --api multi (the
// store's bulk API, as AppendRecords uses it) a request carries the records and revision checks of
// many streams, --request-records records at most (a stream's group never split); with append,
// one request per stream group. Only the hand-over and the commits are timed; making the appends
// (as the sink probe does) and converting them to the store's types is not.
int run_store_probe(const ProbeOptions& o) {
  install_interrupt_handlers();
  auto gen = o.workload.generator_options();
  if (!gen.ok()) return usage_error(gen.status());
  if (o.db.empty() == !o.mem_db) return usage_error(absl::InvalidArgumentError("give one of --db FILE and --mem-db"));
  const bool multi = o.store_api == "multi";
  store::StoreOptions options;
  options.in_memory = o.mem_db;
  options.path = o.db;
  auto opened = store::EventStore::open(options);
  if (!opened.ok()) return fatal_error(opened.status());
  store::EventStore& db = **opened;

  std::mutex mu;
  std::condition_variable cv;
  uint64_t answered = 0, appended = 0, appends = 0, requests = 0, failed = 0, bytes = 0;
  std::string first_failure;
  double seconds = 0, cpu = 0;
  auto fail = [&](uint64_t n, std::string why) {  // under mu
    failed += n;
    if (first_failure.empty()) first_failure = std::move(why);
  };
  std::vector<std::tuple<std::string, ExpectedRevision, std::vector<store::ProposedEvent>>> batch;
  std::vector<store::MultiAppend> multis;
  const bool record_properties = false;  // the store keeps metadata as JSON text
  auto s = for_each_window(
      *gen, o.window, record_properties, [&](std::vector<AppendRequest>& window, uint64_t window_bytes) {
        if (interrupted()) return;
        batch.clear();
        multis.clear();
        for (AppendRequest& req : window) {
          std::vector<store::ProposedEvent> events;
          events.reserve(req.events.size());
          for (EventData& e : req.events) {
            events.push_back({e.id, e.type.str(), e.content_type.str(), std::move(e.data), std::move(e.metadata)});
          }
          if (!multi) {
            batch.emplace_back(std::move(req.stream), req.expected, std::move(events));
            continue;
          }
          if (multis.empty() || multis.back().records.size() >= o.request_records) multis.emplace_back();
          store::MultiAppend& m = multis.back();
          const auto index = uint32_t(m.streams.size());
          m.streams.push_back(std::move(req.stream));
          m.checks.push_back({index, req.expected});
          for (auto& e : events) m.records.push_back({index, std::move(e)});
        }
        const uint64_t target = answered + (multi ? multis.size() : batch.size());
        const auto started = std::chrono::steady_clock::now();
        const double cpu0 = process_cpu_seconds();
        for (auto& [stream, expected, events] : batch) {
          const size_t n = events.size();
          db.append(std::move(stream), expected, std::move(events), [&, n](store::AppendResult r) {
            std::lock_guard g(mu);
            if (r.status == store::AppendStatus::kSuccess && !r.idempotent) {
              appended += n;
            } else {
              fail(n, r.message.empty() ? "status " + std::to_string(int(r.status)) : r.message);
            }
            if (++answered == target) cv.notify_one();
          });
        }
        for (auto& m : multis) {
          const size_t n = m.records.size();
          db.append_multi(std::move(m), [&, n](store::MultiAppendResult r) {
            std::lock_guard g(mu);
            if (r.status == store::AppendStatus::kSuccess) {
              appended += n;
            } else {
              fail(n, r.message.empty()
                          ? fmt::format("status {}, {} failing checks", int(r.status), r.violations.size())
                          : r.message);
            }
            if (++answered == target) cv.notify_one();
          });
        }
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return answered == target; });
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        cpu += process_cpu_seconds() - cpu0;
        appends += window.size();
        requests += multi ? multis.size() : batch.size();
        bytes += window_bytes;
      });
  const store::StoreStats stats = db.stats();
  db.close();
  if (!s.ok()) return fatal_error(s);
  if (interrupted()) return cli::kExitInterrupted;
  if (failed > 0) {
    return fatal_error(
        absl::InternalError(std::to_string(failed) + " events were not written, first: " + first_failure));
  }
  JsonWriter w;
  w.begin_object();
  w.key("events").value(appended);
  w.key("bytes").value(bytes);
  w.key("seconds").value(seconds);
  w.key("cpu_s").value(cpu);
  w.key("api").value(o.store_api);
  w.key("appends").value(appends);
  w.key("events_per_append").value(double(appended) / double(std::max<uint64_t>(1, appends)));
  w.key("requests").value(requests);
  w.key("events_per_request").value(double(appended) / double(std::max<uint64_t>(1, requests)));
  w.key("transactions").value(stats.transactions);
  w.key("events_per_transaction")
      .value(double(stats.events_written) / double(std::max<uint64_t>(1, stats.transactions)));
  w.end_object();
  return write_result(o.result, w);
}

}  // namespace

void register_probes(CLI::App& app, cli::ActionSetter set_action) {
  auto o = std::make_shared<ProbeOptions>();
  auto* cmd = app.add_subcommand("probe", "The ceilings the harness measures, one per process (it runs them itself)");
  cmd->require_subcommand(1);
  auto* kafka = cmd->add_subcommand("kafka", "Raw librdkafka consume of the topics from the beginning");
  kafka->add_option("--brokers", o->brokers, "Kafka bootstrap servers")->required();
  kafka->add_option("--topics", o->topics, "Comma-separated topics")->required();
  kafka->add_option("--events", o->workload.events, "Stop after this many messages")->required();
  kafka->add_option("--result", o->result, "Write the JSON result here")->required();
  kafka->callback([o, set_action] { set_action([o] { return run_kafka_probe(*o); }); });
  auto* sink = cmd->add_subcommand("sink", "Raw appends of pre-grouped batches of the generated events over gRPC");
  sink->add_option("--kurrent", o->kurrent, "KurrentDB connection string")->required();
  sink->add_option("--result", o->result, "Write the JSON result here")->required();
  sink->add_option("--window", o->window, "Events grouped by stream together (the pipeline's in-flight window)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
  sink->add_option("--max-appends-in-flight", o->max_in_flight, "Appends on the wire at once")->capture_default_str();
  cli::add_workload_flags(*sink, o->workload);
  sink->callback([o, set_action] { set_action([o] { return run_sink_probe(*o); }); });
  auto* store = cmd->add_subcommand("store", "Raw in-process appends of the generated events, grouped as the sink "
                                             "probe groups them, into the embedded store");
  store->add_option("--db", o->db, "SQLite file to write (created; give a fresh path)");
  store->add_flag("--mem-db", o->mem_db, "Write to an in-memory database instead of --db");
  store->add_option("--result", o->result, "Write the JSON result here")->required();
  store->add_option("--api", o->store_api, "The store API: multi (append_multi, many streams per request) or "
                                          "append (a request per stream group)")
      ->capture_default_str()
      ->check(CLI::IsMember({"multi", "append"}));
  store->add_option("--request-records", o->request_records, "With --api multi: records per request at most")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 24));
  store->add_option("--window", o->window, "Events grouped by stream together and handed to the store at once")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
  cli::add_workload_flags(*store, o->workload);
  store->callback([o, set_action] { set_action([o] { return run_store_probe(*o); }); });
}

}  // namespace kingest::bench
