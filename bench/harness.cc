// `kurrent-ingest-bench`: how fast the pipeline is, against the ceilings around it, in one run.
//
// Each shape's data set is produced once into a standalone embedded broker (a process of its own,
// with enough partitions for the mock's retention). Then, round after round (so that drift on a shared
// machine hits every case alike), each case runs in a process of its own, against a fresh
// `kurrent-ingest serve-store` process where it writes (the product binary runs the broker, the
// generator, the store and the replays; this binary runs the ceilings as `probe kafka|sink|store`):
//   a kafka-raw         librdkafka consume, nothing else: the Kafka ceiling
//   b sink-raw          pre-built, pre-grouped appends over gRPC to serve-store --mem-db: the sink ceiling
//   s store-raw         the same appends in-process into the embedded store, mem-db (s-file: a file):
//                       serve-store's own ceiling
//   c pipeline-discard  replay --sink discard: decode, order, group, encode, drop
//   d e2e-memdb         replay into serve-store --mem-db        (d-file: into a SQLite file)
//   e unbatched         replay with batches of one event, one append in flight (a sample)
//   f peer              bench/peers/nestjs-subscriber: the seed's per-message Node.js design (a sample)
// Every case runs per data shape (--shape): deep (few streams, many events each) and wide (a
// stream per four events), one broker and data set per shape, one after the other. Rates run from
// the first event to the last; the best of --runs counts. The table and the JSON (--json) carry,
// per shape, events/s, MB/s (Kafka message values), CPU seconds per million events, the peak RSS of
// the measured process and the append latency p50/p99, then the ratios and the targets: this file
// runs the cases, report.cc prints and writes what they measured.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/child_process.h"
#include "bench/harness.h"
#include "bench/results.h"
#include "cli/commands.h"
#include "cli/signals.h"
#include "kafka/group_progress.h"
#include "cli/exit_codes.h"
#include "workload/generator.h"

namespace kingest::bench {

using cli::fatal_error;
using cli::install_interrupt_handlers;
using cli::interrupted;
using cli::usage_error;

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::vector<CaseInfo>& all_cases() {
  static const std::vector<CaseInfo> cases = {
      {"a", "kafka-raw", "librdkafka consume, no processing"},
      {"b", "sink-raw", "pre-grouped appends over gRPC, serve-store --mem-db"},
      {"s", "store-raw", "the same appends in-process into the embedded store, mem-db"},
      {"s-file", "store-raw-file", "the same appends in-process into the embedded store, SQLite file"},
      {"c", "pipeline-discard", "pipeline, appends encoded then discarded"},
      {"d", "e2e-memdb", "pipeline into serve-store --mem-db"},
      {"d-file", "e2e-file", "pipeline into serve-store on a SQLite file"},
      {"e", "unbatched", "pipeline, one event per append, one in flight, mem-db"},
      {"f", "peer", "Node.js per-message subscriber (the seed's design), mem-db"},
  };
  return cases;
}

// The workload of a shape: deep keeps --streams (10,000 by default); wide gives every stream four
// events, so its stream count follows --events.
cli::WorkloadFlags shape_workload(const cli::WorkloadFlags& flags, const std::string& shape) {
  cli::WorkloadFlags w = flags;
  if (shape == "wide") w.streams = std::max<uint64_t>(1, flags.events / 4);
  return w;
}

// CPU seconds (user + system) a running process has used, from /proc/PID/stat; 0 if unreadable.
double cpu_seconds_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // fields 14 and 15: utime, stime (clock ticks)
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

std::string self_exe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("kurrent-ingest-bench") : p.string();
}

// The product binary: --ingest-binary, else the kurrent-ingest built beside this one.
std::string ingest_exe(const std::string& flag, const std::string& self) {
  if (!flag.empty()) return flag;
  return (fs::path(self).parent_path() / "kurrent-ingest").string();
}

// A number of a result document, whether written as an integer or not.
std::optional<double> number(simdjson::dom::element doc, const char* key) {
  double v = 0;
  if (doc[key].get_double().get(v) == simdjson::SUCCESS) return v;
  uint64_t u = 0;
  if (doc[key].get_uint64().get(u) == simdjson::SUCCESS) return double(u);
  return std::nullopt;
}

// One shape's run: its broker and data set, then its cases round after round.
class Bench {
 public:
  Bench(const BenchOptions& o, std::string shape, std::string dir)
      : o_(o),
        w_(shape_workload(o.workload, shape)),
        shape_(std::move(shape)),
        self_(self_exe()),
        exe_(ingest_exe(o.ingest_binary, self_)),
        dir_(std::move(dir)) {}
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;
  ~Bench() {
    if (broker_) broker_->stop();
  }

  absl::StatusOr<ShapeResult> run(const std::vector<std::string>& ids);

 private:
  absl::Status prepare();
  absl::StatusOr<Measurement> run_case(const std::string& id, int round);
  absl::StatusOr<Measurement> measure(const std::string& id, int round);
  absl::StatusOr<std::pair<ChildProcess, std::string>> start_store(const std::string& tag, bool file);
  absl::StatusOr<ChildExit> run_child(const std::vector<std::string>& argv, const std::string& tag);
  absl::StatusOr<simdjson::dom::element> load_json(const std::string& path);
  // A probe's result file, with its events, seconds and CPU (else the process's) and the process's
  // peak RSS put in `m`.
  absl::StatusOr<simdjson::dom::element> load_probe_result(const std::string& path, const ChildExit& end,
                                                           Measurement& m);
  std::vector<std::string> replay_args(const std::string& tag, const std::string& kurrent);  // empty: --sink discard

  const BenchOptions& o_;
  cli::WorkloadFlags w_;  // this shape's
  std::string shape_;
  std::string self_;  // this binary: the probes
  std::string exe_;   // kurrent-ingest: broker, generate, serve-store, replay
  std::string dir_;
  std::optional<ChildProcess> broker_;
  std::string bootstrap_;
  std::vector<std::string> topics_;
  kafka::Offsets ends_;
  uint64_t events_ = 0;
  double bytes_per_event_ = 0;
  int partitions_ = 0;
  std::vector<std::string> sample_offsets_;  // --until-offset items for the unbatched case
  uint64_t unbatched_events_ = 0;
  simdjson::dom::parser parser_;
};

absl::StatusOr<ChildExit> Bench::run_child(const std::vector<std::string>& argv, const std::string& tag) {
  auto child = ChildProcess::spawn(argv, dir_ + "/" + tag + ".log");
  if (!child.ok()) return child.status();
  auto end = child->wait(std::chrono::seconds(o_.case_timeout_s));
  if (!end) {
    child->stop();
    if (interrupted()) return absl::CancelledError("interrupted");
    return absl::DeadlineExceededError(tag + " did not finish within " + std::to_string(o_.case_timeout_s) +
                                       " s (--case-timeout-s); its log:\n" + child->log_tail());
  }
  if (end->exit_code != 0) {
    return absl::InternalError(tag + " exited with " + std::to_string(end->exit_code) + "; its log (" +
                               child->log_path() + "):\n" + child->log_tail());
  }
  return *end;
}

absl::StatusOr<simdjson::dom::element> Bench::load_json(const std::string& path) {
  simdjson::dom::element doc;
  if (auto err = parser_.load(path).get(doc); err) {
    return absl::InternalError("cannot read " + path + ": " + simdjson::error_message(err));
  }
  return doc;
}

absl::StatusOr<simdjson::dom::element> Bench::load_probe_result(const std::string& path, const ChildExit& end,
                                                                Measurement& m) {
  auto doc = load_json(path);
  if (!doc.ok()) return doc.status();
  m.events = uint64_t(number(*doc, "events").value_or(0));
  m.seconds = number(*doc, "seconds").value_or(0);
  m.cpu_s = number(*doc, "cpu_s").value_or(end.cpu_s);
  m.peak_rss_mib = end.peak_rss_mib;
  return doc;
}

absl::StatusOr<std::pair<ChildProcess, std::string>> Bench::start_store(const std::string& tag, bool file) {
  const std::string address_file = dir_ + "/" + tag + ".address";
  std::vector<std::string> argv{exe_, "--log-level", "warn", "serve-store", "--listen", "127.0.0.1:0",
                                "--address-file", address_file};
  if (file) {
    argv.insert(argv.end(), {"--db", dir_ + "/" + tag + ".db"});
  } else {
    argv.emplace_back("--mem-db");
  }
  auto child = ChildProcess::spawn(argv, dir_ + "/" + tag + "-store.log");
  if (!child.ok()) return child.status();
  auto address = wait_for_file_line(address_file, 30s, &*child);
  if (!address.ok()) return address.status();
  return std::pair{std::move(*child), "kurrentdb://" + *address + "?tls=false"};
}

absl::Status Bench::prepare() {
  auto gen = w_.generator_options();
  if (!gen.ok()) return gen.status();
  // Size the topics from the data itself: the mock keeps about 5 MiB per partition and silently
  // drops older data beyond that. Keys spread unevenly (one partition held 2.5x the even share at
  // 4 M events), so the bytes of each partition are computed with librdkafka's own partitioner
  // for keyed messages (CRC32 of the key), and the partitions made enough for the fullest one.
  std::map<std::pair<std::string, std::string>, uint64_t> key_bytes;  // (topic, key) → bytes
  {
    workload::Generator g(*gen);
    workload::GeneratedEvent e;
    uint64_t bytes = 0;
    while (g.next(e)) {
      key_bytes[{e.topic, e.key}] += e.value.size() + e.key.size() + 80;
      bytes += e.value.size();
      ++events_;
    }
    topics_ = g.topics();
    bytes_per_event_ = events_ > 0 ? double(bytes) / double(events_) : 0;
  }
  partitions_ = o_.partitions;
  if (partitions_ == 0) {
    constexpr uint64_t kPartitionBudget = uint64_t{4} << 20;  // under the mock's ~5 MiB
    uint64_t total = 0;
    for (const auto& [k, b] : key_bytes) total += b;
    partitions_ = std::clamp(int(total / kPartitionBudget / std::max<size_t>(1, topics_.size())), 4, 1024);
    for (; partitions_ < 1024; partitions_ += std::max(1, partitions_ / 16)) {
      std::map<std::pair<std::string, int32_t>, uint64_t> load;
      uint64_t fullest = 0;
      for (const auto& [k, b] : key_bytes) {
        const int32_t p = rd_kafka_msg_partitioner_consistent(nullptr, k.second.data(), k.second.size(), partitions_,
                                                              nullptr, nullptr);
        fullest = std::max(fullest, load[{k.first, p}] += b);
      }
      if (fullest <= kPartitionBudget) break;
    }
    partitions_ = std::min(partitions_, 1024);
  }
  const std::string bootstrap_file = dir_ + "/bootstrap";
  auto broker = ChildProcess::spawn({exe_, "--log-level", "warn", "broker", "--topics", absl::StrJoin(topics_, ","),
                                     "--partitions", std::to_string(partitions_), "--bootstrap-file", bootstrap_file},
                                    dir_ + "/broker.log");
  if (!broker.ok()) return broker.status();
  broker_ = std::move(*broker);
  auto bootstrap = wait_for_file_line(bootstrap_file, 30s, &*broker_);
  if (!bootstrap.ok()) return bootstrap.status();
  bootstrap_ = *bootstrap;
  std::cout << "bench " << shape_ << ": " << events_ << " events of " << gen->aggregates << " streams ("
            << fmt::format("{:.0f}", bytes_per_event_) << " bytes each on average) into " << topics_.size()
            << " topics x " << partitions_ << " partitions at " << bootstrap_ << std::endl;

  std::vector<std::string> generate{exe_, "--log-level", "warn", "generate", "--brokers", bootstrap_,
                                    "--events", std::to_string(w_.events),
                                    "--streams", std::to_string(w_.streams),
                                    "--payload-bytes", w_.payload_bytes,
                                    "--seed", std::to_string(w_.seed),
                                    "--format", w_.format,
                                    // Record batches that close by size (64 KiB, about 95 events), not by
                                    // the producer's timing: how Kafka batched the data sets what reading it
                                    // costs (the broker's CPU per event varied about eightfold with the
                                    // generator's 5 ms linger), and every invocation must read the same.
                                    "-X", "batch.size=65536", "-X", "linger.ms=1000"};
  if (!w_.topics.empty()) generate.insert(generate.end(), {"--topics", w_.topics});
  if (auto r = run_child(generate, "generate"); !r.ok()) return r.status();

  // Every event must still be there: nothing dropped from a partition's head.
  auto progress = kafka::GroupProgress::open(bootstrap_, "kurrent-ingest-bench", {});
  if (!progress.ok()) return progress.status();
  auto ends = (*progress)->end_offsets(topics_);
  if (!ends.ok()) return ends.status();
  auto starts = (*progress)->start_offsets(*ends);
  if (!starts.ok()) return starts.status();
  uint64_t total = 0;
  for (const auto& [tp, end] : *ends) {
    if ((*starts)[tp] != 0) {
      return absl::FailedPreconditionError(fmt::format(
          "the embedded broker dropped the head of {}[{}] (its retention is about 5 MiB per partition): "
          "give more --partitions than {}",
          tp.topic, tp.partition, partitions_));
    }
    total += uint64_t(end);
  }
  if (total != events_) {
    return absl::InternalError(fmt::format("the broker holds {} events, {} were generated", total, events_));
  }
  ends_ = *ends;

  // The unbatched case's sample: the same prefix of every partition.
  const uint64_t want = std::min(o_.unbatched_events, events_);
  int64_t lo = 0, hi = 0;
  for (const auto& [tp, end] : ends_) hi = std::max(hi, end);
  auto count_below = [&](int64_t k) {
    uint64_t n = 0;
    for (const auto& [tp, end] : ends_) n += uint64_t(std::min(end, k));
    return n;
  };
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (count_below(mid) >= want) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  unbatched_events_ = count_below(lo);
  for (const auto& [tp, end] : ends_) {
    if (end > lo) sample_offsets_.push_back(fmt::format("{}:{}:{}", tp.topic, tp.partition, lo));
  }
  return absl::OkStatus();
}

std::vector<std::string> Bench::replay_args(const std::string& tag, const std::string& kurrent) {
  std::vector<std::string> argv{exe_, "--log-level", "warn", "replay", "--brokers", bootstrap_,
                                "--topics", absl::StrJoin(topics_, ","), "--group", "bench-" + tag,
                                "--from", "beginning", "--report", dir_ + "/" + tag + ".json",
                                "--dlq-file", dir_ + "/" + tag + "-dead-letters.ndjson", "--progress-s", "3600",
                                "-X", "session.timeout.ms=6000"};
  if (kurrent.empty()) {
    argv.insert(argv.end(), {"--sink", "discard"});
  } else {
    argv.insert(argv.end(), {"--kurrent", kurrent});
  }
  return argv;
}

absl::StatusOr<Measurement> Bench::run_case(const std::string& id, int round) {
  const double broker_before = cpu_seconds_of(broker_->pid());
  auto m = measure(id, round);
  if (m.ok()) m->broker_cpu_s = cpu_seconds_of(broker_->pid()) - broker_before;
  return m;
}

absl::StatusOr<Measurement> Bench::measure(const std::string& id, int round) {
  const std::string tag = fmt::format("{}-{}", id, round);
  const std::string result = dir_ + "/" + tag + ".json";
  Measurement m;

  if (id == "a") {
    auto end = run_child({self_, "--log-level", "warn", "probe", "kafka", "--brokers", bootstrap_, "--topics",
                          absl::StrJoin(topics_, ","), "--events", std::to_string(events_), "--result", result},
                         tag);
    if (!end.ok()) return end.status();
    auto doc = load_probe_result(result, *end, m);
    if (!doc.ok()) return doc.status();
    if (m.events != events_) {
      return absl::InternalError(fmt::format("{}: read {} of {} events", tag, m.events, events_));
    }
    return m;
  }

  if (id == "s" || id == "s-file") {
    std::vector<std::string> argv{self_, "--log-level", "warn", "probe", "store", "--api", o_.store_api,
                                  "--result", result, "--events", std::to_string(w_.events), "--streams",
                                  std::to_string(w_.streams), "--payload-bytes", w_.payload_bytes, "--seed",
                                  std::to_string(w_.seed)};
    if (!w_.topics.empty()) argv.insert(argv.end(), {"--topics", w_.topics});
    const std::string db = dir_ + "/" + tag + ".db";
    if (id == "s-file") {
      argv.insert(argv.end(), {"--db", db});
    } else {
      argv.emplace_back("--mem-db");
    }
    auto end = run_child(argv, tag);
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db + suffix);
    if (!end.ok()) return end.status();
    auto doc = load_probe_result(result, *end, m);
    if (!doc.ok()) return doc.status();
    m.events_per_append = number(*doc, "events_per_append");
    m.events_per_transaction = number(*doc, "events_per_transaction");
    if (m.events != events_) {
      return absl::InternalError(fmt::format("{}: wrote {} of {} events; see {}", tag, m.events, events_, result));
    }
    return m;
  }

  auto store = start_store(tag, id == "d-file");
  if (!store.ok()) return store.status();
  auto& [store_process, url] = *store;
  uint64_t expected = events_;
  absl::StatusOr<ChildExit> end;
  if (id == "b") {
    end = run_child({self_, "--log-level", "warn", "probe", "sink", "--kurrent", url, "--result", result,
                     "--events", std::to_string(w_.events), "--streams", std::to_string(w_.streams),
                     "--payload-bytes", w_.payload_bytes, "--seed", std::to_string(w_.seed)},
                    tag);
  } else if (id == "f") {
    expected = std::min(o_.peer_events, events_);
    end = run_child({o_.node, o_.peer_dir + "/subscriber.mjs", "--brokers", bootstrap_, "--topics",
                     absl::StrJoin(topics_, ","), "--group", "bench-" + tag, "--kurrent", url, "--events",
                     std::to_string(expected), "--result", result},
                    tag);
  } else {
    auto argv = replay_args(tag, id == "c" ? std::string() : url);
    if (id == "e") {
      expected = unbatched_events_;
      argv.insert(argv.end(), {"--batch-max-events", "1", "--max-batches-in-flight", "1", "--max-appends-in-flight",
                               "1", "--until-offset", absl::StrJoin(sample_offsets_, ",")});
    } else {
      argv.insert(argv.end(), o_.pipeline_args.begin(), o_.pipeline_args.end());
    }
    end = run_child(argv, tag);
  }
  const ChildExit store_end = store_process.stop();
  m.store_cpu_s = store_end.cpu_s;
  if (id == "d-file") {
    for (const char* suffix : {".db", ".db-wal", ".db-shm"}) fs::remove(dir_ + "/" + tag + suffix);
  }
  if (!end.ok()) return end.status();
  // The sink ceiling is a probe; the pipeline runs and the peer write results of their own.
  auto doc = id == "b" ? load_probe_result(result, *end, m) : load_json(result);
  if (!doc.ok()) return doc.status();
  m.peak_rss_mib = end->peak_rss_mib;
  if (id == "b") {
    m.p50_ms = number(*doc, "append_latency_p50_ms");
    m.p99_ms = number(*doc, "append_latency_p99_ms");
    m.events_per_append = number(*doc, "events_per_append");
  } else if (id == "f") {
    m.events = uint64_t(number(*doc, "events").value_or(0));
    m.seconds = number(*doc, "first_to_last_s").value_or(0);
    m.cpu_s = number(*doc, "cpu_s").value_or(end->cpu_s);
    simdjson::dom::element lat;
    if ((*doc)["append_latency_ms"].get(lat) == simdjson::SUCCESS) {
      m.p50_ms = number(lat, "p50");
      m.p99_ms = number(lat, "p99");
    }
    m.events_per_append = 1.0;
    if (auto errors = number(*doc, "errors"); errors && *errors > 0) {
      return absl::InternalError(fmt::format("{}: {} appends failed (log: {})", tag, *errors, dir_ + "/" + tag + ".log"));
    }
  } else {
    m.events = uint64_t(number(*doc, "events_appended").value_or(0));
    m.seconds = number(*doc, "first_to_last_s").value_or(number(*doc, "elapsed_s").value_or(0));
    m.cpu_s = number(*doc, "cpu_s").value_or(end->cpu_s);
    m.p50_ms = number(*doc, "append_latency_p50_ms");
    m.p99_ms = number(*doc, "append_latency_p99_ms");
    m.events_per_append = number(*doc, "events_per_append");
    std::string_view mode;
    if ((*doc)["append_mode"].get(mode) == simdjson::SUCCESS) m.append_mode = std::string(mode);
    if (number(*doc, "dead_lettered").value_or(0) > 0 || number(*doc, "duplicates").value_or(0) > 0) {
      return absl::InternalError(tag + ": the run had dead letters or duplicates; see " + result);
    }
  }
  if (m.events != expected) {
    return absl::InternalError(fmt::format("{}: {} of {} events were appended; see {}", tag, m.events, expected, result));
  }
  return m;
}

absl::StatusOr<ShapeResult> Bench::run(const std::vector<std::string>& ids) {
  if (auto s = prepare(); !s.ok()) return s;
  ShapeResult shape;
  shape.name = shape_;
  shape.events = events_;
  shape.streams = w_.streams;
  shape.bytes_per_event = bytes_per_event_;
  shape.topics = topics_;
  shape.partitions = partitions_;
  shape.unbatched_events = unbatched_events_;
  shape.peer_events = std::min(o_.peer_events, events_);
  for (const auto& id : ids) {
    for (const auto& c : all_cases()) {
      if (c.id == id) shape.results.push_back(CaseResult{c, {}});
    }
  }
  for (int round = 1; round <= o_.runs; ++round) {
    for (auto& r : shape.results) {
      auto m = run_case(r.info.id, round);
      if (!m.ok()) return m.status();
      std::cout << fmt::format("{} round {}/{}  {:<6} {:<17} {:>9} events  {:>10.0f} events/s", shape_, round, o_.runs,
                               r.info.id, r.info.name, m->events, m->rate())
                << std::endl;
      r.runs.push_back(*m);
    }
  }
  broker_->stop();
  broker_.reset();
  return shape;
}

int run_bench(const BenchOptions& o) {
  install_interrupt_handlers();
  std::vector<std::string> ids;
  for (auto part : absl::StrSplit(o.cases, ',', absl::SkipEmpty())) {
    const std::string id(part);
    if (std::none_of(all_cases().begin(), all_cases().end(), [&](const CaseInfo& c) { return c.id == id; })) {
      return usage_error(
          absl::InvalidArgumentError("--cases: unknown case '" + id + "' (use a, b, s, s-file, c, d, d-file, e, f)"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) return usage_error(absl::InvalidArgumentError("--cases: name at least one case"));
  std::vector<std::string> shapes;
  if (o.shape == "both") {
    shapes = {"deep", "wide"};
  } else {
    shapes = {o.shape};
  }
  if (o.workload.events < 4 && std::find(shapes.begin(), shapes.end(), "wide") != shapes.end()) {
    return usage_error(absl::InvalidArgumentError("--events: the wide shape needs at least 4 events (4 per stream)"));
  }
  const std::string exe = ingest_exe(o.ingest_binary, self_exe());
  if (access(exe.c_str(), X_OK) != 0) {
    return usage_error(absl::InvalidArgumentError("no kurrent-ingest binary at " + exe +
                                                  ": build it (scripts/build) or give --ingest-binary"));
  }
  if (std::find(ids.begin(), ids.end(), "f") != ids.end() && !fs::exists(o.peer_dir + "/node_modules")) {
    return usage_error(absl::InvalidArgumentError(
        "the Node.js peer has no node_modules in " + o.peer_dir +
        ": run `npm ci` there (scripts/bench does), give --peer-dir, or leave case f out of --cases"));
  }
  std::string dir;
  if (o.work_dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "kurrent-ingest-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return fatal_error(absl::InternalError("cannot create a temp directory"));
    dir = tmpl;
  } else {
    dir = o.work_dir;
  }
  int code = cli::kExitDone;
  std::vector<ShapeResult> results;
  for (const auto& shape : shapes) {
    const std::string shape_dir = dir + "/" + shape;
    std::error_code ec;
    fs::create_directories(shape_dir, ec);
    if (ec) {
      code = usage_error(absl::InvalidArgumentError("--work-dir " + shape_dir + ": " + ec.message()));
      break;
    }
    Bench bench(o, shape, shape_dir);
    auto r = bench.run(ids);
    if (!r.ok()) {
      code = interrupted() ? cli::kExitInterrupted : fatal_error(r.status());
      break;
    }
    results.push_back(std::move(*r));
  }
  if (code == cli::kExitDone) print_and_write(o, results);
  if (!o.keep && o.work_dir.empty() && code == cli::kExitDone) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  } else {
    std::cout << "logs and results kept in " << dir << "\n";
  }
  return code;
}

}  // namespace

std::function<int()> add_harness_flags(CLI::App& cmd) {
  auto o = std::make_shared<BenchOptions>();
  o->workload.events = 1000000;
  o->workload.streams = 10000;
  cli::add_workload_flags(cmd, o->workload);
  cmd.get_option("--streams")
      ->description("Streams (aggregates) of the deep shape (0 = events / 20); the wide shape always has one "
                    "stream per 4 events (--events / 4), whatever this says");
  cmd.add_option("--shape", o->shape, "Data shapes to run every case on: deep (--streams streams, 100 events each "
                                      "at the defaults), wide (--events / 4 streams of 4 events) or both, one after "
                                      "the other")
      ->capture_default_str()
      ->check(CLI::IsMember({"deep", "wide", "both"}));
  cmd.add_option("--store-api", o->store_api, "The store API cases s and s-file write through: multi (append_multi, "
                                             "requests of 1,000 records of many streams) or append (a request per "
                                             "stream group)")
      ->capture_default_str()
      ->check(CLI::IsMember({"multi", "append"}));
  cmd.add_option("--runs", o->runs, "Rounds; each case's best run counts")->capture_default_str()->check(CLI::Range(1, 20));
  cmd.add_option("--cases", o->cases, "Cases to run on every shape: a (kafka-raw), b (sink-raw), s (store-raw, "
                                       "mem-db), s-file (store-raw-file), c (pipeline-discard), d (e2e-memdb), "
                                       "d-file (e2e-file), e (unbatched), f (peer)")
      ->capture_default_str();
  cmd.add_option("--json", o->json, "Write the table, ratios and targets as JSON to FILE");
  cmd.add_option("--report", o->report, "Write the shared run report (best e2e-memdb run, ratios) to FILE");
  cmd.add_option("--work-dir", o->work_dir, "Keep logs, reports and store files here (default: a temp dir, removed "
                                             "after a successful run)");
  cmd.add_flag("--keep", o->keep, "Keep the temp dir after a successful run");
  cmd.add_option("--partitions", o->partitions, "Partitions per topic (default: enough for the mock's ~5 MiB "
                                                 "retention per partition)")
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--unbatched-events", o->unbatched_events, "Events the unbatched case (e) runs on")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  cmd.add_option("--peer-events", o->peer_events, "Events the Node.js peer (f) runs on")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  cmd.add_option("--peer-dir", o->peer_dir, "The Node.js peer (with node_modules)")->capture_default_str();
  cmd.add_option("--node", o->node, "Node.js executable")->capture_default_str();
  cmd.add_option("--pipeline-arg", o->pipeline_args,
                  "Extra flag for the pipeline runs c, d and d-file (repeatable), e.g. --pipeline-arg=--batch-max-events=1024");
  cmd.add_option("--case-timeout-s", o->case_timeout_s, "Give up on a run after this long")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{86400}));
  cmd.add_option("--ingest-binary", o->ingest_binary,
                 "The kurrent-ingest binary that runs the broker, the store and the pipeline (default: the one "
                 "beside this binary)");
  return [o] { return run_bench(*o); };
}

}  // namespace kingest::bench
