// The run report that `demo`, `replay`/`run` and kurrent-ingest-bench write (`--report FILE`);
// scripts rely on its fields. The exit codes that go with its `outcome` are cli/exit_codes.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "pipeline/ingest_engine.h"

namespace kingest::pipeline {

inline constexpr const char* kReportSchema = "kurrent-ingest/run-report/v1";

struct RunReport {
  std::string command;      // "demo", "replay", "run", "bench"
  std::string sink;         // Sink::name()
  std::string append_mode;  // Sink::append_mode()
  EngineStats stats;
  double elapsed_s = 0;
  std::optional<uint64_t> events_produced;
  std::optional<bool> verified;
  std::string outcome;      // "done", "dead-letters", "fatal", "interrupted", "not-verified"
  std::string error;        // the fatal error, when there is one
  std::map<std::string, std::string> text;  // further string fields (paths, versions)
  std::map<std::string, double> numbers;    // further measured figures
  // Further figures by name, written as JSON objects (e.g. lag_by_topic: topic -> events).
  std::map<std::string, std::map<std::string, double>> objects;

  [[nodiscard]] double events_per_s() const { return elapsed_s > 0 ? double(stats.events_appended) / elapsed_s : 0; }
  [[nodiscard]] std::string to_json() const;
};

// Writes the report atomically (temp file + rename).
absl::Status write_report(const RunReport& report, const std::string& path);

}  // namespace kingest::pipeline
