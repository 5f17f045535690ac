// The harness's options and results, shared by the runs (harness.cc) and the report (report.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"

#ifndef KI_SOURCE_DIR
#define KI_SOURCE_DIR "."
#endif

namespace kingest::bench {

struct BenchOptions {
  cli::WorkloadFlags workload;
  std::string shape = "both";
  std::string store_api = "multi";
  int runs = 3;
  std::string cases = "a,b,s,s-file,c,d,d-file,e,f";
  std::string json;
  std::string report;
  std::string work_dir;
  bool keep = false;
  int partitions = 0;  // 0: enough for the data
  uint64_t unbatched_events = 20000;
  uint64_t peer_events = 5000;
  std::string peer_dir = std::string(KI_SOURCE_DIR) + "/bench/peers/nestjs-subscriber";
  std::string node = "node";
  std::string ingest_binary;  // empty: kurrent-ingest beside this binary
  std::vector<std::string> pipeline_args;
  int64_t case_timeout_s = 3600;
};

struct CaseInfo {
  std::string id;
  std::string name;
  std::string what;
};

// One run of one case.
struct Measurement {
  uint64_t events = 0;
  double seconds = 0;
  double cpu_s = 0;
  double peak_rss_mib = 0;
  std::optional<double> p50_ms, p99_ms, events_per_append, events_per_transaction;
  std::optional<double> store_cpu_s;  // the serve-store process, for the whole case
  double broker_cpu_s = 0;            // the broker process while the case ran
  std::string append_mode;            // the replay's, from its report
  [[nodiscard]] double rate() const { return seconds > 0 ? double(events) / seconds : 0; }
  [[nodiscard]] double cpu_per_event() const { return events > 0 ? cpu_s / double(events) : 0; }
};

struct CaseResult {
  CaseInfo info;
  std::vector<Measurement> runs;
  [[nodiscard]] const Measurement* best() const {
    const Measurement* b = nullptr;
    for (const auto& m : runs) {
      if (b == nullptr || m.rate() > b->rate()) b = &m;
    }
    return b;
  }
  [[nodiscard]] double max_rss() const {
    double r = 0;
    for (const auto& m : runs) r = std::max(r, m.peak_rss_mib);
    return r;
  }
};

// One data shape's data set and its cases' results.
struct ShapeResult {
  std::string name;  // deep | wide
  uint64_t events = 0;
  uint64_t streams = 0;
  double bytes_per_event = 0;
  std::vector<std::string> topics;
  int partitions = 0;
  uint64_t unbatched_events = 0;
  uint64_t peer_events = 0;
  std::vector<CaseResult> results;
};

// Prints every shape's table, ratios and targets, and writes --json and --report.
void print_and_write(const BenchOptions& o, const std::vector<ShapeResult>& shapes);

}  // namespace kingest::bench
