// `kurrent-ingest streams`: the streams of a KurrentDB with their event counts and last revisions,
// from one forwards pass over $all.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <unordered_map>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/inspect_output.h"
#include "inspect/event_json.h"
#include "pipeline/run_report.h"

namespace kingest::cli {
namespace {

struct StreamsOptions {
  std::string prefix;
  uint64_t limit = 0;
  std::string format = "auto";
  KurrentFlags kurrent;
};

int run_streams(const StreamsOptions& o) {
  log_to_stderr();
  bool usage_fault = false;
  auto client = connect_kurrent(o.kurrent, {}, std::nullopt, &usage_fault);
  if (!client.ok()) return usage_fault ? usage_error(client.status()) : fatal_error(client.status());
  // System streams ($...) only when the prefix asks for them.
  const bool system = !o.prefix.empty() && o.prefix.front() == '$';
  std::unordered_map<std::string, inspect::StreamSummary> by_name;
  constexpr uint64_t kPage = 8192;
  uint64_t from = 0;
  for (;;) {
    // Each page starts at the last event seen (positions are inclusive and need not be dense).
    auto page = (*client)->read_all(from, kPage);
    if (!page.ok()) return fatal_error(page.status());
    for (const auto& e : *page) {
      if (from != 0 && e.position == from) continue;
      if (!e.stream.starts_with(o.prefix) || (!system && e.stream.starts_with("$"))) continue;
      auto& s = by_name[e.stream];
      if (s.events == 0) {
        s.stream = e.stream;
        s.first_created_ticks = e.created_ticks;
      }
      ++s.events;
      s.last_revision = std::max(s.last_revision, e.revision.value());
      s.last_created_ticks = e.created_ticks;
      s.last_position = e.position;
    }
    if (page->size() < kPage) break;
    from = page->back().position;
  }
  (*client)->close();
  std::vector<inspect::StreamSummary> out;
  out.reserve(by_name.size());
  for (auto& [name, s] : by_name) out.push_back(std::move(s));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.stream < b.stream; });
  if (o.limit > 0 && out.size() > o.limit) out.resize(o.limit);
  print_summaries(std::cout, output_format(o.format), out);
  return kExitDone;
}

}  // namespace

void register_streams(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<StreamsOptions>();
  auto* cmd = app.add_subcommand("streams", "List KurrentDB's streams with their event counts and last revisions (from $all)");
  cmd->add_option("--prefix", o->prefix, "Only streams whose names start with this ($ for system streams)");
  cmd->add_option("--limit", o->limit, "Print at most this many streams, by name (0: all)")->capture_default_str();
  add_format_option(*cmd, o->format);
  cmd->add_option("--kurrent", o->kurrent.url,
                  "KurrentDB connection string (default: $KURRENT_CONNECTION_STRING, then "
                  "$EVENTSTORE_CONNECTION_STRING)");
  cmd->callback([o, set_action] { set_action([o] { return run_streams(*o); }); });
}

}  // namespace kingest::cli
