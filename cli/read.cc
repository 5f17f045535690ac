// `kurrent-ingest read STREAM`: a stream's events (revision, id, type, created, data, metadata)
// from any KurrentDB; pretty JSON on a terminal, NDJSON when piped, or a table.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/numbers.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/inspect_output.h"
#include "inspect/event_json.h"
#include "pipeline/run_report.h"

namespace kingest::cli {
namespace {

struct ReadOptions {
  std::string stream;
  std::string from;  // REV | start | end (default: start, or end with --backwards)
  uint64_t count = 0;
  bool backwards = false;
  std::string format = "auto";
  KurrentFlags kurrent;
};

int run_read(const ReadOptions& o) {
  log_to_stderr();
  std::optional<uint64_t> from;
  if (!o.from.empty() && o.from != "start" && o.from != "end") {
    uint64_t rev = 0;
    if (!absl::SimpleAtoi(o.from, &rev)) {
      return usage_error(absl::InvalidArgumentError("--from '" + o.from + "': use a revision (0, 1, ...), start or end"));
    }
    from = rev;
  }
  if (o.from == "end" && !o.backwards) {
    std::cerr << "read: --from end without --backwards reads nothing (nothing follows the end)\n";
    return kExitDone;
  }
  const bool backwards = o.backwards;
  if (o.from == "start" && backwards) from = 0;  // backwards from the first event: just that one
  bool usage_fault = false;
  auto client = connect_kurrent(o.kurrent, {}, std::nullopt, &usage_fault);
  if (!client.ok()) return usage_fault ? usage_error(client.status()) : fatal_error(client.status());
  OutputFormat format = output_format(o.format);
  EventPrinter printer(std::cout, format);
  constexpr uint64_t kPage = 4096;
  uint64_t left = o.count == 0 ? UINT64_MAX : o.count;
  bool first = true;
  while (left > 0) {
    auto page = (*client)->read_stream(o.stream, from, std::min(left, kPage), backwards);
    if (!page.ok()) return fatal_error(page.status());
    if (page->deleted) return fatal_error(absl::NotFoundError("stream '" + o.stream + "' is deleted"));
    if (first && !page->found) {
      return fatal_error(absl::NotFoundError("stream '" + o.stream + "' does not exist at " + (*client)->endpoint()));
    }
    first = false;
    for (auto& e : page->events) {
      if (e.stream.empty()) e.stream = o.stream;
      printer.event(e);
    }
    const uint64_t asked = std::min(left, kPage);
    left -= std::min<uint64_t>(left, page->events.size());
    if (page->events.size() < asked) break;
    uint64_t last = page->events.back().revision.value();
    if (backwards) {
      if (last == 0) break;
      from = last - 1;
    } else {
      from = last + 1;
    }
  }
  printer.finish();
  (*client)->close();
  return kExitDone;
}

}  // namespace

void register_read(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<ReadOptions>();
  auto* cmd = app.add_subcommand("read", "Print a stream's events from KurrentDB");
  cmd->add_option("stream", o->stream, "Stream name")->required();
  cmd->add_option("--from", o->from, "Revision to start at, start, or end (default: start; end with --backwards)");
  cmd->add_option("--count", o->count, "Events to print at most (0: all)")->capture_default_str();
  cmd->add_flag("--backwards", o->backwards, "Newest first");
  add_format_option(*cmd, o->format);
  cmd->add_option("--kurrent", o->kurrent.url,
                  "KurrentDB connection string (default: $KURRENT_CONNECTION_STRING, then "
                  "$EVENTSTORE_CONNECTION_STRING)");
  cmd->callback([o, set_action] { set_action([o] { return run_read(*o); }); });
}

}  // namespace kingest::cli
