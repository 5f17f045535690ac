#include "cli/inspect_output.h"

#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iomanip>

namespace kingest::cli {
namespace {

std::string clip(std::string s, size_t n) {
  for (auto& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (s.size() > n) s = s.substr(0, n - 3) + "...";
  return s;
}

}  // namespace

OutputFormat output_format(const std::string& name) {
  if (name == "json") return OutputFormat::kJson;
  if (name == "ndjson") return OutputFormat::kNdjson;
  if (name == "table") return OutputFormat::kTable;
  return ::isatty(STDOUT_FILENO) ? OutputFormat::kJson : OutputFormat::kNdjson;
}

void add_format_option(CLI::App& cmd, std::string& format) {
  cmd.add_option("--format", format, "json (pretty), ndjson (one object a line) or table; default: json on a "
                                     "terminal, ndjson when piped")
      ->check(CLI::IsMember({"auto", "json", "ndjson", "table"}));
}

void EventPrinter::event(const RecordedEventData& e) {
  switch (format_) {
    case OutputFormat::kJson:
      out_ << (printed_ == 0 ? "[\n" : ",\n");
      {
        // Indented one level inside the array.
        std::string pretty = inspect::pretty_json(inspect::event_json(e));
        out_ << "  ";
        for (char c : pretty) {
          out_ << c;
          if (c == '\n') out_ << "  ";
        }
      }
      break;
    case OutputFormat::kNdjson:
      out_ << inspect::event_json(e) << '\n';
      break;
    case OutputFormat::kTable:
      if (printed_ == 0) {
        out_ << std::left << std::setw(9) << "REVISION" << ' ' << std::setw(27) << "CREATED" << ' ' << std::setw(36)
             << "ID" << ' ' << std::setw(28) << "TYPE" << ' ' << "DATA" << '\n';
      }
      out_ << std::left << std::setw(9) << e.revision.value() << ' ' << std::setw(27)
           << inspect::ticks_to_iso8601(e.created_ticks) << ' ' << std::setw(36) << e.id.to_string() << ' '
           << std::setw(28) << clip(e.type, 28) << ' '
           << clip(inspect::valid_json(e.data).value_or(e.data), 80) << '\n';
      break;
  }
  ++printed_;
}

void EventPrinter::finish() {
  if (format_ == OutputFormat::kJson) out_ << (printed_ == 0 ? "[]\n" : "\n]\n");
  out_.flush();
}

void log_to_stderr() {
  auto level = spdlog::get_level();
  auto logger = spdlog::stderr_color_mt("ki-stderr");
  logger->set_level(level);
  spdlog::set_default_logger(std::move(logger));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
}

void print_summaries(std::ostream& out, OutputFormat format, const std::vector<inspect::StreamSummary>& streams) {
  switch (format) {
    case OutputFormat::kJson: {
      out << "[";
      for (size_t i = 0; i < streams.size(); ++i) {
        out << (i ? ",\n  " : "\n  ") << inspect::summary_json(streams[i]);
      }
      out << (streams.empty() ? "]\n" : "\n]\n");
      break;
    }
    case OutputFormat::kNdjson:
      for (const auto& s : streams) out << inspect::summary_json(s) << '\n';
      break;
    case OutputFormat::kTable:
      out << std::left << std::setw(48) << "STREAM" << ' ' << std::setw(10) << "EVENTS" << ' ' << std::setw(13)
          << "LAST_REVISION" << ' ' << "LAST_CREATED" << '\n';
      for (const auto& s : streams) {
        out << std::left << std::setw(48) << s.stream << ' ' << std::setw(10) << s.events << ' ' << std::setw(13)
            << s.last_revision << ' ' << inspect::ticks_to_iso8601(s.last_created_ticks) << '\n';
      }
      break;
  }
  out.flush();
}

}  // namespace kingest::cli
