#include "pipeline/run_report.h"

#include <cstdio>
#include <fstream>

#include "core/json_writer.h"

namespace kingest::pipeline {

std::string RunReport::to_json() const {
  JsonWriter w;
  w.begin_object();
  w.key("schema").value(kReportSchema);
  w.key("command").value(command);
  w.key("sink").value(sink);
  w.key("append_mode").value(append_mode);
  w.key("outcome").value(outcome);
  w.key("events_read").value(stats.events_read);
  w.key("events_appended").value(stats.events_appended);
  w.key("duplicates").value(stats.duplicates);
  w.key("conflicts").value(stats.conflicts);
  w.key("dead_lettered").value(stats.dead_lettered);
  w.key("streams").value(stats.streams);
  w.key("batches").value(stats.batches);
  w.key("appends").value(stats.appends);
  w.key("streams_on_several_partitions").value(stats.streams_on_several_partitions);
  w.key("events_reordered").value(stats.events_reordered);
  w.key("max_reorder_wait_ms").value(stats.max_reorder_wait_ms);
  w.key("elapsed_s").value(elapsed_s);
  w.key("events_per_s").value(events_per_s());
  if (events_produced) w.key("events_produced").value(*events_produced);
  if (verified) w.key("verified").value(*verified);
  if (!error.empty()) w.key("error").value(error);
  for (const auto& [k, v] : text) w.key(k).value(v);
  for (const auto& [k, v] : numbers) w.key(k).value(v);
  for (const auto& [k, fields] : objects) {
    w.key(k).begin_object();
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
