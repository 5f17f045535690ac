#include "pipeline/naming.h"

#include <array>
#include <cassert>
#include <charconv>
#include <cstring>

#include "core/json_writer.h"
#include "core/record_properties.h"

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
  render_into(e, out);
  return out;
}

void StreamNameTemplate::render_into(const DomainEvent& e, std::string& out) const {
  out.clear();
  for (const auto& [part, lit] : parts_) {
    switch (part) {
      case Part::kLiteral: out += lit; break;
      case Part::kAggregateType: out += e.aggregate_type; break;
      case Part::kAggregateId: out += e.aggregate_id; break;
      case Part::kEventType: out += e.event_type; break;
    }
  }
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

namespace {

// The metadata's fields in order, handed to `out` (JSON text or record properties): text(key, s)
// for a text from the envelope, id(key, uuid), integer(key, n), open(key) and close() around the
// source's object.
template <typename Out>
void metadata_fields(const DomainEvent& e, const Uuid& id, const std::optional<Uuid>& previous_id,
                     const SourceRef& source, const Uuid* run, Out& out) {
  if (e.correlation_id.empty()) {
    out.id("$correlationId", id);
  } else {
    out.text("$correlationId", e.correlation_id);
  }
  if (!e.causation_id.empty()) {
    out.text("$causationId", e.causation_id);
  } else if (previous_id) {
    out.id("$causationId", *previous_id);
  } else if (e.correlation_id.empty()) {
    out.id("$causationId", id);
  } else {
    out.text("$causationId", e.correlation_id);
  }
  if (!e.occurred_at.empty()) out.text("occurredAt", e.occurred_at);
  if (!e.event_id.empty()) {
    const auto own_id = id.text();
    if (std::string_view(e.event_id) != std::string_view(own_id.data(), own_id.size())) out.text("eventId", e.event_id);
  }
  out.integer("aggregateVersion", e.aggregate_version);
  if (!e.content_type.empty() && e.content_type != kJsonContentType && e.content_type != kBytesContentType) {
    out.text("payloadContentType", e.content_type);
  }
  out.open("source");
  out.text("topic", source.topic);
  out.integer("partition", source.partition);
  out.integer("offset", source.offset);
  out.close();
  if (run != nullptr) out.run_id(kRunIdKey, *run);
}

// JSON text. Written directly (not through JsonWriter): it runs once per event on the engine's
// hot path. UUIDs and the constant keys need no escaping; everything from the envelope goes
// through append_json_string. The text is byte for byte what JsonWriter would write.
struct JsonFields {
  std::string& out;
  bool first = true;
  void key(std::string_view k) {
    out.push_back(first ? '{' : ',');
    first = false;
    out.push_back('"');
    out.append(k);
    out.append("\":");
  }
  void text(std::string_view k, std::string_view s) {
    key(k);
    append_json_string(out, s);
  }
  void id(std::string_view k, const Uuid& u) {
    key(k);
    out.push_back('"');
    u.append_to(out);
    out.push_back('"');
  }
  void run_id(std::string_view k, const Uuid& u) { id(k, u); }
  void integer(std::string_view k, int64_t n) {
    key(k);
    char buf[24];
    out.append(buf, size_t(std::to_chars(buf, buf + sizeof buf, n).ptr - buf));
  }
  void open(std::string_view k) {
    key(k);
    first = true;
  }
  void close() { out.push_back('}'); }
};

// Record properties, in two passes of the same fields: sizing (`SizingFields`, a PropertySizer),
// then writing (`WritingFields`, a PropertyWriter into the room measured). The UUIDs' texts are made in the
// first pass and kept for the second; texts from the envelope are checked there too: they must be
// valid UTF-8 (protobuf strings), and `valid` turns false on one that is not, which only the JSON
// text carries (its bytes replaced).
struct PropertyIds {
  std::array<std::array<char, 36>, 3> texts{};
  size_t count = 0;
  size_t next = 0;  // the second pass's
};

// The run's id comes with the first event of every append, the same all run long: its text is
// made once per thread and run, not per append.
const std::array<char, Uuid::kTextSize>& run_id_text(const Uuid& run) {
  thread_local Uuid last;
  thread_local std::array<char, Uuid::kTextSize> text = last.text();
  if (run != last) {
    last = run;
    text = run.text();
  }
  return text;
}

struct SizingFields {
  PropertySizer& sizes;
  PropertyIds& ids;
  bool valid = true;
  void text(std::string_view k, std::string_view s) {
    valid = valid && is_valid_utf8(s);
    sizes.add_string(k, s);
  }
  void id(std::string_view k, const Uuid& u) {
    assert(ids.count < ids.texts.size());
    ids.texts[ids.count] = u.text();
    sizes.add_string(k, std::string_view(ids.texts[ids.count].data(), ids.texts[ids.count].size()));
    ++ids.count;
  }
  void run_id(std::string_view k, const Uuid& u) {
    const auto& t = run_id_text(u);
    sizes.add_string(k, std::string_view(t.data(), t.size()));
  }
  void integer(std::string_view k, int64_t n) { sizes.add_number(k, double(n)); }
  void open(std::string_view k) { sizes.open_object(k); }
  void close() { sizes.close_object(); }
};

struct WritingFields {
  PropertyWriter& out;
  const PropertySizer& sizes;
  PropertyIds& ids;
  size_t objects = 0;
  void text(std::string_view k, std::string_view s) { out.add_string(k, s); }
  void id(std::string_view k, const Uuid& /*u*/) {
    const auto& t = ids.texts[ids.next++];
    out.add_string(k, std::string_view(t.data(), t.size()));
  }
  void run_id(std::string_view k, const Uuid& u) {
    const auto& t = run_id_text(u);
    out.add_string(k, std::string_view(t.data(), t.size()));
  }
  void integer(std::string_view k, int64_t n) { out.add_number(k, double(n)); }
  void open(std::string_view k) { out.open_object(k, sizes.object_size(objects++)); }
  void close() { out.close_object(); }
};

// Record properties in one pass, for what nearly every event's metadata is: every entry under 128
// bytes, so every length is one byte. Each length is written as it becomes known (an object's once
// its fields are written, into the bytes left for it), into room on the stack; `fits` turns false
// when an entry is longer or the room runs out, and the two passes above write the event instead.
// The bytes are those the two passes write.
struct OnePassFields {
  char* p;           // the next byte
  char* const end;   // of the room
  bool fits = true;
  bool valid = true;  // as SizingFields::valid
  int depth = 0;
  char* object_at = nullptr;  // the open object's entry (the metadata's one object)
  size_t object_key = 0;

  // An entry whose value takes `value_size` bytes: its tag, length and key, then the value's tag
  // and length. False (and `fits` false) when it does not fit.
  bool head(std::string_view k, size_t value_size) {
    const size_t entry = 2 + k.size() + 2 + value_size;
    if (!fits || entry > 127 || static_cast<size_t>(end - p) < 2 + entry) {
      fits = false;
      return false;
    }
    p[0] = static_cast<char>(depth == 0 ? protowire::kRecordProperties : protowire::kStructFields);
    p[1] = static_cast<char>(entry);
    p[2] = static_cast<char>(protowire::kEntryKey);
    p[3] = static_cast<char>(k.size());
    std::memcpy(p + 4, k.data(), k.size());
    p += 4 + k.size();
    p[0] = static_cast<char>(protowire::kEntryValue);
    p[1] = static_cast<char>(value_size);
    p += 2;
    return true;
  }
  void string(std::string_view k, std::string_view s) {
    if (!head(k, 2 + s.size())) return;
    p[0] = static_cast<char>(protowire::kValueString);
    p[1] = static_cast<char>(s.size());
    std::memcpy(p + 2, s.data(), s.size());
    p += 2 + s.size();
  }
  void text(std::string_view k, std::string_view s) {
    valid = valid && is_valid_utf8(s);
    string(k, s);
  }
  void id(std::string_view k, const Uuid& u) {
    const auto t = u.text();
    string(k, std::string_view(t.data(), t.size()));
  }
  void run_id(std::string_view k, const Uuid& u) {
    const auto& t = run_id_text(u);
    string(k, std::string_view(t.data(), t.size()));
  }
  void integer(std::string_view k, int64_t n) {
    if (!head(k, 1 + 8)) return;
    protowire::Out o{p};
    protowire::put_double(o, protowire::kValueNumber, static_cast<double>(n));
    p = o.p;
  }
  void open(std::string_view k) {
    // The entry with its lengths left open: filled in by close().
    object_at = p;
    object_key = k.size();
    const bool room = head(k, 2);
    ++depth;
    if (!room) return;
    p[0] = static_cast<char>(protowire::kValueStruct);
    p += 2;
  }
  void close() {
    --depth;
    if (!fits) return;
    const size_t fields = static_cast<size_t>(p - object_at) - (4 + object_key + 2 + 2);
    const size_t value = 2 + fields;
    const size_t entry = 2 + object_key + 2 + value;
    if (entry > 127) {
      fits = false;
      return;
    }
    object_at[1] = static_cast<char>(entry);
    object_at[4 + object_key + 1] = static_cast<char>(value);
    object_at[4 + object_key + 3] = static_cast<char>(fields);
  }
};

}  // namespace

std::string build_metadata(const DomainEvent& e, const Uuid& id, const std::optional<Uuid>& previous_id,
                           const SourceRef& source, const Uuid* run) {
  std::string out;
  out.reserve(200 + e.correlation_id.size() + e.causation_id.size() + e.occurred_at.size() + e.event_id.size() +
              source.topic.size());
  JsonFields json{out};
  metadata_fields(e, id, previous_id, source, run, json);
  out.push_back('}');
  return out;
}

bool build_properties(const DomainEvent& e, const Uuid& id, const std::optional<Uuid>& previous_id,
                      const SourceRef& source, const Uuid* run, std::string* out) {
  char room[1024];
  OnePassFields one{room, room + sizeof room};
  metadata_fields(e, id, previous_id, source, run, one);
  if (!one.valid) return false;
  if (one.fits) {
    out->append(room, static_cast<size_t>(one.p - room));
    return true;
  }
  thread_local PropertySizer sizes;
  sizes.clear();
  PropertyIds ids;
  SizingFields sizing{sizes, ids};
  metadata_fields(e, id, previous_id, source, run, sizing);
  if (!sizing.valid) return false;
  const size_t at = out->size();
  out->resize(at + sizes.size());
  PropertyWriter writer(out->data() + at);
  WritingFields writing{writer, sizes, ids};
  metadata_fields(e, id, previous_id, source, run, writing);
  assert(writer.end() == out->data() + out->size());
  return true;
}

bool breaks_category_projection(std::string_view aggregate_type) {
  return aggregate_type.find('-') != std::string_view::npos;
}

}  // namespace kingest::pipeline
