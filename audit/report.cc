// The audit report (counts, examples, JSON and text), the finding and --store-read names, and the
// dead-letter file as the audit reads it.
#include "audit/audit.h"

#include <simdjson.h>

#include <fstream>
#include <sstream>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "core/json_writer.h"

namespace kingest::audit {
namespace {

std::string revision_text(const std::optional<uint64_t>& r) { return r ? std::to_string(*r) : std::string("-"); }

}  // namespace

std::string_view finding_name(Finding f) {
  switch (f) {
    case Finding::kOk:
      return "ok";
    case Finding::kMissing:
      return "missing";
    case Finding::kExtra:
      return "extra";
    case Finding::kMisordered:
      return "misordered";
    case Finding::kMismatched:
      return "mismatched";
    case Finding::kDeadLettered:
      return "dead_lettered";
    case Finding::kUndecodable:
      return "undecodable";
  }
  return "?";
}

std::string_view to_string(StoreRead r) {
  switch (r) {
    case StoreRead::kAuto:
      return "auto";
    case StoreRead::kStreams:
      return "streams";
    case StoreRead::kAll:
      return "all";
  }
  return "?";
}

absl::StatusOr<StoreRead> parse_store_read(std::string_view text) {
  for (StoreRead r : {StoreRead::kAuto, StoreRead::kStreams, StoreRead::kAll}) {
    if (text == to_string(r)) return r;
  }
  return absl::InvalidArgumentError("--store-read '" + std::string(text) + "': expected auto, streams or all");
}

bool AuditReport::accounted() const {
  return count(Finding::kMissing) == 0 && count(Finding::kExtra) == 0 && count(Finding::kMisordered) == 0 &&
         count(Finding::kMismatched) == 0 && count(Finding::kUndecodable) == 0;
}

std::string AuditReport::to_json() const {
  JsonWriter w;
  w.begin_object();
  w.key("accounted").value(accounted());
  w.key("messages").value(messages);
  w.key("streams").value(streams);
  w.key("store_events_read").value(store_events_read);
  w.key("store_read").value(store_read);
  if (!store_read_note.empty()) w.key("store_read_note").value(store_read_note);
  for (size_t i = 0; i < kFindingCount; ++i) w.key(finding_name(Finding(i))).value(counts[i]);
  w.key("kafka_s").value(kafka_s);
  w.key("store_s").value(store_s);
  w.key("seconds").value(seconds);
  w.key("messages_per_s").value(seconds > 0 ? double(messages) / seconds : 0.0);
  w.key("examples").begin_object();
  for (size_t i = 0; i < kFindingCount; ++i) {
    if (Finding(i) == Finding::kOk || Finding(i) == Finding::kDeadLettered) continue;
    w.key(finding_name(Finding(i))).begin_array();
    for (const auto& ex : examples[i]) {
      w.begin_object();
      if (!ex.stream.empty()) w.key("stream").value(ex.stream);
      if (ex.revision) w.key("revision").value(*ex.revision);
      if (!ex.topic.empty()) {
        w.key("topic").value(ex.topic).key("partition").value(int64_t{ex.partition}).key("offset").value(ex.offset);
      }
      w.key("detail").value(ex.detail);
      w.end_object();
    }
    w.end_array();
  }
  w.end_object();
  w.end_object();
  return w.take();
}

std::string AuditReport::to_text() const {
  std::ostringstream out;
  out << "audit: " << messages << " message(s), " << streams << " stream(s), " << store_events_read
      << " store event(s) read (" << (store_read == "all" ? "$all" : "stream by stream") << ") in " << seconds << " s";
  if (seconds > 0) out << " (" << uint64_t(double(messages) / seconds) << " messages/s)";
  out << "\n";
  if (!store_read_note.empty()) out << store_read_note << "\n";
  for (size_t i = 0; i < kFindingCount; ++i) out << (i ? ", " : "") << finding_name(Finding(i)) << ": " << counts[i];
  out << "\n";
  for (size_t i = 0; i < kFindingCount; ++i) {
    for (const auto& ex : examples[i]) {
      out << finding_name(Finding(i)) << ":";
      if (!ex.stream.empty()) out << " stream " << ex.stream << " revision " << revision_text(ex.revision);
      if (!ex.topic.empty()) out << " (" << ex.topic << "[" << ex.partition << "]@" << ex.offset << ")";
      out << ": " << ex.detail << "\n";
    }
  }
  out << "accounted: " << (accounted() ? "true" : "false") << "\n";
  return out.str();
}

uint64_t content_hash(std::string_view type, std::string_view content_type, std::string_view data) {
  return absl::HashOf(type, content_type, data);
}

absl::StatusOr<std::set<SourcePosition>> read_dead_letter_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError("--dlq-file " + path + ": cannot read it");
  std::set<SourcePosition> out;
  simdjson::ondemand::parser parser;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    simdjson::padded_string padded(line);
    auto bad = [&](const char* what) {
      return absl::InvalidArgumentError(
          absl::StrCat("--dlq-file ", path, " line ", n, ": ", what, " (expected the ingest's NDJSON dead letters)"));
    };
    simdjson::ondemand::document doc;
    if (parser.iterate(padded).get(doc) != simdjson::SUCCESS) return bad("not JSON");
    SourcePosition p;
    std::string_view topic;
    int64_t partition = 0;
    if (doc["topic"].get_string().get(topic) != simdjson::SUCCESS) return bad("no topic");
    if (doc["partition"].get_int64().get(partition) != simdjson::SUCCESS) return bad("no partition");
    if (doc["offset"].get_int64().get(p.offset) != simdjson::SUCCESS) return bad("no offset");
    p.topic = std::string(topic);
    p.partition = int32_t(partition);
    out.insert(std::move(p));
  }
  return out;
}

}  // namespace kingest::audit
