#include "proto/kurrentdb/records_wire.h"

#include <simdjson.h>

#include <bit>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/json_string_stops.h"

namespace kingest::wire {
namespace {

using namespace protowire;

// AppendRecordsRequest
constexpr uint8_t kRequestRecords = tag(1, kLen);
constexpr uint8_t kRequestChecks = tag(2, kLen);
// ConsistencyCheck.stream_state, StreamStateCheck
constexpr uint8_t kCheckStreamState = tag(1, kLen);
constexpr uint8_t kStateStream = tag(1, kLen);
constexpr uint8_t kStateExpected = tag(2, kVarint);  // sint64: zigzag
// AppendRecord (properties: core/record_properties.h)
constexpr uint8_t kRecordId = tag(1, kLen);
constexpr uint8_t kRecordSchema = tag(3, kLen);
constexpr uint8_t kRecordData = tag(4, kLen);
constexpr uint8_t kRecordStream = tag(5, kLen);
// SchemaInfo
constexpr uint8_t kSchemaFormat = tag(1, kVarint);
constexpr uint8_t kSchemaName = tag(2, kLen);
constexpr uint64_t kFormatJson = 1;   // SCHEMA_FORMAT_JSON
constexpr uint64_t kFormatBytes = 4;  // SCHEMA_FORMAT_BYTES

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

void put_value(Out& out, element e);

void put_fields(Out& out, uint8_t t, simdjson::dom::object o) {
  for (auto [key, value] : o) {
    put_len(out, t, entry_size(key, value));
    put_bytes(out, kEntryKey, key);
    put_len(out, kEntryValue, value_size(value));
    put_value(out, value);
  }
}

void put_value(Out& out, element e) {
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
      put_double(out, kValueNumber, number_of(e));
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

// The common metadata, encoded straight from its text: an object of objects, strings without
// escapes, integers of up to 15 digits (exact as doubles), true, false and null. Anything else
// (arrays, fractions, exponents, escapes, deep nesting) is left to the DOM path, which handles all
// of JSON; the two write the same bytes.
class PlainObject {
 public:
  // Reads `json` (valid UTF-8, checked by the caller); false when it is not of the plain kind.
  bool parse(std::string_view json) {
    props_.clear();
    p_ = json.data();
    end_ = json.data() + json.size();
    skip_space();
    if (p_ == end_ || *p_ != '{') return false;
    ++p_;
    if (!parse_fields(0)) return false;
    skip_space();
    return p_ == end_;
  }
  // The properties read (views into the text).
  [[nodiscard]] const RecordProperties& properties() const { return props_; }

 private:
  static constexpr int kMaxDepth = 16;

  void skip_space() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\t' || *p_ == '\r')) ++p_;
  }
  // After the opening quote: the text up to the closing one, with no escape or control character.
  bool parse_string(std::string_view* out) {
    const char* start = p_;
    const char* c = p_;
#ifdef __SSE2__
    // 16 bytes at a time: the first quote, backslash or control character.
    for (; end_ - c >= 16; c += 16) {
      if (const uint32_t mask = json_string_stops(c)) {
        c += std::countr_zero(mask);
        break;
      }
    }
#endif
    while (c != end_ && *c != '"' && *c != '\\' && uint8_t(*c) >= 0x20) ++c;
    if (c == end_ || *c != '"') return false;  // an escape or a control character: not plain
    *out = std::string_view(start, size_t(c - start));
    p_ = c + 1;
    return true;
  }
  bool parse_integer(double* out) {
    bool negative = false;
    if (*p_ == '-') {
      negative = true;
      ++p_;
    }
    const char* digits = p_;
    int64_t v = 0;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
      if (p_ - digits == 15) return false;
      v = v * 10 + (*p_ - '0');
      ++p_;
    }
    const size_t n = size_t(p_ - digits);
    if (n == 0 || (n > 1 && *digits == '0')) return false;
    if (p_ != end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    *out = double(negative ? -v : v);
    return true;
  }
  bool parse_word(std::string_view word) {
    if (size_t(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }
  // After an object's '{': its fields up to and past its '}'.
  bool parse_fields(int depth) {
    if (depth > kMaxDepth) return false;
    skip_space();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      skip_space();
      if (p_ == end_ || *p_ != '"') return false;
      ++p_;
      std::string_view key;
      if (!parse_string(&key)) return false;
      skip_space();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      skip_space();
      if (p_ == end_) return false;
      switch (*p_) {
        case '{':
          ++p_;
          props_.open_object(key);
          if (!parse_fields(depth + 1)) return false;
          props_.close_object();
          break;
        case '"': {
          ++p_;
          std::string_view text;
          if (!parse_string(&text)) return false;
          props_.add_string(key, text);
          break;
        }
        case 't':
        case 'f':
        case 'n': {
          const char c = *p_;
          if (!parse_word(c == 't' ? "true" : c == 'f' ? "false" : "null")) return false;
          if (c == 'n') {
            props_.add_null(key);
          } else {
            props_.add_bool(key, c == 't');
          }
          break;
        }
        default: {
          double number = 0;
          if (!parse_integer(&number)) return false;
          props_.add_number(key, number);
          break;
        }
      }
      skip_space();
      if (p_ == end_) return false;
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
    }
  }

  RecordProperties props_;
  const char* p_ = nullptr;
  const char* end_ = nullptr;
};

}  // namespace

std::optional<std::string> append_records_fragment(std::string_view stream, std::optional<int64_t> expected,
                                                   std::span<const EventData> events, std::string* out) {
  const size_t start = out->size();
  size_t reserve = 0;
  for (const EventData& e : events) {
    reserve += e.data.size() + e.metadata.size() + e.properties.size() + e.type.size() + stream.size() + 96;
  }
  out->reserve(start + reserve + stream.size() + 32);
  // Makes room for `n` more bytes at the end of `out`, to be written through the returned writer.
  auto room = [out](size_t n) {
    const size_t at = out->size();
    out->resize(at + n);
    return Out{out->data() + at};
  };
  if (expected) {
    const uint64_t zigzag = (uint64_t(*expected) << 1) ^ uint64_t(*expected >> 63);
    const size_t state = len_field(stream.size()) + 1 + varint_size(zigzag);
    Out w = room(len_field(len_field(state)));
    put_len(w, kRequestChecks, len_field(state));
    put_len(w, kCheckStreamState, state);
    put_bytes(w, kStateStream, stream);
    w.push_back(char(kStateExpected));
    put_varint(w, zigzag);
  }
  thread_local simdjson::dom::parser parser;
  thread_local PlainObject plain;
  for (const EventData& e : events) {
    simdjson::dom::object props;
    size_t props_size = 0;
    bool is_plain = false;
    if (!e.properties.empty()) {
      props_size = e.properties.size();
    } else if (!e.metadata.empty()) {
      is_plain = simdjson::validate_utf8(e.metadata.data(), e.metadata.size()) && plain.parse(e.metadata);
      element root;
      if (is_plain) {
        props_size = plain.properties().size();
      } else if (parser.parse(e.metadata.data(), e.metadata.size()).get(root) != simdjson::SUCCESS ||
                 root.get_object().get(props) != simdjson::SUCCESS) {
        out->resize(start);
        return "metadata of event " + e.id.to_string() + " is not a JSON object (v2 properties)";
      } else {
        props_size = fields_size(props);
      }
    }
    const auto id = e.id.text();
    const std::string_view id_text(id.data(), id.size());
    const size_t schema = 2 + (e.type.empty() ? 0 : len_field(e.type.size()));
    const size_t record = len_field(id_text.size()) + props_size + len_field(schema) +
                          (e.data.empty() ? 0 : len_field(e.data.size())) + len_field(stream.size());
    Out w = room(len_field(record));
    put_len(w, kRequestRecords, record);
    put_bytes(w, kRecordId, id_text);
    if (!e.properties.empty()) {
      w.append(e.properties);
    } else if (is_plain) {
      w.p = plain.properties().write(w.p);
    } else if (!e.metadata.empty()) {
      put_fields(w, kRecordProperties, props);
    }
    put_len(w, kRecordSchema, schema);
    w.push_back(char(kSchemaFormat));
    w.push_back(char(e.content_type == "application/json" ? kFormatJson : kFormatBytes));
    if (!e.type.empty()) put_bytes(w, kSchemaName, e.type);
    if (!e.data.empty()) put_bytes(w, kRecordData, e.data);
    put_bytes(w, kRecordStream, stream);
    assert(w.p == out->data() + out->size());
  }
  return std::nullopt;
}

bool read_records_answer(std::string_view bytes, RecordsAnswer* out) {
  out->revisions.clear();
  out->position = 0;
  Reader r(bytes);
  while (!r.done()) {
    uint32_t number = 0, type = 0;
    if (!r.tag(&number, &type)) return false;
    if (number == 1 && type == kLen) {  // revisions: StreamRevision
      std::string_view body;
      if (!r.len(&body)) return false;
      auto& [stream, revision] = out->revisions.emplace_back(std::string_view(), 0);
      Reader f(body);
      while (!f.done()) {
        uint32_t n = 0, t = 0;
        if (!f.tag(&n, &t)) return false;
        uint64_t v = 0;
        bool ok = true;
        if (n == 1 && t == kLen) {
          ok = f.len(&stream);
        } else if (n == 2 && t == kVarint) {
          ok = f.varint(&v);
          revision = unzigzag(v);
        } else {
          ok = f.skip(t);
        }
        if (!ok) return false;
      }
    } else if (number == 2 && type == kVarint) {  // position
      uint64_t v = 0;
      if (!r.varint(&v)) return false;
      out->position = unzigzag(v);
    } else if (!r.skip(type)) {
      return false;
    }
  }
  return true;
}

namespace {

constexpr uint8_t kAnswerRevisions = tag(1, kLen);
constexpr uint8_t kAnswerPosition = tag(2, kVarint);  // sint64: zigzag
constexpr uint8_t kRevisionStream = tag(1, kLen);
constexpr uint8_t kRevisionValue = tag(2, kVarint);  // sint64: zigzag

uint64_t zigzag(int64_t v) { return (uint64_t(v) << 1) ^ uint64_t(v >> 63); }

// A StreamRevision's body: what protobuf writes of it (proto3 leaves out the default values).
size_t revision_body(std::string_view stream, int64_t revision) {
  return (stream.empty() ? 0 : len_field(stream.size())) + (revision == 0 ? 0 : 1 + varint_size(zigzag(revision)));
}

}  // namespace

size_t records_answer_size(std::span<const std::pair<std::string_view, int64_t>> revisions, int64_t position) {
  size_t n = position == 0 ? 0 : 1 + varint_size(zigzag(position));
  for (const auto& [stream, revision] : revisions) n += len_field(revision_body(stream, revision));
  return n;
}

void write_records_answer(std::span<const std::pair<std::string_view, int64_t>> revisions, int64_t position,
                          char* out) {
  Out w{out};
  for (const auto& [stream, revision] : revisions) {
    put_len(w, kAnswerRevisions, revision_body(stream, revision));
    if (!stream.empty()) put_bytes(w, kRevisionStream, stream);
    if (revision != 0) {
      w.push_back(char(kRevisionValue));
      put_varint(w, zigzag(revision));
    }
  }
  if (position != 0) {
    w.push_back(char(kAnswerPosition));
    put_varint(w, zigzag(position));
  }
}

}  // namespace kingest::wire
