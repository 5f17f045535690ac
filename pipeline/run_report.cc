#include "pipeline/run_report.h"

#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <string_view>

#include "core/json_writer.h"

namespace kingest::pipeline {

std::string RunReport::to_json() const {
  JsonWriter w;
  // Each key once: strict JSON readers reject duplicates, and a figure that a command also puts in
  // `text` or `numbers` under a fixed field's name must not shadow it.
  std::set<std::string, std::less<>> written;
  auto key = [&](std::string_view k) -> bool {
    if (!written.emplace(k).second) return false;
    w.key(k);
    return true;
  };
  w.begin_object();
  if (key("schema")) w.value(kReportSchema);
  if (key("command")) w.value(command);
  if (key("sink")) w.value(sink);
  if (key("append_mode")) w.value(append_mode);
  if (key("outcome")) w.value(outcome);
  if (key("events_read")) w.value(stats.events_read);
  if (key("events_appended")) w.value(stats.events_appended);
  if (key("duplicates")) w.value(stats.duplicates);
  if (key("conflicts")) w.value(stats.conflicts);
  if (key("dead_lettered")) w.value(stats.dead_lettered);
  if (key("streams")) w.value(stats.streams);
  if (key("batches")) w.value(stats.batches);
  if (key("appends")) w.value(stats.appends);
  if (key("streams_on_several_partitions")) w.value(stats.streams_on_several_partitions);
  if (key("events_reordered")) w.value(stats.events_reordered);
  if (key("max_reorder_wait_ms")) w.value(stats.max_reorder_wait_ms);
  if (key("stream_reads")) w.value(stats.stream_reads);
  if (key("stream_cache_evictions")) w.value(stats.stream_cache_evictions);
  if (key("elapsed_s")) w.value(elapsed_s);
  if (key("events_per_s")) w.value(events_per_s());
  if (events_produced && key("events_produced")) w.value(*events_produced);
  if (verified && key("verified")) w.value(*verified);
  if (!error.empty() && key("error")) w.value(error);
  for (const auto& [k, v] : text) {
    if (key(k)) w.value(v);
  }
  for (const auto& [k, v] : numbers) {
    if (key(k)) w.value(v);
  }
  for (const auto& [k, fields] : objects) {
    if (!key(k)) continue;
    w.begin_object();
    for (const auto& [name, v] : fields) w.key(name).value(v);
    w.end_object();
  }
  w.end_object();
  return w.take();
}

absl::Status write_report(const RunReport& report, const std::string& path) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return absl::InvalidArgumentError("cannot write report to " + path);
    out << report.to_json() << '\n';
    if (!out.flush()) return absl::InvalidArgumentError("cannot write report to " + path);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return absl::InvalidArgumentError("cannot write report to " + path);
  return absl::OkStatus();
}

}  // namespace kingest::pipeline
