#include "proto/kurrentdb/records_wire.h"

#include <simdjson.h>

#include <bit>
#include <cassert>
#include <cstring>
#include <vector>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

// Writes into room made beforehand: the sizes are known first (protobuf puts each length before
// its body), so every byte is stored without a capacity check.
struct Out {
  char* p;
  void push_back(char c) { *p++ = c; }
  void append(const char* s, size_t n) {
    std::memcpy(p, s, n);
    p += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
};

void put_varint(Out& out, uint64_t v) {
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
void put_len(Out& out, uint8_t t, size_t body) {
  out.push_back(char(t));
  put_varint(out, body);
}
void put_bytes(Out& out, uint8_t t, std::string_view bytes) {
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

// The common metadata, encoded straight from its text: an object of objects, strings without
// escapes, integers of up to 15 digits (exact as doubles), true, false and null. Anything else
// (arrays, fractions, exponents, escapes, deep nesting) is left to the DOM path, which handles all
// of JSON; the two write the same bytes.
class PlainObject {
 public:
  // Reads `json` (valid UTF-8, checked by the caller); false when it is not of the plain kind.
  bool parse(std::string_view json) {
    nodes_.clear();
    fields_size_ = 0;
    p_ = json.data();
    end_ = json.data() + json.size();
    skip_space();
    if (p_ == end_ || *p_ != '{') return false;
    ++p_;
    if (!parse_fields(0, &fields_size_)) return false;
    skip_space();
    return p_ == end_;
  }
  // The size of the properties (every entry, tagged with `t`), and writing them.
  [[nodiscard]] size_t fields_size() const { return fields_size_; }
  void put(Out& out, uint8_t t) const { put_fields(out, t, 0, nodes_.size()); }

 private:
  enum class Kind : uint8_t { kObject, kString, kNumber, kTrue, kFalse, kNull };
  struct Node {
    Kind kind;
    std::string_view key;
    std::string_view text;  // a string's value
    double number = 0;
    size_t fields = 0;      // an object's fields_size
    size_t end = 0;         // an object's: the index past its descendants
  };
  static constexpr int kMaxDepth = 16;

  static size_t value_size(const Node& n) {
    switch (n.kind) {
      case Kind::kObject: return len_field(n.fields);
      case Kind::kString: return len_field(n.text.size());
      case Kind::kNumber: return 1 + 8;
      default: return 1 + 1;
    }
  }
  static size_t entry_size(const Node& n) { return len_field(n.key.size()) + len_field(value_size(n)); }

  void skip_space() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\t' || *p_ == '\r')) ++p_;
  }
  // After the opening quote: the text up to the closing one, with no escape or control character.
  bool parse_string(std::string_view* out) {
    const char* start = p_;
    const char* c = p_;
#ifdef __SSE2__
    // 16 bytes at a time: the first quote, backslash or control character.
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i control = _mm_set1_epi8(0x1f);
    for (; end_ - c >= 16; c += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
      const __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                        _mm_cmpeq_epi8(_mm_min_epu8(v, control), v));
      if (const int mask = _mm_movemask_epi8(stop)) {
        c += std::countr_zero(unsigned(mask));
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
  // After an object's '{': its fields up to and past its '}', adding their size to `*size`.
  bool parse_fields(int depth, size_t* size) {
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
      Node n{};
      if (!parse_string(&n.key)) return false;
      skip_space();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      skip_space();
      if (p_ == end_) return false;
      const size_t index = nodes_.size();
      switch (*p_) {
        case '{': {
          ++p_;
          n.kind = Kind::kObject;
          nodes_.push_back(n);
          size_t fields = 0;
          if (!parse_fields(depth + 1, &fields)) return false;
          nodes_[index].fields = fields;
          nodes_[index].end = nodes_.size();
          break;
        }
        case '"':
          ++p_;
          n.kind = Kind::kString;
          if (!parse_string(&n.text)) return false;
          nodes_.push_back(n);
          break;
        case 't':
        case 'f':
        case 'n': {
          const char c = *p_;
          n.kind = c == 't' ? Kind::kTrue : c == 'f' ? Kind::kFalse : Kind::kNull;
          if (!parse_word(c == 't' ? "true" : c == 'f' ? "false" : "null")) return false;
          nodes_.push_back(n);
          break;
        }
        default:
          n.kind = Kind::kNumber;
          if (!parse_integer(&n.number)) return false;
          nodes_.push_back(n);
          break;
      }
      *size += len_field(entry_size(nodes_[index]));
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

  void put_fields(Out& out, uint8_t t, size_t from, size_t to) const {
    for (size_t i = from; i < to;) {
      const Node& n = nodes_[i];
      put_len(out, t, entry_size(n));
      put_bytes(out, kEntryKey, n.key);
      put_len(out, kEntryValue, value_size(n));
      switch (n.kind) {
        case Kind::kObject:
          put_len(out, kValueStruct, n.fields);
          put_fields(out, kStructFields, i + 1, n.end);
          i = n.end;
          continue;
        case Kind::kString:
          put_bytes(out, kValueString, n.text);
          break;
        case Kind::kNumber: {
          out.push_back(char(kValueNumber));
          const uint64_t bits = std::bit_cast<uint64_t>(n.number);
          char le[8];
          for (int k = 0; k < 8; ++k) le[k] = char(uint8_t(bits >> (8 * k)));
          out.append(le, 8);
          break;
        }
        case Kind::kTrue:
        case Kind::kFalse:
          out.push_back(char(kValueBool));
          out.push_back(n.kind == Kind::kTrue ? 1 : 0);
          break;
        case Kind::kNull:
          out.push_back(char(kValueNull));
          out.push_back(0);
          break;
      }
      ++i;
    }
  }

  std::vector<Node> nodes_;
  const char* p_ = nullptr;
  const char* end_ = nullptr;
  size_t fields_size_ = 0;
};

}  // namespace

std::optional<std::string> append_records_fragment(std::string_view stream, std::optional<int64_t> expected,
                                                   std::span<const EventData> events, std::string* out) {
  const size_t start = out->size();
  size_t reserve = 0;
  for (const EventData& e : events) reserve += e.data.size() + e.metadata.size() + e.type.size() + stream.size() + 96;
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
    if (!e.metadata.empty()) {
      is_plain = simdjson::validate_utf8(e.metadata.data(), e.metadata.size()) && plain.parse(e.metadata);
      element root;
      if (is_plain) {
        props_size = plain.fields_size();
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
    if (is_plain) {
      plain.put(w, kRecordProperties);
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

}  // namespace kingest::wire
