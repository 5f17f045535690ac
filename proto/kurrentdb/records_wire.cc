#include "proto/kurrentdb/records_wire.h"

#include <simdjson.h>

#include <bit>
#include <cstring>

namespace kingest::wire {
namespace {

// Wire types and the field tags used here (all field numbers < 16: one tag byte).
constexpr uint8_t kVarint = 0;
constexpr uint8_t kFixed64 = 1;
constexpr uint8_t kLen = 2;
constexpr uint8_t tag(uint32_t field, uint8_t type) { return uint8_t((field << 3) | type); }

// AppendRecordsRequest
constexpr uint8_t kRequestRecords = tag(1, kLen);
constexpr uint8_t kRequestChecks = tag(2, kLen);
// ConsistencyCheck.stream_state, StreamStateCheck
constexpr uint8_t kCheckStreamState = tag(1, kLen);
constexpr uint8_t kStateStream = tag(1, kLen);
constexpr uint8_t kStateExpected = tag(2, kVarint);  // sint64: zigzag
// AppendRecord
constexpr uint8_t kRecordId = tag(1, kLen);
constexpr uint8_t kRecordProperties = tag(2, kLen);  // map<string, Value> entries
constexpr uint8_t kRecordSchema = tag(3, kLen);
constexpr uint8_t kRecordData = tag(4, kLen);
constexpr uint8_t kRecordStream = tag(5, kLen);
// SchemaInfo
constexpr uint8_t kSchemaFormat = tag(1, kVarint);
constexpr uint8_t kSchemaName = tag(2, kLen);
constexpr uint64_t kFormatJson = 1;   // SCHEMA_FORMAT_JSON
constexpr uint64_t kFormatBytes = 4;  // SCHEMA_FORMAT_BYTES
// A map entry; google.protobuf.Struct, ListValue and Value
constexpr uint8_t kEntryKey = tag(1, kLen);
constexpr uint8_t kEntryValue = tag(2, kLen);
constexpr uint8_t kStructFields = tag(1, kLen);
constexpr uint8_t kListValues = tag(1, kLen);
constexpr uint8_t kValueNull = tag(1, kVarint);
constexpr uint8_t kValueNumber = tag(2, kFixed64);
constexpr uint8_t kValueString = tag(3, kLen);
constexpr uint8_t kValueBool = tag(4, kVarint);
constexpr uint8_t kValueStruct = tag(5, kLen);
constexpr uint8_t kValueList = tag(6, kLen);

size_t varint_size(uint64_t v) { return v < 0x80 ? 1 : size_t(std::bit_width(v) + 6) / 7; }
// A length-delimited field: tag, length, body.
size_t len_field(size_t body) { return 1 + varint_size(body) + body; }

void put_varint(std::string& out, uint64_t v) {
  if (v < 0x80) {
    out.push_back(char(v));
    return;
  }
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  buf[n++] = char(v);
  out.append(buf, n);
}
void put_len(std::string& out, uint8_t t, size_t body) {
  out.push_back(char(t));
  put_varint(out, body);
}
void put_bytes(std::string& out, uint8_t t, std::string_view bytes) {
  put_len(out, t, bytes.size());
  out.append(bytes);
}

using simdjson::dom::element;
using simdjson::dom::element_type;

size_t value_size(element e);

// A map<string, Value>'s entries (Struct.fields and the record's properties alike).
size_t entry_size(std::string_view key, element value) { return len_field(key.size()) + len_field(value_size(value)); }
size_t fields_size(simdjson::dom::object o) {
  size_t n = 0;
  for (auto [key, value] : o) n += len_field(entry_size(key, value));
  return n;
}

// The body of a google.protobuf.Value holding `e`.
size_t value_size(element e) {
  switch (e.type()) {
    case element_type::OBJECT:
      return len_field(fields_size(simdjson::dom::object(e)));
    case element_type::ARRAY: {
      size_t n = 0;
      for (element item : simdjson::dom::array(e)) n += len_field(value_size(item));
      return len_field(n);
    }
    case element_type::STRING:
      return len_field(std::string_view(e).size());
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return 1 + 8;
    case element_type::BOOL:
    case element_type::NULL_VALUE:
      return 1 + 1;
  }
  return 0;
}

double number_of(element e) {
  switch (e.type()) {
    case element_type::INT64: return double(int64_t(e));
    case element_type::UINT64: return double(uint64_t(e));
    default: return double(e);
  }
}

void put_value(std::string& out, element e);

void put_fields(std::string& out, uint8_t t, simdjson::dom::object o) {
  for (auto [key, value] : o) {
    put_len(out, t, entry_size(key, value));
    put_bytes(out, kEntryKey, key);
    put_len(out, kEntryValue, value_size(value));
    put_value(out, value);
  }
}

void put_value(std::string& out, element e) {
  switch (e.type()) {
    case element_type::OBJECT: {
      simdjson::dom::object o(e);
      put_len(out, kValueStruct, fields_size(o));
      put_fields(out, kStructFields, o);
      return;
    }
    case element_type::ARRAY: {
      simdjson::dom::array a(e);
      size_t n = 0;
      for (element item : a) n += len_field(value_size(item));
      put_len(out, kValueList, n);
      for (element item : a) {
        put_len(out, kListValues, value_size(item));
        put_value(out, item);
      }
      return;
    }
    case element_type::STRING:
      put_bytes(out, kValueString, std::string_view(e));
      return;
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE: {
      out.push_back(char(kValueNumber));
      const uint64_t bits = std::bit_cast<uint64_t>(number_of(e));
      char le[8];
      for (int i = 0; i < 8; ++i) le[i] = char(uint8_t(bits >> (8 * i)));
      out.append(le, 8);
      return;
    }
    case element_type::BOOL:
      out.push_back(char(kValueBool));
      out.push_back(bool(e) ? 1 : 0);
      return;
    case element_type::NULL_VALUE:
      out.push_back(char(kValueNull));
      out.push_back(0);  // NULL_VALUE
      return;
  }
}

}  // namespace

std::optional<std::string> append_records_fragment(std::string_view stream, std::optional<int64_t> expected,
                                                   std::span<const EventData> events, std::string* out) {
  const size_t start = out->size();
  size_t reserve = 0;
  for (const EventData& e : events) reserve += e.data.size() + e.metadata.size() + e.type.size() + stream.size() + 96;
  out->reserve(start + reserve + stream.size() + 32);
  if (expected) {
    const uint64_t zigzag = (uint64_t(*expected) << 1) ^ uint64_t(*expected >> 63);
    const size_t state = len_field(stream.size()) + 1 + varint_size(zigzag);
    put_len(*out, kRequestChecks, len_field(state));
    put_len(*out, kCheckStreamState, state);
    put_bytes(*out, kStateStream, stream);
    out->push_back(char(kStateExpected));
    put_varint(*out, zigzag);
  }
  thread_local simdjson::dom::parser parser;
  for (const EventData& e : events) {
    simdjson::dom::object props;
    size_t props_size = 0;
    if (!e.metadata.empty()) {
      element root;
      if (parser.parse(e.metadata.data(), e.metadata.size()).get(root) != simdjson::SUCCESS ||
          root.get_object().get(props) != simdjson::SUCCESS) {
        out->resize(start);
        return "metadata of event " + e.id.to_string() + " is not a JSON object (v2 properties)";
      }
      props_size = fields_size(props);
    }
    const auto id = e.id.text();
    const std::string_view id_text(id.data(), id.size());
    const size_t schema = 2 + (e.type.empty() ? 0 : len_field(e.type.size()));
    const size_t record = len_field(id_text.size()) + props_size + len_field(schema) +
                          (e.data.empty() ? 0 : len_field(e.data.size())) + len_field(stream.size());
    put_len(*out, kRequestRecords, record);
    put_bytes(*out, kRecordId, id_text);
    if (!e.metadata.empty()) put_fields(*out, kRecordProperties, props);
    put_len(*out, kRecordSchema, schema);
    out->push_back(char(kSchemaFormat));
    out->push_back(char(e.content_type == "application/json" ? kFormatJson : kFormatBytes));
    if (!e.type.empty()) put_bytes(*out, kSchemaName, e.type);
    if (!e.data.empty()) put_bytes(*out, kRecordData, e.data);
    put_bytes(*out, kRecordStream, stream);
  }
  return std::nullopt;
}

}  // namespace kingest::wire
