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
                           const SourceRef& source, const Uuid* run) {
  // Written directly (not through JsonWriter): it runs once per event on the engine's hot path.
  // UUIDs and the constant keys need no escaping; everything from the envelope goes through
  // append_json_string. The text is byte for byte what JsonWriter would write.
  std::string out;
  out.reserve(200 + e.correlation_id.size() + e.causation_id.size() + e.occurred_at.size() + e.event_id.size() +
              source.topic.size());
  auto quoted_id = [&out](const Uuid& u) {
    out.push_back('"');
    u.append_to(out);
    out.push_back('"');
  };
  out += R"({"$correlationId":)";
  if (e.correlation_id.empty()) {
    quoted_id(id);
  } else {
    append_json_string(out, e.correlation_id);
  }
  out += R"(,"$causationId":)";
  if (!e.causation_id.empty()) {
    append_json_string(out, e.causation_id);
  } else if (previous_id) {
    quoted_id(*previous_id);
  } else if (e.correlation_id.empty()) {
    quoted_id(id);
  } else {
    append_json_string(out, e.correlation_id);
  }
  if (!e.occurred_at.empty()) {
    out += R"(,"occurredAt":)";
    append_json_string(out, e.occurred_at);
  }
  const auto own_id = id.text();
  if (!e.event_id.empty() && std::string_view(e.event_id) != std::string_view(own_id.data(), own_id.size())) {
    out += R"(,"eventId":)";
    append_json_string(out, e.event_id);
  }
  out += R"(,"aggregateVersion":)";
  out += std::to_string(e.aggregate_version);
  if (!e.content_type.empty() && e.content_type != kJsonContentType && e.content_type != kBytesContentType) {
    out += R"(,"payloadContentType":)";
    append_json_string(out, e.content_type);
  }
  out += R"(,"source":{"topic":)";
  append_json_string(out, source.topic);
  out += R"(,"partition":)";
  out += std::to_string(source.partition);
  out += R"(,"offset":)";
  out += std::to_string(source.offset);
  out += '}';
  if (run != nullptr) {
    out += ",\"";
    out += kRunIdKey;
    out += "\":";
    quoted_id(*run);
  }
  out += '}';
  return out;
}

bool breaks_category_projection(std::string_view aggregate_type) {
  return aggregate_type.find('-') != std::string_view::npos;
}

}  // namespace kingest::pipeline
