// Writes the golden test cases under a directory (normally tests/data/golden):
//   json/NAME.json, protobuf/NAME.pb, flatbuffers/NAME.fb   the input bytes
//   <codec>/NAME.expected.json                              the decoded DomainEvent, or {"error": "<substring>"}
//
// The binary inputs are built with the generated protobuf classes and the FlatBuffers builder
// directly (not with encode_protobuf / encode_flatbuffers), so the golden test also checks the
// codecs' field mapping against an independent writer. Expectations are written from the case
// tables below, never from a decoder. Output is deterministic: rerunning rewrites identical files.
//
//   cmake --build build --target codecs_golden_gen && build/bin/codecs_golden_gen tests/data/golden
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/json_writer.h"
#include "proto/envelope.pb.h"
#include "proto/envelope_generated.h"

namespace {

namespace fs = std::filesystem;
namespace pbv1 = kurrent_ingest::envelope::v1;
namespace fbv1 = kurrent_ingest::envelope::v1;

// What a case expects the decoder to return.
struct Expected {
  std::string event_id, event_type, aggregate_id, aggregate_type;
  int64_t aggregate_version = 0;
  std::string correlation_id, causation_id, occurred_at, payload, content_type;
};

struct Outcome {
  std::optional<Expected> event;
  std::string error;  // substring of the reason when `event` is empty
};

Outcome ok(Expected e) { return {std::move(e), {}}; }
Outcome fails(std::string substring) { return {std::nullopt, std::move(substring)}; }

bool is_utf8_text(const std::string& s) {
  // Printable text for the expectation file: valid UTF-8 without NUL (anything else goes as hex).
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || c == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += len;
  }
  return true;
}

std::string hex(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string expectation_json(const Outcome& o) {
  kingest::JsonWriter w;
  w.begin_object();
  if (!o.event) {
    w.key("error").value(o.error);
  } else {
    const Expected& e = *o.event;
    w.key("event_id").value(e.event_id);
    w.key("event_type").value(e.event_type);
    w.key("aggregate_id").value(e.aggregate_id);
    w.key("aggregate_type").value(e.aggregate_type);
    w.key("aggregate_version").value(e.aggregate_version);
    w.key("correlation_id").value(e.correlation_id);
    w.key("causation_id").value(e.causation_id);
    w.key("occurred_at").value(e.occurred_at);
    if (is_utf8_text(e.payload)) {
      w.key("payload").value(e.payload);
    } else {
      w.key("payload_hex").value(hex(e.payload));
    }
    w.key("content_type").value(e.content_type);
  }
  w.end_object();
  return w.take() + "\n";
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

int written = 0;

void emit(const fs::path& dir, const std::string& name, const std::string& ext, const std::string& input,
          const Outcome& outcome) {
  write_file(dir / (name + "." + ext), input);
  write_file(dir / (name + ".expected.json"), expectation_json(outcome));
  ++written;
}

// ---- shared event content -------------------------------------------------------------------

const std::string kEventId = "0b5e2a4c-7d1f-4e8a-9c3b-2f6d8e1a4b7c";
const std::string kCorrelationId = "5f0c9e2d-3b8a-4c1e-a7d6-9e2b4f8c1a3d";
const std::string kCausationId = "8d3a1f6e-2c9b-4e7a-b5d8-1f4c7a2e9b6d";
const std::string kOccurredAt = "2024-01-02T03:04:05.678Z";
const std::string kJsonPayload =
    R"({"systemName":"system-42","environment":"production","owner":{"team":"platform","oncall":["ana","bo"]},)"
    R"("tags":["pci","edge"],"cvssScore":7.5,"bigCounter":123456789012345678901234567890,"revisionNote":3})";
const std::string kUnicodePayload =
    R"({"title":"タスク 42 / 対応 3","note":"Zoë Müller fixed \u00e9 → ✓","emoji":"🚀🔥","rtl":"שלום"})";
const std::string kBinaryPayload = std::string("\x00\x01\x02\xff\xfe{not json}\x80\x7f", 15);

Expected full_event() {
  Expected e;
  e.event_id = kEventId;
  e.event_type = "SystemRegistered";
  e.aggregate_id = "sys-42";
  e.aggregate_type = "System";
  e.aggregate_version = 3;
  e.correlation_id = kCorrelationId;
  e.causation_id = kCausationId;
  e.occurred_at = kOccurredAt;
  e.payload = kJsonPayload;
  e.content_type = "application/json";
  return e;
}

Expected minimal_event() {
  Expected e;
  e.event_type = "TaskCreated";
  e.aggregate_id = "task-1";
  e.aggregate_type = "Task";
  e.aggregate_version = 1;
  e.payload = "{}";
  e.content_type = "application/json";
  return e;
}

// ---- protobuf ---------------------------------------------------------------------------------

pbv1::DomainEventEnvelope pb_from(const Expected& e, const std::string& payload_content_type) {
  pbv1::DomainEventEnvelope m;
  m.set_event_id(e.event_id);
  m.set_event_type(e.event_type);
  m.set_aggregate_id(e.aggregate_id);
  m.set_aggregate_type(e.aggregate_type);
  m.set_aggregate_version(e.aggregate_version);
  m.set_correlation_id(e.correlation_id);
  m.set_causation_id(e.causation_id);
  m.set_occurred_at(e.occurred_at);
  if (e.payload != "{}" || !payload_content_type.empty()) m.set_payload(e.payload);
  m.set_payload_content_type(payload_content_type);
  return m;
}

std::string serialize(const pbv1::DomainEventEnvelope& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

void protobuf_cases(const fs::path& dir) {
  auto emit_pb = [&](const std::string& name, const std::string& bytes, const Outcome& o) {
    emit(dir, name, "pb", bytes, o);
  };
  const Expected full = full_event();
  emit_pb("full", serialize(pb_from(full, "application/json")), ok(full));

  const Expected minimal = minimal_event();
  {
    pbv1::DomainEventEnvelope m;
    m.set_event_type(minimal.event_type);
    m.set_aggregate_id(minimal.aggregate_id);
    m.set_aggregate_type(minimal.aggregate_type);
    m.set_aggregate_version(minimal.aggregate_version);
    emit_pb("minimal", serialize(m), ok(minimal));
  }
  {
    Expected e = full;
    e.correlation_id.clear();
    e.causation_id.clear();
    emit_pb("json_payload_without_content_type", serialize(pb_from(e, "")), ok(e));
  }
  {
    const Expected& e = full;
    emit_pb("json_content_type_with_parameters", serialize(pb_from(e, "Application/JSON; charset=utf-8")), ok(e));
  }
  {
    Expected e = full;
    e.event_type = "SystemAttachmentUploaded";
    e.payload = kBinaryPayload;
    e.content_type = "application/octet-stream";
    emit_pb("binary_payload", serialize(pb_from(e, "application/octet-stream")), ok(e));
    emit_pb("binary_payload_without_content_type", serialize(pb_from(e, "")), ok(e));
  }
  {
    Expected e = full;
    e.payload = R"(<system name="sys-42"/>)";
    e.content_type = "application/xml";
    emit_pb("other_content_type_kept_verbatim", serialize(pb_from(e, "application/xml")), ok(e));
  }
  {
    Expected e = full;
    e.event_type = "タスク更新";
    e.aggregate_id = "täsk-✓-42";
    e.aggregate_type = "Tâche";
    e.occurred_at = "2024-01-02T03:04:05.678+09:00";
    e.payload = kUnicodePayload;
    emit_pb("unicode", serialize(pb_from(e, "application/json")), ok(e));
  }
  {
    Expected e = minimal;
    e.aggregate_version = 0;
    pbv1::DomainEventEnvelope m = pb_from(e, "");
    emit_pb("version_zero_is_present", serialize(m), ok(e));
  }
  {
    Expected e = minimal;
    e.aggregate_version = INT64_MAX;
    emit_pb("version_max", serialize(pb_from(e, "")), ok(e));
  }
  {
    // A newer producer's fields (numbers 11, 99 and a fixed64) are ignored.
    const Expected& e = full;
    std::string bytes = serialize(pb_from(e, "application/json"));
    bytes += std::string("\x5a\x05hello", 7);                      // field 11, length-delimited
    bytes += std::string("\x98\x06\x2a", 3);                       // field 99, varint 42
    bytes += std::string("\x61\x01\x02\x03\x04\x05\x06\x07\x08", 9);  // field 12, fixed64
    emit_pb("unknown_fields_ignored", bytes, ok(e));
  }
  for (const char* field : {"event_type", "aggregate_id", "aggregate_type", "aggregate_version"}) {
    pbv1::DomainEventEnvelope m = pb_from(full, "application/json");
    const std::string f = field;
    if (f == "event_type") m.clear_event_type();
    if (f == "aggregate_id") m.clear_aggregate_id();
    if (f == "aggregate_type") m.clear_aggregate_type();
    if (f == "aggregate_version") m.clear_aggregate_version();
    emit_pb("missing_" + f, serialize(m), fails("missing required field " + f));
  }
  {
    pbv1::DomainEventEnvelope m = pb_from(full, "application/json");
    m.set_aggregate_version(-1);
    emit_pb("negative_version", serialize(m), fails("aggregate_version: expected a non-negative integer, got -1"));
  }
  {
    pbv1::DomainEventEnvelope m = pb_from(full, "application/json");
    m.set_payload(R"({"systemName":"sys-42",)");
    emit_pb("json_content_type_but_invalid_json", serialize(m),
            fails("payload: content type \"application/json\" but not a valid JSON object"));
  }
  {
    pbv1::DomainEventEnvelope m = pb_from(full, "application/json");
    m.set_payload(R"([1,2,3])");
    emit_pb("json_content_type_but_array", serialize(m), fails("expected a JSON object, got array"));
  }
  const std::string full_bytes = serialize(pb_from(full, "application/json"));
  emit_pb("truncated", full_bytes.substr(0, full_bytes.size() / 2), fails("invalid protobuf: length"));
  emit_pb("truncated_in_varint", full_bytes.substr(0, 1) + "\x80", fails("invalid protobuf: "));
  {
    // event_type (field 2) with a byte that is not UTF-8.
    std::string b = full_bytes + std::string("\x12\x05", 2) + std::string("Bad\xff!", 5);
    emit_pb("invalid_utf8_in_string", b, fails("event_type: invalid UTF-8"));
  }
  emit_pb("invalid_wire_type", std::string("\x0f\x01", 2), fails("invalid wire type 7"));
  emit_pb("unexpected_end_group", std::string("\x0c", 1), fails("unexpected end-group tag"));
  emit_pb("empty", "", fails("invalid protobuf: empty input"));
  emit_pb("json_bytes_sent_as_protobuf",
          R"({"eventType":"SystemRegistered","aggregateId":"sys-42","aggregateType":"System","aggregateVersion":1})",
          fails("invalid protobuf"));
}

// ---- FlatBuffers ------------------------------------------------------------------------------

// Which fields a FlatBuffers case writes; nullopt = absent.
struct FbFields {
  std::optional<std::string> event_id, event_type, aggregate_id, aggregate_type;
  std::optional<int64_t> aggregate_version;
  std::optional<std::string> correlation_id, causation_id, occurred_at, payload, payload_content_type;
  const char* identifier = "KIEV";
};

FbFields fb_from(const Expected& e, std::optional<std::string> payload_content_type) {
  FbFields f;
  auto opt = [](const std::string& s) { return s.empty() ? std::nullopt : std::optional<std::string>(s); };
  f.event_id = opt(e.event_id);
  f.event_type = e.event_type;
  f.aggregate_id = e.aggregate_id;
  f.aggregate_type = e.aggregate_type;
  f.aggregate_version = e.aggregate_version;
  f.correlation_id = opt(e.correlation_id);
  f.causation_id = opt(e.causation_id);
  f.occurred_at = opt(e.occurred_at);
  if (e.payload != "{}" || payload_content_type) f.payload = e.payload;
  f.payload_content_type = std::move(payload_content_type);
  return f;
}

std::string build(const FbFields& f) {
  flatbuffers::FlatBufferBuilder b(1024);
  auto str = [&b](const std::optional<std::string>& s) {
    return s ? b.CreateString(*s) : flatbuffers::Offset<flatbuffers::String>();
  };
  const auto event_id = str(f.event_id);
  const auto event_type = str(f.event_type);
  const auto aggregate_id = str(f.aggregate_id);
  const auto aggregate_type = str(f.aggregate_type);
  const auto correlation_id = str(f.correlation_id);
  const auto causation_id = str(f.causation_id);
  const auto occurred_at = str(f.occurred_at);
  const auto payload = f.payload ? b.CreateVector(reinterpret_cast<const uint8_t*>(f.payload->data()), f.payload->size())
                                 : flatbuffers::Offset<flatbuffers::Vector<uint8_t>>();
  const auto content_type = str(f.payload_content_type);
  fbv1::DomainEventEnvelopeFbBuilder t(b);
  t.add_event_id(event_id);
  t.add_event_type(event_type);
  t.add_aggregate_id(aggregate_id);
  t.add_aggregate_type(aggregate_type);
  if (f.aggregate_version) t.add_aggregate_version(*f.aggregate_version);
  t.add_correlation_id(correlation_id);
  t.add_causation_id(causation_id);
  t.add_occurred_at(occurred_at);
  t.add_payload(payload);
  t.add_payload_content_type(content_type);
  b.Finish(t.Finish(), f.identifier);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

void flatbuffers_cases(const fs::path& dir) {
  auto emit_fb = [&](const std::string& name, const std::string& bytes, const Outcome& o) {
    emit(dir, name, "fb", bytes, o);
  };
  const Expected full = full_event();
  emit_fb("full", build(fb_from(full, "application/json")), ok(full));
  const Expected minimal = minimal_event();
  emit_fb("minimal", build(fb_from(minimal, std::nullopt)), ok(minimal));
  {
    Expected e = full;
    e.event_id.clear();
    e.occurred_at.clear();
    emit_fb("json_payload_without_content_type", build(fb_from(e, std::nullopt)), ok(e));
  }
  emit_fb("json_content_type_with_parameters", build(fb_from(full, "application/json;charset=UTF-8")), ok(full));
  {
    Expected e = full;
    e.payload = kBinaryPayload;
    e.content_type = "application/octet-stream";
    emit_fb("binary_payload", build(fb_from(e, "application/octet-stream")), ok(e));
    emit_fb("binary_payload_without_content_type", build(fb_from(e, std::nullopt)), ok(e));
  }
  {
    Expected e = full;
    e.payload = std::string("\x08\x96\x01", 3);  // a protobuf message as the payload
    e.content_type = "application/x-protobuf";
    emit_fb("other_content_type_kept_verbatim", build(fb_from(e, "application/x-protobuf")), ok(e));
  }
  {
    Expected e = full;
    e.event_type = "脆弱性検出";
    e.aggregate_id = "vuln-Ω-7";
    e.aggregate_type = "Vulnérabilité";
    e.payload = kUnicodePayload;
    emit_fb("unicode", build(fb_from(e, "application/json")), ok(e));
  }
  {
    Expected e = minimal;
    e.aggregate_version = 0;
    emit_fb("version_zero_is_present", build(fb_from(e, std::nullopt)), ok(e));
  }
  for (const char* field : {"event_type", "aggregate_id", "aggregate_type", "aggregate_version"}) {
    FbFields f = fb_from(full, "application/json");
    const std::string name = field;
    if (name == "event_type") f.event_type.reset();
    if (name == "aggregate_id") f.aggregate_id.reset();
    if (name == "aggregate_type") f.aggregate_type.reset();
    if (name == "aggregate_version") f.aggregate_version.reset();
    emit_fb("missing_" + name, build(f), fails("missing required field " + name));
  }
  {
    FbFields f = fb_from(full, "application/json");
    f.aggregate_type = "";
    emit_fb("empty_aggregate_type", build(f), fails("aggregate_type: expected a non-empty string, got an empty string"));
  }
  {
    FbFields f = fb_from(full, "application/json");
    f.aggregate_version = -7;
    emit_fb("negative_version", build(f), fails("aggregate_version: expected a non-negative integer, got -7"));
  }
  {
    FbFields f = fb_from(full, "application/json");
    f.aggregate_id = std::string("sys-\xc3\x28", 6);  // an invalid two-byte sequence
    emit_fb("invalid_utf8_in_string", build(f), fails("aggregate_id: invalid UTF-8"));
  }
  {
    FbFields f = fb_from(full, "application/json");
    f.payload = R"({"systemName":"sys-42")";
    emit_fb("json_content_type_but_invalid_json", build(f),
            fails("payload: content type \"application/json\" but not a valid JSON object"));
  }
  {
    FbFields f = fb_from(full, "application/json");
    f.identifier = "KIEX";
    emit_fb("wrong_identifier", build(f), fails("file identifier \"KIEX\", expected \"KIEV\""));
  }
  const std::string full_bytes = build(fb_from(full, "application/json"));
  emit_fb("truncated", full_bytes.substr(0, full_bytes.size() / 2), fails("the verifier rejected"));
  {
    // The root offset points past the end of the buffer.
    std::string b = full_bytes;
    b[0] = '\xf0';
    b[1] = '\xff';
    emit_fb("root_offset_out_of_bounds", b, fails("the verifier rejected"));
  }
  {
    // The first string's length is inflated beyond the buffer.
    std::string b = full_bytes;
    const size_t at = b.find("SystemRegistered");
    if (at == std::string::npos || at < 4) std::abort();
    b[at - 4] = '\x00';
    b[at - 3] = '\x10';
    emit_fb("string_length_out_of_bounds", b, fails("the verifier rejected"));
  }
  emit_fb("too_short", std::string("\x08\x00\x00\x00", 4), fails("shorter than a buffer header"));
  emit_fb("empty", "", fails("invalid FlatBuffers: empty input"));
  emit_fb("protobuf_bytes_sent_as_flatbuffers", serialize(pb_from(full, "application/json")),
          fails("invalid FlatBuffers: file identifier"));
}

// ---- JSON -------------------------------------------------------------------------------------

void json_cases(const fs::path& dir) {
  auto emit_json = [&](const std::string& name, const std::string& text, const Outcome& o) {
    emit(dir, name, "json", text, o);
  };
  {
    Expected e = full_event();
    emit_json("flat_nestjs",
              R"({"eventId":")" + kEventId + R"(","eventType":"SystemRegistered","aggregateId":"sys-42",)"
              R"("aggregateType":"System","aggregateVersion":3,"correlationId":")" + kCorrelationId +
              R"(","causationId":")" + kCausationId + R"(","occurredOn":")" + kOccurredAt + R"(",)" +
              kJsonPayload.substr(1),
              ok(e));
  }
  {
    Expected e = minimal_event();
    emit_json("minimal", R"({"eventType":"TaskCreated","aggregateId":"task-1","aggregateType":"Task","aggregateVersion":1})",
              ok(e));
  }
  {
    Expected e = minimal_event();
    e.aggregate_id = "42";
    e.occurred_at = "2024-01-02T03:04:05.678Z";
    e.payload = R"({"title":"x"})";
    emit_json("numeric_id_and_epoch_millis",
              R"({"eventType":"TaskCreated","aggregateId":42,"aggregateType":"Task","aggregateVersion":1,)"
              R"("timestamp":1704164645678,"title":"x"})",
              ok(e));
  }
  {
    Expected e = full_event();
    e.event_type = "タスク更新";
    e.aggregate_id = "täsk-✓-42";
    e.aggregate_type = "Tâche";
    e.event_id.clear();
    e.correlation_id.clear();
    e.causation_id.clear();
    e.occurred_at.clear();
    e.payload = kUnicodePayload;
    emit_json("unicode",
              R"({"eventType":"\u30bf\u30b9\u30af更新","aggregateId":"täsk-✓-42","aggregateType":"T\u00e2che",)"
              R"("aggregateVersion":3,)" + kUnicodePayload.substr(1),
              ok(e));
  }
  const std::string base = R"("eventType":"TaskCreated","aggregateId":"task-1","aggregateType":"Task","aggregateVersion":1)";
  emit_json("missing_event_type", R"({"aggregateId":"task-1","aggregateType":"Task","aggregateVersion":1})",
            fails("missing required field eventType"));
  emit_json("missing_aggregate_version", R"({"eventType":"TaskCreated","aggregateId":"task-1","aggregateType":"Task"})",
            fails("missing required field aggregateVersion"));
  emit_json("fractional_version",
            R"({"eventType":"TaskCreated","aggregateId":"task-1","aggregateType":"Task","aggregateVersion":1.5})",
            fails("aggregateVersion: expected a non-negative integer, got 1.5"));
  emit_json("empty_aggregate_type",
            R"({"eventType":"TaskCreated","aggregateId":"task-1","aggregateType":"","aggregateVersion":1})",
            fails("aggregateType: expected a non-empty string, got an empty string"));
  emit_json("truncated", "{" + base + R"(,"title":"unfinis)", fails("invalid JSON"));
  emit_json("top_level_array", "[{" + base + "}]", fails("top level: expected a JSON object, got array"));
  emit_json("invalid_utf8", "{" + base + ",\"title\":\"\xff\"}", fails("invalid JSON"));
  // Found by json_fuzzer: an escaped newline in a payload key once made the reason two lines.
  emit_json("bad_value_under_escaped_newline_key", R"({"ev\ntIf":nt@a})", fails(R"(invalid JSON in field "ev\x0atIf")"));
  emit_json("duplicate_envelope_field", "{" + base + R"(,"eventType":"Other"})", fails("eventType: duplicate field"));

  // Envelope/payload name collisions: the payload is the published object minus the members used
  // as envelope fields, always.
  const std::string env = R"("eventType":"TaskCreated","aggregateId":"task-1","aggregateType":"Task","aggregateVersion":1)";
  auto with = [](Expected e, std::string occurred_at, std::string payload) {
    e.occurred_at = std::move(occurred_at);
    e.payload = std::move(payload);
    return e;
  };
  emit_json("collision_occurredOn_and_timestamp",
            "{" + env + R"(,"occurredOn":"2024-01-02T03:04:05.678Z","timestamp":1704164645000,"title":"t"})",
            ok(with(minimal_event(), "2024-01-02T03:04:05.678Z", R"({"timestamp":1704164645000,"title":"t"})")));
  emit_json("collision_all_three_time_fields",
            "{" + env + R"(,"timestamp":"ts","occurredAt":"at","occurredOn":"on"})",
            ok(with(minimal_event(), "on", R"({"timestamp":"ts","occurredAt":"at"})")));
  emit_json("collision_occurredAt_and_timestamp",
            "{" + env + R"(,"occurredAt":"2024-01-02T03:04:05.678Z","timestamp":{"zone":"UTC"}})",
            ok(with(minimal_event(), "2024-01-02T03:04:05.678Z", R"({"timestamp":{"zone":"UTC"}})")));
  emit_json("collision_null_occurredOn_then_timestamp", "{" + env + R"(,"occurredOn":null,"timestamp":0})",
            ok(with(minimal_event(), "1970-01-01T00:00:00.000Z", R"({"occurredOn":null})")));
  emit_json("collision_only_null_times", "{" + env + R"(,"timestamp":"","occurredAt":null})",
            ok(with(minimal_event(), "", R"({"timestamp":""})")));
  emit_json("collision_timestamp_alone_is_the_time", "{" + env + R"(,"timestamp":1704164645678})",
            ok(with(minimal_event(), "2024-01-02T03:04:05.678Z", "{}")));
  emit_json("collision_bad_time_that_is_the_time", "{" + env + R"(,"occurredOn":true,"timestamp":1})",
            fails("occurredOn: expected a string or epoch milliseconds, got boolean"));
  emit_json("collision_single_data_field", "{" + env + R"(,"data":{"systemName":"s"}})",
            ok(with(minimal_event(), "", R"({"data":{"systemName":"s"}})")));
  emit_json("collision_data_and_metadata", "{" + env + R"(,"data":{"a":1},"metadata":{"m":2}})",
            ok(with(minimal_event(), "", R"({"data":{"a":1},"metadata":{"m":2}})")));
  emit_json("collision_data_not_an_object", "{" + env + R"(,"data":"text"})",
            ok(with(minimal_event(), "", R"({"data":"text"})")));
  emit_json("collision_metadata_alone", "{" + env + R"(,"metadata":{"m":1}})",
            ok(with(minimal_event(), "", R"({"metadata":{"m":1}})")));
  emit_json("collision_null_envelope_fields_are_envelope",
            "{" + env + R"(,"eventId":null,"correlationId":null,"causationId":null,"x":1})",
            ok(with(minimal_event(), "", R"({"x":1})")));
  // NestJS up to 11.1.5 sends a class instance as its string conversion.
  emit_json("not_json_object_object", "[object Object]", fails(R"(invalid JSON: got the text "[object Object]")"));
}

// ---- JSON, nested shape (codec json-nested) -----------------------------------------------------

void json_nested_cases(const fs::path& dir) {
  auto emit_nested = [&](const std::string& name, const std::string& text, const Outcome& o) {
    emit(dir, name, "json", text, o);
  };
  const std::string env = R"("eventType":"TaskCreated","aggregateId":"task-1","aggregateType":"Task","aggregateVersion":1)";
  emit_nested("nested_data",
              R"({"eventId":")" + kEventId + R"(","eventType":"SystemRegistered","aggregateId":"sys-42",)"
              R"("aggregateType":"System","aggregateVersion":3,"correlationId":")" + kCorrelationId +
              R"(","causationId":")" + kCausationId + R"(","occurredAt":")" + kOccurredAt + R"(","data":)" +
              kJsonPayload + R"(,"metadata":{"ignored":true}})",
              ok(full_event()));
  {
    Expected e = minimal_event();
    e.payload = R"({"x":[1,2]})";
    emit_nested("data_first", R"({"data":{"x":[1,2]},)" + env + "}", ok(e));
    emit_nested("empty_data", "{" + env + R"(,"data":{}})", ok(minimal_event()));
    e.occurred_at = "on";
    emit_nested("time_beside_data", "{" + env + R"(,"occurredOn":"on","data":{"x":[1,2]}})", ok(e));
  }
  emit_nested("field_beside_data", "{" + env + R"(,"data":{},"other":1})",
              fails(R"(nested shape: unexpected top-level field "other")"));
  emit_nested("second_time_beside_data", "{" + env + R"(,"occurredOn":"on","timestamp":1,"data":{}})",
              fails(R"(nested shape: unexpected top-level field "timestamp")"));
  emit_nested("no_data", "{" + env + "}", fails(R"(nested shape: missing "data" object)"));
  emit_nested("data_not_an_object", "{" + env + R"(,"data":[1]})", fails(R"(nested shape: "data" is not a JSON object)"));
  emit_nested("missing_event_type", R"({"aggregateId":"a","aggregateType":"A","aggregateVersion":1,"data":{}})",
              fails("missing required field eventType"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR   (normally tests/data/golden)\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* sub : {"json", "json-nested", "protobuf", "flatbuffers"}) {
    fs::create_directories(root / sub);
    // Start clean so that removed cases do not linger.
    for (const auto& entry : fs::directory_iterator(root / sub)) fs::remove(entry.path());
  }
  json_cases(root / "json");
  json_nested_cases(root / "json-nested");
  protobuf_cases(root / "protobuf");
  flatbuffers_cases(root / "flatbuffers");
  std::printf("wrote %d golden cases under %s\n", written, root.c_str());
  return 0;
}
