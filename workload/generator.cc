#include "workload/generator.h"

#include <ctime>

#include "codecs/codec.h"
#include "core/json_writer.h"
#include "core/uuid.h"

namespace kingest::workload {
namespace {

std::string iso8601_ms(int64_t epoch_ms) {
  std::time_t secs = epoch_ms / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, int(epoch_ms % 1000));
  return buf;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A random-looking (version 4 layout) UUID that follows from its inputs alone; far cheaper than
// SHA-1, which matters because the demo generates while it ingests on the same cores.
std::string seeded_uuid(uint64_t seed, uint64_t kind, uint64_t a, uint64_t b) {
  uint64_t hi = splitmix64(seed ^ splitmix64(kind ^ splitmix64(a ^ splitmix64(b))));
  uint64_t lo = splitmix64(hi ^ 0x6a09e667f3bcc909ULL);
  Uuid::Bytes bytes{};
  for (int i = 0; i < 8; ++i) {
    bytes[size_t(i)] = uint8_t(hi >> (56 - 8 * i));
    bytes[8 + size_t(i)] = uint8_t(lo >> (56 - 8 * i));
  }
  bytes[6] = uint8_t((bytes[6] & 0x0F) | 0x40);
  bytes[8] = uint8_t((bytes[8] & 0x3F) | 0x80);
  return Uuid(bytes).to_string();
}

const char* kWords[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"};

}  // namespace

std::optional<Format> parse_format(std::string_view name) {
  if (name == "json") return Format::kJson;
  if (name == "protobuf") return Format::kProtobuf;
  if (name == "flatbuffers") return Format::kFlatBuffers;
  if (name == "mixed") return Format::kMixed;
  return std::nullopt;
}

const std::vector<AggregateKind>& seed_domain() {
  static const std::vector<AggregateKind> kinds = {
      {"System", "system-events", "SystemRegistered", {"SystemUpdated", "SystemOwnerChanged", "SystemDecommissioned"}},
      {"Vulnerability", "vulnerability-events", "VulnerabilityDetected",
       {"VulnerabilityAssessed", "VulnerabilitySeverityChanged", "VulnerabilityResolved"}},
      {"Task", "task-events", "TaskCreated", {"TaskAssigned", "TaskUpdated", "TaskCompleted"}},
      {"Relationship", "relationship-events", "RelationshipCreated", {"RelationshipUpdated", "RelationshipRemoved"}},
  };
  return kinds;
}

Generator::Generator(GeneratorOptions options) : options_(std::move(options)), rng_(options_.seed) {
  aggregate_count_ = options_.aggregates != 0 ? options_.aggregates : std::max<uint64_t>(1, options_.events / 20);
  if (aggregate_count_ > options_.events && options_.events > 0) aggregate_count_ = options_.events;
  if (options_.payload_max < options_.payload_min) options_.payload_max = options_.payload_min;
  next_version_.assign(aggregate_count_, 1);
  aggregate_ids_.resize(aggregate_count_);
  remaining_.assign(aggregate_count_, uint32_t(options_.events / std::max<uint64_t>(1, aggregate_count_)));
  for (uint64_t i = 0; i < options_.events % std::max<uint64_t>(1, aggregate_count_); ++i) ++remaining_[i];
  for (uint64_t i = 0; i < aggregate_count_; ++i) {
    if (remaining_[i] > 0) live_.push_back(i);
  }
}

std::vector<std::string> Generator::topics() const {
  if (!options_.topics.empty()) return options_.topics;
  std::vector<std::string> out;
  for (const auto& k : seed_domain()) out.push_back(k.topic);
  return out;
}

const std::string& Generator::aggregate_id(uint64_t index) {
  std::string& id = aggregate_ids_[index];
  if (id.empty()) id = seeded_uuid(options_.seed, 1, index, 0);
  return id;
}

std::string Generator::payload_for(const AggregateKind& kind, uint64_t aggregate, int64_t version) {
  size_t target = options_.payload_min + (options_.payload_max > options_.payload_min
                                              ? size_t(rng_() % (options_.payload_max - options_.payload_min + 1))
                                              : 0);
  JsonWriter w;
  w.begin_object();
  if (kind.type == "System") {
    w.key("systemName").value("system-" + std::to_string(aggregate));
    w.key("environment").value(version % 2 == 0 ? "production" : "staging");
  } else if (kind.type == "Vulnerability") {
    w.key("cveId").value("CVE-2024-" + std::to_string(10000 + aggregate % 90000));
    w.key("severity").value(std::string(version % 3 == 0 ? "high" : "medium"));
    w.key("cvssScore").raw(std::to_string(4 + int(aggregate % 6)) + "." + std::to_string(version % 10));
  } else if (kind.type == "Task") {
    w.key("title").value("タスク " + std::to_string(aggregate) + " / 対応 " + std::to_string(version));
    w.key("assignee").value("user-" + std::to_string(aggregate % 97));
  } else {
    w.key("sourceId").value(aggregate_id((aggregate * 7 + 1) % aggregate_count_));
    w.key("targetId").value(aggregate_id((aggregate * 13 + 5) % aggregate_count_));
    w.key("relationType").value("depends-on");
  }
  w.key("revisionNote").value(int64_t{version});
  // Fill the description up to the target size with words (and, now and then, Japanese text).
  std::string text;
  size_t base = w.str().size() + 20;
  while (base + text.size() < target) {
    if (rng_() % 16 == 0) {
      text += "脆弱性の説明 ";
    } else {
      text += kWords[rng_() % 10];
      text.push_back(' ');
    }
  }
  w.key("description").value(text);
  w.end_object();
  return w.take();
}

bool Generator::next(GeneratedEvent& out) {
  if (live_.empty()) return false;
  size_t pick = burst_pick_ ? *burst_pick_ : size_t(rng_() % live_.size());
  uint64_t agg = live_[pick];
  int64_t version = next_version_[agg]++;
  burst_pick_.reset();
  if (--remaining_[agg] == 0) {
    live_[pick] = live_.back();
    live_.pop_back();
  } else if (options_.burst) {
    burst_pick_ = pick;
  }
  const auto& kinds = seed_domain();
  const AggregateKind& kind = kinds[agg % kinds.size()];
  DomainEvent& e = out.event;
  e = DomainEvent{};
  e.aggregate_id = aggregate_id(agg);
  e.aggregate_type = kind.type;
  e.aggregate_version = version;
  e.event_type = version == 1 ? kind.created : kind.updates[size_t(rng_() % kind.updates.size())];
  e.event_id = seeded_uuid(options_.seed, 2, agg, uint64_t(version));
  e.correlation_id = seeded_uuid(options_.seed, 3, produced_ / 3, 0);
  e.occurred_at = iso8601_ms(1700000000000 + int64_t(produced_) * 7);
  e.payload = payload_for(kind, agg, version);
  out.topic = options_.topics.empty() ? kind.topic : options_.topics[agg % options_.topics.size()];
  out.key = e.aggregate_id;
  out.keyed = options_.keyed;
  out.stream = e.aggregate_type + "-" + e.aggregate_id;
  Format format = options_.format;
  if (format == Format::kMixed) format = static_cast<Format>(produced_ % 3);
  switch (format) {
    case Format::kProtobuf:
      out.value = codecs::encode_protobuf(e);
      out.content_type = codecs::content_type_for(codecs::Codec::kProtobuf);
      break;
    case Format::kFlatBuffers:
      out.value = codecs::encode_flatbuffers(e);
      out.content_type = codecs::content_type_for(codecs::Codec::kFlatBuffers);
      break;
    default:
      out.value = codecs::encode_json(e, codecs::JsonShape::kFlat);
      out.content_type = codecs::content_type_for(codecs::Codec::kJson);
  }
  ++produced_;
  return true;
}

}  // namespace kingest::workload
