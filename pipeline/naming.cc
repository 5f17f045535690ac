#include "pipeline/naming.h"

#include "core/json_writer.h"

namespace kingest::pipeline {

absl::StatusOr<StreamNameTemplate> StreamNameTemplate::parse(std::string_view text) {
  StreamNameTemplate t;
  t.text_ = std::string(text);
  bool has_id = false;
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find('{', i);
    if (open == std::string_view::npos) {
      t.parts_.emplace_back(Part::kLiteral, std::string(text.substr(i)));
      break;
    }
    if (open > i) t.parts_.emplace_back(Part::kLiteral, std::string(text.substr(i, open - i)));
    size_t close = text.find('}', open);
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("stream name template '" + t.text_ + "': '{' at position " +
                                        std::to_string(open) + " is never closed");
    }
    auto name = text.substr(open + 1, close - open - 1);
    if (name == "AggregateType") {
      t.parts_.emplace_back(Part::kAggregateType, "");
    } else if (name == "AggregateId") {
      t.parts_.emplace_back(Part::kAggregateId, "");
      has_id = true;
    } else if (name == "EventType") {
      t.parts_.emplace_back(Part::kEventType, "");
    } else {
      return absl::InvalidArgumentError("stream name template '" + t.text_ + "': unknown placeholder {" +
                                        std::string(name) + "} (use {AggregateType}, {AggregateId}, {EventType})");
    }
    i = close + 1;
  }
  if (!has_id) {
    return absl::InvalidArgumentError("stream name template '" + t.text_ +
                                      "' must contain {AggregateId}: one stream per aggregate");
  }
  return t;
}

std::string StreamNameTemplate::render(const DomainEvent& e) const {
  std::string out;
  out.reserve(e.aggregate_type.size() + e.aggregate_id.size() + 8);
  for (const auto& [part, lit] : parts_) {
    switch (part) {
      case Part::kLiteral: out += lit; break;
      case Part::kAggregateType: out += e.aggregate_type; break;
      case Part::kAggregateId: out += e.aggregate_id; break;
      case Part::kEventType: out += e.event_type; break;
    }
  }
  return out;
}

absl::StatusOr<VersionBase> VersionBase::parse(std::string_view text) {
  if (text == "1") return VersionBase{Kind::kOneBased};
  if (text == "0") return VersionBase{Kind::kZeroBased};
  if (text == "none") return VersionBase{Kind::kNone};
  return absl::InvalidArgumentError("version base '" + std::string(text) +
                                    "': use 1 (aggregateVersion 1 is revision 0), 0, or none");
}

std::string VersionBase::to_string() const {
  switch (kind) {
    case Kind::kOneBased: return "1";
    case Kind::kZeroBased: return "0";
    case Kind::kNone: return "none";
  }
  return "?";
}

std::optional<uint64_t> VersionBase::revision_of(int64_t version) const {
  if (version < base()) return std::nullopt;
  return uint64_t(version - base());
}

Uuid derive_event_id(const DomainEvent& e, std::string_view stream, uint64_t revision) {
  if (auto id = Uuid::parse(e.event_id)) return *id;
  std::string name;
  name.reserve(stream.size() + e.event_type.size() + e.event_id.size() + e.payload.size() + 32);
  name.append(stream).push_back('\x1f');
  name.append(std::to_string(revision)).push_back('\x1f');
  name.append(e.event_type).push_back('\x1f');
  name.append(e.event_id).push_back('\x1f');
  name.append(e.payload);
  return Uuid::v5(kEventIdNamespace, name);
}

std::string build_metadata(const DomainEvent& e, const Uuid& id, const std::optional<Uuid>& previous_id,
                           const SourceRef& source) {
  JsonWriter w;
  std::string own_id = id.to_string();
  const std::string& correlation = e.correlation_id.empty() ? own_id : e.correlation_id;
  w.begin_object();
  w.key("$correlationId").value(correlation);
  if (!e.causation_id.empty()) {
    w.key("$causationId").value(e.causation_id);
  } else if (previous_id) {
    w.key("$causationId").value(previous_id->to_string());
  } else {
    w.key("$causationId").value(correlation);
  }
  if (!e.occurred_at.empty()) w.key("occurredAt").value(e.occurred_at);
  if (!e.event_id.empty() && e.event_id != own_id) w.key("eventId").value(e.event_id);
  w.key("aggregateVersion").value(e.aggregate_version);
  if (!e.content_type.empty() && e.content_type != kJsonContentType && e.content_type != kBytesContentType) {
    w.key("payloadContentType").value(e.content_type);
  }
  w.key("source").begin_object();
  w.key("topic").value(source.topic).key("partition").value(int64_t{source.partition}).key("offset").value(source.offset);
  w.end_object();
  w.end_object();
  return w.take();
}

bool breaks_category_projection(std::string_view aggregate_type) {
  return aggregate_type.find('-') != std::string_view::npos;
}

}  // namespace kingest::pipeline
