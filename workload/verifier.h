// Verifies a sink holds exactly what a Generator produced: per stream, the event count, order
// (revision = version - 1), ids, types, payload bytes, and metadata ($correlationId, and
// $causationId = the previous event's id, or the correlation id for a stream's first event).
//
// Threads: reads streams in parallel (oneTBB) through Sink::read_forwards.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/sink.h"
#include "workload/generator.h"

namespace kingest::workload {

struct VerifyResult {
  bool ok = false;
  uint64_t streams_checked = 0;
  uint64_t events_checked = 0;
  uint64_t problem_count = 0;
  std::vector<std::string> problems;  // the first few, for the log
};

VerifyResult verify(const GeneratorOptions& produced, Sink& sink);

}  // namespace kingest::workload
