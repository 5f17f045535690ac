// Output of `read` and `streams`: pretty JSON (a terminal), NDJSON (a pipe) or a table.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "core/sink.h"
#include "inspect/event_json.h"

namespace kingest::cli {

enum class OutputFormat { kJson, kNdjson, kTable };

// "json" | "ndjson" | "table"; "auto": json on a terminal, ndjson otherwise.
OutputFormat output_format(const std::string& name);
void add_format_option(CLI::App& cmd, std::string& format);

// Prints events as they come (json: one pretty array, closed by `finish`).
class EventPrinter {
 public:
  EventPrinter(std::ostream& out, OutputFormat format) : out_(out), format_(format) {}
  void event(const RecordedEventData& e);
  void finish();

 private:
  std::ostream& out_;
  OutputFormat format_;
  size_t printed_ = 0;
};

// Log lines go to stderr, so that stdout carries only the command's data (a pipe gets clean NDJSON).
void log_to_stderr();

void print_summaries(std::ostream& out, OutputFormat format, const std::vector<inspect::StreamSummary>& streams);

}  // namespace kingest::cli
