// The harness's report: each shape's table, the ratios between its cases against their targets, the
// memory bounds, the rate each case's CPU allows on this machine, and the same as JSON (--json) and
// as the shared run report (--report).
#include <fmt/format.h>
#include <sched.h>

#include <fstream>
#include <iostream>
#include <thread>

#include "bench/results.h"
#include "core/json_writer.h"
#include "pipeline/run_report.h"

namespace kingest::bench {
namespace {

// A ratio of two cases of one shape: their rates, their own CPU per event, or the serve-store
// CPU per event of the first against the second's own (the store's ceiling runs in-process).
enum class Compare { kRate, kCpu, kStoreCpu };

struct Ratio {
  const char* key;
  const char* num;
  const char* den;
  Compare compare;
  double target;  // 0: reported only
  bool at_most;   // the target is an upper bound (a cost), else a lower one (a speed)
  const char* label;
};

const std::vector<Ratio>& all_ratios() {
  static const std::vector<Ratio> ratios = {
      {"e2e_vs_kafka", "d", "a", Compare::kRate, 0.35, false, "d/a"},
      {"e2e_vs_sink", "d", "b", Compare::kRate, 0.7, false, "d/b"},
      {"pipeline_vs_kafka", "c", "a", Compare::kRate, 0.6, false, "c/a"},
      {"batched_vs_unbatched", "d", "e", Compare::kRate, 20, false, "d/e"},
      {"vs_per_message_peer", "d", "f", Compare::kRate, 200, false, "d/f"},
      {"e2e_file_vs_kafka", "d-file", "a", Compare::kRate, 0, false, "d-file/a"},
      {"cpu_pipeline_vs_kafka", "d", "a", Compare::kCpu, 4, true, "CPU/ev d/a"},
      {"store_vs_store_raw", "d", "s", Compare::kStoreCpu, 2, true, "CPU/ev d-store/s"},
      {"store_file_vs_store_raw_file", "d-file", "s-file", Compare::kStoreCpu, 0, true, "CPU/ev d-file-store/s-file"},
  };
  return ratios;
}

const CaseResult* find_case(const ShapeResult& shape, const std::string& id) {
  for (const auto& r : shape.results) {
    if (r.info.id == id && r.best() != nullptr) return &r;
  }
  return nullptr;
}

std::optional<double> ratio_value(const ShapeResult& shape, const Ratio& ratio) {
  const CaseResult* n = find_case(shape, ratio.num);
  const CaseResult* d = find_case(shape, ratio.den);
  if (n == nullptr || d == nullptr) return std::nullopt;
  const Measurement& a = *n->best();
  const Measurement& b = *d->best();
  double num = 0, den = 0;
  switch (ratio.compare) {
    case Compare::kRate:
      num = a.rate(), den = b.rate();
      break;
    case Compare::kCpu:
      num = a.cpu_per_event(), den = b.cpu_per_event();
      break;
    case Compare::kStoreCpu:
      if (!a.store_cpu_s || a.events == 0) return std::nullopt;
      num = *a.store_cpu_s / double(a.events), den = b.cpu_per_event();
      break;
  }
  if (den <= 0) return std::nullopt;
  return num / den;
}

// The memory bounds: the largest pipeline process of the shape, and the end-to-end one alone.
struct RssBound {
  const char* key;
  std::vector<std::string> cases;
  double at_most;
  const char* label;
};

const std::vector<RssBound>& rss_bounds() {
  static const std::vector<RssBound> bounds = {
      {"peak_rss_mib", {"c", "d", "d-file", "e"}, 512, "c,d,d-file,e"},
      {"peak_rss_d_mib", {"d"}, 256, "d"},
  };
  return bounds;
}

std::optional<double> rss_value(const ShapeResult& shape, const RssBound& bound) {
  std::optional<double> v;
  for (const auto& id : bound.cases) {
    if (const CaseResult* r = find_case(shape, id)) v = std::max(v.value_or(0), r->max_rss());
  }
  return v;
}

// The cores the bench and its children may run on (they inherit its affinity).
unsigned usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return unsigned(CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// What a case's CPU allows on these cores: the CPU every process of the case spent per event (its
// own, serve-store's and the broker's) and the rate at which that would fill every core. A case
// near its bound is held by the machine's CPU; a rate ratio whose numerator's bound is below its
// target cannot be met on this machine at that CPU per event. The sampled cases (e, f) are left
// out: their processes' start-up and idle polling weigh on few events.
struct CpuBound {
  std::string id;
  double cpu_us_per_event = 0;
  double events_per_s_at_most = 0;
  double share_of_bound = 0;  // the case's rate / events_per_s_at_most
};

std::vector<CpuBound> cpu_bounds(const ShapeResult& shape, unsigned cores) {
  std::vector<CpuBound> out;
  for (const auto& r : shape.results) {
    const Measurement* m = r.best();
    if (m == nullptr || m->events == 0 || r.info.id == "e" || r.info.id == "f") continue;
    const double cpu_s = m->cpu_s + m->store_cpu_s.value_or(0) + m->broker_cpu_s;
    if (cpu_s <= 0) continue;
    CpuBound b{.id = r.info.id, .cpu_us_per_event = cpu_s * 1e6 / double(m->events)};
    b.events_per_s_at_most = double(cores) * 1e6 / b.cpu_us_per_event;
    b.share_of_bound = m->rate() / b.events_per_s_at_most;
    out.push_back(std::move(b));
  }
  return out;
}

// The largest d/a these cores allow at d's CPU per event (a's rate as measured).
std::optional<double> e2e_vs_kafka_at_cpu_bound(const ShapeResult& shape, const std::vector<CpuBound>& bounds) {
  const CaseResult* a = find_case(shape, "a");
  if (a == nullptr || a->best()->rate() <= 0) return std::nullopt;
  for (const auto& b : bounds) {
    if (b.id == "d") return b.events_per_s_at_most / a->best()->rate();
  }
  return std::nullopt;
}

void print_shape(const ShapeResult& shape) {
  auto ms = [](std::optional<double> v) { return v ? fmt::format("{:.2f}", *v) : std::string("-"); };
  std::cout << "\n"
            << fmt::format("shape {}: {} events, {} streams ({:.0f} events per stream)\n", shape.name, shape.events,
                           shape.streams, shape.streams ? double(shape.events) / double(shape.streams) : 0.0)
            << fmt::format("{:<6} {:<17} {:>9} {:>10} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>10}\n", "",
                           "case", "events", "events/s", "MB/s", "CPU s/M", "RSS MiB", "p50 ms", "p99 ms", "ev/app",
                           "|", "store s/M", "broker s/M");
  for (const auto& r : shape.results) {
    const Measurement* b = r.best();
    if (b == nullptr) continue;
    const double per_m = b->events ? 1e6 / double(b->events) : 0;
    std::cout << fmt::format("{:<6} {:<17} {:>9} {:>10.0f} {:>7.1f} {:>10.2f} {:>8.0f} {:>8} {:>8} {:>8} {:>7} {:>9} "
                             "{:>10}\n",
                             r.info.id, r.info.name, b->events, b->rate(), b->rate() * shape.bytes_per_event / 1e6,
                             b->cpu_s * per_m, r.max_rss(), ms(b->p50_ms), ms(b->p99_ms),
                             b->events_per_append ? fmt::format("{:.1f}", *b->events_per_append) : "-", "|",
                             b->store_cpu_s ? fmt::format("{:.2f}", *b->store_cpu_s * per_m) : "-",
                             r.info.id[0] == 's' ? std::string("-") : fmt::format("{:.2f}", b->broker_cpu_s * per_m));
  }
  std::cout << "\nratios of shape " << shape.name << " (best runs of this invocation):\n";
  for (const auto& ratio : all_ratios()) {
    auto v = ratio_value(shape, ratio);
    if (!v) continue;
    std::string line = fmt::format("  {:<29} {:<26} {:>9.3f}", ratio.key, ratio.label, *v);
    if (ratio.target > 0) {
      const bool met = ratio.at_most ? *v <= ratio.target : *v >= ratio.target;
      line += fmt::format("   target {} {:<5} {}", ratio.at_most ? "<=" : ">=", ratio.target, met ? "met" : "NOT met");
    }
    std::cout << line << "\n";
  }
  for (const auto& bound : rss_bounds()) {
    auto v = rss_value(shape, bound);
    if (!v) continue;
    std::cout << fmt::format("  {:<29} {:<26} {:>9.0f}   target <= {} MiB {}\n", bound.key, bound.label, *v,
                             bound.at_most, *v <= bound.at_most ? "met" : "NOT met");
  }
  const unsigned cores = usable_cores();
  const auto bounds = cpu_bounds(shape, cores);
  if (bounds.empty()) return;
  std::cout << fmt::format("\ncpu bound of shape {} ({} cores; CPU per event of every process of the case: its own, "
                           "serve-store's, the broker's):\n",
                           shape.name, cores);
  bool over = false;
  for (const auto& b : bounds) {
    const CaseResult* r = find_case(shape, b.id);
    std::cout << fmt::format("  {:<6} {:<17} {:>8.2f} CPU us/event   at most {:>10.0f} events/s   ran at {:>3.0f} %\n",
                             b.id, r->info.name, b.cpu_us_per_event, b.events_per_s_at_most, b.share_of_bound * 100);
    over = over || b.share_of_bound > 1;
  }
  if (over) {
    // The rate runs from the first event to the last; serve-store's and the broker's CPU cover
    // the whole case, start-up and end included.
    std::cout << "  (over 100 %: the processes' start-up and end weigh on too few events for a bound)\n";
  }
  if (auto v = e2e_vs_kafka_at_cpu_bound(shape, bounds)) {
    std::cout << fmt::format("  {:<29} {:<26} {:>9.3f}   (the largest d/a these cores allow at d's CPU per event)\n",
                             "e2e_vs_kafka_at_cpu_bound", "d bound/a", *v);
  }
}

void write_shape_json(JsonWriter& w, const ShapeResult& shape, const BenchOptions& o) {
  w.begin_object();
  w.key("shape").value(shape.name);
  w.key("events").value(shape.events);
  w.key("streams").value(shape.streams);
  w.key("events_per_stream").value(shape.streams ? double(shape.events) / double(shape.streams) : 0.0);
  w.key("payload_bytes").value(o.workload.payload_bytes);
  w.key("bytes_per_event").value(shape.bytes_per_event);
  w.key("topics").begin_array();
  for (const auto& t : shape.topics) w.value(t);
  w.end_array();
  w.key("partitions_per_topic").value(shape.partitions);
  w.key("unbatched_sample_events").value(shape.unbatched_events);
  w.key("peer_sample_events").value(shape.peer_events);
  w.key("cases").begin_array();
  for (const auto& r : shape.results) {
    const Measurement* b = r.best();
    if (b == nullptr) continue;
    w.begin_object();
    w.key("id").value(r.info.id);
    w.key("name").value(r.info.name);
    w.key("what").value(r.info.what);
    w.key("events").value(b->events);
    w.key("events_per_s").value(b->rate());
    w.key("mb_per_s").value(b->rate() * shape.bytes_per_event / 1e6);
    w.key("cpu_s_per_m_events").value(b->cpu_per_event() * 1e6);
    w.key("peak_rss_mib").value(r.max_rss());
    if (b->p50_ms) w.key("append_latency_p50_ms").value(*b->p50_ms);
    if (b->p99_ms) w.key("append_latency_p99_ms").value(*b->p99_ms);
    if (b->events_per_append) w.key("events_per_append").value(*b->events_per_append);
    if (b->events_per_transaction) w.key("events_per_transaction").value(*b->events_per_transaction);
    // The other processes of the case: where the rest of the machine's CPU went.
    if (b->store_cpu_s && b->events) w.key("store_cpu_s_per_m_events").value(*b->store_cpu_s * 1e6 / double(b->events));
    if (b->events) w.key("broker_cpu_s_per_m_events").value(b->broker_cpu_s * 1e6 / double(b->events));
    w.key("runs_events_per_s").begin_array();
    for (const auto& m : r.runs) w.value(m.rate());
    w.end_array();
    w.end_object();
  }
  w.end_array();
  w.key("ratios").begin_object();
  for (const auto& ratio : all_ratios()) {
    if (auto v = ratio_value(shape, ratio)) w.key(ratio.key).value(*v);
  }
  w.end_object();
  for (const auto& bound : rss_bounds()) {
    if (auto v = rss_value(shape, bound)) w.key(bound.key).value(*v);
  }
  w.key("targets").begin_array();
  for (const auto& ratio : all_ratios()) {
    auto v = ratio_value(shape, ratio);
    if (!v || ratio.target <= 0) continue;
    w.begin_object();
    w.key("name").value(ratio.key);
    w.key("value").value(*v);
    w.key(ratio.at_most ? "at_most" : "at_least").value(ratio.target);
    w.key("met").value(ratio.at_most ? *v <= ratio.target : *v >= ratio.target);
    w.end_object();
  }
  for (const auto& bound : rss_bounds()) {
    auto v = rss_value(shape, bound);
    if (!v) continue;
    w.begin_object();
    w.key("name").value(bound.key);
    w.key("value").value(*v);
    w.key("at_most").value(bound.at_most);
    w.key("met").value(*v <= bound.at_most);
    w.end_object();
  }
  w.end_array();
  const unsigned cores = usable_cores();
  const auto bounds = cpu_bounds(shape, cores);
  w.key("cpu_bound").begin_object();
  w.key("cores").value(uint64_t(cores));
  w.key("cases").begin_array();
  for (const auto& b : bounds) {
    w.begin_object();
    w.key("id").value(b.id);
    w.key("cpu_us_per_event").value(b.cpu_us_per_event);
    w.key("events_per_s_at_most").value(b.events_per_s_at_most);
    w.key("share_of_bound").value(b.share_of_bound);
    w.end_object();
  }
  w.end_array();
  if (auto v = e2e_vs_kafka_at_cpu_bound(shape, bounds)) w.key("e2e_vs_kafka_at_cpu_bound").value(*v);
  w.end_object();
  w.end_object();
}

}  // namespace

void print_and_write(const BenchOptions& o, const std::vector<ShapeResult>& shapes) {
  for (const auto& shape : shapes) print_shape(shape);
  if (!o.json.empty()) {
    JsonWriter w;
    w.begin_object();
    w.key("schema").value("kurrent-ingest/bench/v2");
    w.key("runs").value(o.runs);
    w.key("store_api").value(o.store_api);
    w.key("pipeline_args").begin_array();
    for (const auto& a : o.pipeline_args) w.value(a);
    w.end_array();
    w.key("shapes_run").begin_array();
    for (const auto& shape : shapes) w.value(shape.name);
    w.end_array();
    w.key("shapes").begin_object();
    for (const auto& shape : shapes) {
      w.key(shape.name);
      write_shape_json(w, shape, o);
    }
    w.end_object();
    w.end_object();
    std::ofstream out(o.json, std::ios::trunc);
    out << w.str() << "\n";
    if (!out.flush()) {
      std::cerr << "error: cannot write --json " << o.json << "\n";
    } else {
      std::cout << "\nwrote " << o.json << "\n";
    }
  }
  if (!o.report.empty() && !shapes.empty()) {
    // The shared run report, of the first shape's best end-to-end run on mem-db; the numbers of
    // every shape, prefixed with its name.
    const ShapeResult& first = shapes.front();
    pipeline::RunReport report;
    report.command = "bench";
    report.sink = "kurrentdb-grpc";
    report.append_mode = "batch";
    report.outcome = "done";
    if (const CaseResult* d = find_case(first, "d")) {
      if (!d->best()->append_mode.empty()) report.append_mode = d->best()->append_mode;
      report.stats.events_read = d->best()->events;
      report.stats.events_appended = d->best()->events;
      report.elapsed_s = d->best()->seconds;
    }
    report.stats.streams = first.streams;
    for (const auto& shape : shapes) {
      for (const auto& r : shape.results) {
        if (r.best() != nullptr) report.numbers[shape.name + "_" + r.info.name + "_events_per_s"] = r.best()->rate();
      }
      for (const auto& ratio : all_ratios()) {
        if (auto v = ratio_value(shape, ratio)) report.numbers[shape.name + "_ratio_" + ratio.key] = *v;
      }
      for (const auto& bound : rss_bounds()) {
        if (auto v = rss_value(shape, bound)) report.numbers[shape.name + "_" + bound.key] = *v;
      }
      const auto bounds = cpu_bounds(shape, usable_cores());
      for (const auto& b : bounds) {
        report.numbers[shape.name + "_cpu_bound_" + b.id + "_events_per_s"] = b.events_per_s_at_most;
      }
      if (auto v = e2e_vs_kafka_at_cpu_bound(shape, bounds)) {
        report.numbers[shape.name + "_e2e_vs_kafka_at_cpu_bound"] = *v;
      }
    }
    if (auto s = pipeline::write_report(report, o.report); !s.ok()) std::cerr << "error: " << s.message() << "\n";
  }
}

}  // namespace kingest::bench
