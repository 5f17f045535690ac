// JSON encoding: an event as the NestJS publisher writes it (flat) or in the nested shape.
#include "codecs/json_codec.h"

#include "codecs/internal/json_decoding.h"
#include "core/json_writer.h"

#include <charconv>
#include <string>
#include <string_view>

namespace kingest::codecs {
namespace {

using json_internal::trim;

bool is_object_text(std::string_view s) { return s.size() >= 2 && s.front() == '{' && s.back() == '}'; }

void append_key(std::string& out, bool& first, std::string_view key) {
  if (!first) out.push_back(',');
  first = false;
  out.push_back('"');
  out.append(key);
  out.append("\":");
}

}  // namespace

std::string encode_json(const DomainEvent& event, JsonShape shape) {
  const std::string_view payload = trim(event.payload);
  std::string out;
  out.reserve(160 + event.event_id.size() + event.event_type.size() + event.aggregate_id.size() +
              event.aggregate_type.size() + event.correlation_id.size() + event.causation_id.size() +
              event.occurred_at.size() + payload.size());
  bool first = true;
  out.push_back('{');
  if (!event.event_id.empty()) {
    append_key(out, first, "eventId");
    append_json_string(out, event.event_id);
  }
  append_key(out, first, "eventType");
  append_json_string(out, event.event_type);
  append_key(out, first, "aggregateId");
  append_json_string(out, event.aggregate_id);
  append_key(out, first, "aggregateType");
  append_json_string(out, event.aggregate_type);
  append_key(out, first, "aggregateVersion");
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, event.aggregate_version).ptr);
  if (!event.correlation_id.empty()) {
    append_key(out, first, "correlationId");
    append_json_string(out, event.correlation_id);
  }
  if (!event.causation_id.empty()) {
    append_key(out, first, "causationId");
    append_json_string(out, event.causation_id);
  }
  if (!event.occurred_at.empty()) {
    append_key(out, first, "occurredOn");
    append_json_string(out, event.occurred_at);
  }
  if (!payload.empty() && !is_object_text(payload)) {
    // Not an object's text: carried as a JSON string so the output stays valid JSON.
    append_key(out, first, "data");
    append_json_string(out, event.payload);
  } else if (shape == JsonShape::kNested) {
    append_key(out, first, "data");
    out.append(payload.empty() ? std::string_view("{}") : payload);
  } else if (!payload.empty()) {
    const std::string_view members = trim(payload.substr(1, payload.size() - 2));
    if (!members.empty()) {
      out.push_back(',');
      out.append(members);
    }
  }
  out.push_back('}');
  return out;
}

}  // namespace kingest::codecs
