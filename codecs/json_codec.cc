// JSON envelope codec on simdjson's On-Demand API (error codes only, never exceptions).
//
// One pass over the top-level object: envelope fields are converted as they come; every other
// member is walked (fully validated: On-Demand skips values lazily, so the walk is what makes the
// payload guaranteed-valid JSON) and remembered as a span of the input text. At the end the shape
// is chosen and the payload is assembled from those spans, byte for byte.
#include "codecs/json_codec.h"

#include "codecs/decode_guard.h"

#include "core/json_writer.h"

#include <simdjson.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kingest::codecs {
namespace {

namespace od = simdjson::ondemand;
using simdjson::error_code;

static_assert(kValuePadding >= simdjson::SIMDJSON_PADDING,
              "SourceMessage::assign_value must reserve at least simdjson's padding");

// Deepest payload nesting accepted (simdjson's DOM default); also bounds the walk's recursion.
constexpr size_t kMaxDepth = 1024;
// Thread-local buffers larger than this are released at the thread's next call.
constexpr size_t kKeepBytes = size_t{4} << 20;

enum class Field : uint8_t {
  kPayload,  // not an envelope field
  kEventId,
  kEventType,
  kAggregateId,
  kAggregateType,
  kAggregateVersion,
  kCorrelationId,
  kCausationId,
  kOccurredOn,
  kOccurredAt,
  kTimestamp,
  kData,      // payload in the flat shape, the payload's container in the nested one
  kMetadata,  // payload in the flat shape, beside the container in the nested one (not kept)
};

constexpr std::array<std::string_view, 13> kFieldNames = {
    "",           "eventId",     "eventType",  "aggregateId", "aggregateType", "aggregateVersion", "correlationId",
    "causationId", "occurredOn", "occurredAt", "timestamp",   "data",          "metadata"};

std::string_view name_of(Field f) { return kFieldNames[static_cast<size_t>(f)]; }

Field classify(std::string_view k) {
  switch (k.size()) {
    case 4:
      if (k == "data") return Field::kData;
      break;
    case 7:
      if (k == "eventId") return Field::kEventId;
      break;
    case 8:
      if (k == "metadata") return Field::kMetadata;
      break;
    case 9:
      if (k == "eventType") return Field::kEventType;
      if (k == "timestamp") return Field::kTimestamp;
      break;
    case 10:
      if (k == "occurredOn") return Field::kOccurredOn;
      if (k == "occurredAt") return Field::kOccurredAt;
      break;
    case 11:
      if (k == "aggregateId") return Field::kAggregateId;
      if (k == "causationId") return Field::kCausationId;
      break;
    case 13:
      if (k == "aggregateType") return Field::kAggregateType;
      if (k == "correlationId") return Field::kCorrelationId;
      break;
    case 16:
      if (k == "aggregateVersion") return Field::kAggregateVersion;
      break;
    default:
      break;
  }
  return Field::kPayload;
}

// One non-envelope member of the top-level object, as spans of the input text.
struct Member {
  Field kind;
  const char* key_begin;    // the key's opening quote
  const char* value_begin;  // first byte of the value
  const char* value_end;    // one past the value's last byte
};

std::string_view type_name(od::json_type t) {
  switch (t) {
    case od::json_type::array: return "array";
    case od::json_type::object: return "object";
    case od::json_type::number: return "number";
    case od::json_type::string: return "string";
    case od::json_type::boolean: return "boolean";
    case od::json_type::null: return "null";
  }
  return "unknown";
}

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  return trim_right(s);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool has_backslash(std::string_view s) { return std::memchr(s.data(), '\\', s.size()) != nullptr; }

// Stage 1 has already validated UTF-8, unescaped control characters and string boundaries for
// the whole input, so a string without a backslash needs no further checking and its raw bytes
// are its value. Only strings with escapes go through simdjson's unescaper.

// The raw text between a key's quotes. `key_raw` is just after the opening quote; On-Demand has
// checked that only whitespace, a colon and whitespace lie between the closing quote and the value.
std::string_view raw_key(const char* key_raw, const char* value_begin) {
  const char* p = value_begin - 1;
  while (is_ws(*p)) --p;  // now at ':'
  --p;
  while (is_ws(*p)) --p;  // now at the closing quote
  return {key_raw, static_cast<size_t>(p - key_raw)};
}

// A string value's contents. `token` is the value's raw token (starting at its opening quote).
error_code string_value(od::value& v, std::string_view token, std::string_view& out) {
  token = trim_right(token);
  const std::string_view inner = token.substr(1, token.size() - 2);
  if (!has_backslash(inner)) {
    // Still consume the token: On-Demand would otherwise skip it lazily, and its skipping takes a
    // string followed by ':' for a key, letting {"a":"b":1} through.
    od::raw_json_string raw;
    if (auto e = v.get_raw_json_string().get(raw)) return e;
    out = inner;
    return simdjson::SUCCESS;
  }
  return v.get_string().get(out);  // unescapes into the parser's buffer, validating the escapes
}

enum class NumberKind { kInvalid, kInteger, kFloat };

// RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
NumberKind classify_number(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  if (i >= n) return NumberKind::kInvalid;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && is_digit(s[i])) ++i;
  } else {
    return NumberKind::kInvalid;
  }
  bool is_float = false;
  if (i < n && s[i] == '.') {
    ++i;
    if (i >= n || !is_digit(s[i])) return NumberKind::kInvalid;
    while (i < n && is_digit(s[i])) ++i;
    is_float = true;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= n || !is_digit(s[i])) return NumberKind::kInvalid;
    while (i < n && is_digit(s[i])) ++i;
    is_float = true;
  }
  if (i != n) return NumberKind::kInvalid;
  return is_float ? NumberKind::kFloat : NumberKind::kInteger;
}

// A short, printable excerpt of a token for error reasons.
std::string excerpt(std::string_view token) {
  constexpr size_t kMax = 40;
  std::string out(token.substr(0, kMax));
  if (token.size() > kMax) out += "...";
  return out;
}

// A payload key as it appears in a reason: control characters as \xNN so the reason stays one
// line, cut after 64 bytes (at a UTF-8 boundary) with "...". Keys are valid UTF-8 here.
void append_key_for_reason(std::string& out, std::string_view key) {
  static constexpr char kHex[] = "0123456789abcdef";
  constexpr size_t kMax = 64;
  size_t n = key.size();
  if (n > kMax) {
    n = kMax;
    while (n > 0 && (static_cast<unsigned char>(key[n]) & 0xC0) == 0x80) --n;  // not mid-character
  }
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (n < key.size()) out += "...";
}

DecodeError invalid_json(error_code e, std::string_view where = {}) {
  std::string reason = "invalid JSON";
  if (!where.empty()) {
    reason += " in field \"";
    append_key_for_reason(reason, where);
    reason += '"';
  }
  reason += ": ";
  reason += simdjson::error_message(e);
  return DecodeError{std::move(reason)};
}

// Received text for a reason: printable ASCII as is (quotes included, it reads best), every other
// byte as \xNN so the reason stays one line whatever arrived; cut after 60 bytes with "...".
std::string quote_text(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  constexpr size_t kMax = 60;
  std::string out;
  const size_t n = s.size() < kMax ? s.size() : kMax;
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (s.size() > kMax) out += "...";
  return out;
}

// The whole input is not JSON: say what was received, so that a producer sending something else
// (NestJS up to 11.1.5 sends a class instance as the text "[object Object]") sees the cause.
DecodeError invalid_json_text(error_code e, std::string_view input) {
  std::string reason = "invalid JSON: got ";
  if (input.empty()) {
    reason += "empty input";
  } else {
    reason += "the text \"";
    reason += quote_text(input);
    reason += "\" (";
    reason += std::to_string(input.size());
    reason += " bytes)";
  }
  reason += ": ";
  reason += simdjson::error_message(e);
  return DecodeError{std::move(reason)};
}

DecodeError field_error(std::string_view field, std::string_view what) {
  std::string reason(field);
  reason += ": ";
  reason += what;
  return DecodeError{std::move(reason)};
}

DecodeError type_error(std::string_view field, std::string_view expected, std::string_view got) {
  std::string reason(field);
  reason += ": expected ";
  reason += expected;
  reason += ", got ";
  reason += got;
  return DecodeError{std::move(reason)};
}

// Whether a member or element ending at `end` is followed by a comma or the container's `closer`
// (a second line of defence: On-Demand checks this too for the values it consumes).
bool followed_by(const char* end, char closer) {
  while (is_ws(*end)) ++end;
  return *end == ',' || *end == closer;
}

// Walks `v` to its end, validating everything On-Demand would otherwise skip (scalars, escapes,
// commas, brackets). On success `end` is one past the value's last byte in the input.
error_code walk(od::value& v, size_t depth, const char*& end) {
  od::json_type t;
  if (auto e = v.type().get(t)) return e;
  const std::string_view token = v.raw_json_token();
  switch (t) {
    case od::json_type::object: {
      if (depth >= kMaxDepth) return simdjson::DEPTH_ERROR;
      od::object obj;
      if (auto e = v.get_object().get(obj)) return e;
      const char* last = token.data() + 1;
      for (auto field_result : obj) {
        od::field field;
        if (auto e = std::move(field_result).get(field)) return e;
        od::value& child = field.value();
        if (has_backslash(raw_key(field.key().raw(), child.raw_json_token().data()))) {
          std::string_view key;
          if (auto e = field.unescaped_key().get(key)) return e;  // validates the key's escapes
        }
        if (auto e = walk(child, depth + 1, last)) return e;
        if (!followed_by(last, '}')) return simdjson::TAPE_ERROR;
      }
      while (is_ws(*last)) ++last;
      if (*last != '}') return simdjson::TAPE_ERROR;
      end = last + 1;
      return simdjson::SUCCESS;
    }
    case od::json_type::array: {
      if (depth >= kMaxDepth) return simdjson::DEPTH_ERROR;
      od::array arr;
      if (auto e = v.get_array().get(arr)) return e;
      const char* last = token.data() + 1;
      for (auto element_result : arr) {
        od::value element;
        // NOLINTNEXTLINE(performance-move-const-arg): simdjson_result::get is &&-qualified
        if (auto e = std::move(element_result).get(element)) return e;
        if (auto e = walk(element, depth + 1, last)) return e;
        if (!followed_by(last, ']')) return simdjson::TAPE_ERROR;
      }
      while (is_ws(*last)) ++last;
      if (*last != ']') return simdjson::TAPE_ERROR;
      end = last + 1;
      return simdjson::SUCCESS;
    }
    case od::json_type::string: {
      std::string_view s;
      if (auto e = string_value(v, token, s)) return e;
      break;
    }
    case od::json_type::number:
      // Checked by grammar rather than parsed: numbers beyond 64 bits are valid JSON and are kept.
      if (classify_number(trim_right(token)) == NumberKind::kInvalid) return simdjson::NUMBER_ERROR;
      break;
    case od::json_type::boolean: {
      bool b;
      if (auto e = v.get_bool().get(b)) return e;
      break;
    }
    case od::json_type::null: {
      bool is_null = false;
      if (auto e = v.is_null().get(is_null)) return e;
      if (!is_null) return simdjson::N_ATOM_ERROR;
      break;
    }
  }
  end = token.data() + trim_right(token).size();
  return simdjson::SUCCESS;
}

// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil_from_days).
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
}

void put_digits(char*& p, int64_t v, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  p += width;
}

// Epoch milliseconds representable as a four-digit year: 0000-01-01 .. 9999-12-31.
constexpr int64_t kMinEpochMillis = -62167219200000;
constexpr int64_t kMaxEpochMillis = 253402300799999;

// Reads an optional string envelope field. Null counts as absent.
std::optional<DecodeError> read_optional_string(od::value& v, Field f, std::string& out) {
  od::json_type t;
  if (auto e = v.type().get(t)) return invalid_json(e, name_of(f));
  if (t == od::json_type::string) {
    std::string_view s;
    if (auto e = string_value(v, v.raw_json_token(), s)) return invalid_json(e, name_of(f));
    out.assign(s);
    return std::nullopt;
  }
  if (t == od::json_type::null) {
    bool is_null = false;
    if (auto e = v.is_null().get(is_null)) return invalid_json(e, name_of(f));
    if (!is_null) return invalid_json(simdjson::N_ATOM_ERROR, name_of(f));
    out.clear();
    return std::nullopt;
  }
  return type_error(name_of(f), "a string", type_name(t));
}

std::optional<DecodeError> read_required_string(od::value& v, Field f, std::string& out) {
  od::json_type t;
  if (auto e = v.type().get(t)) return invalid_json(e, name_of(f));
  if (t != od::json_type::string) return type_error(name_of(f), "a non-empty string", type_name(t));
  std::string_view s;
  if (auto e = string_value(v, v.raw_json_token(), s)) return invalid_json(e, name_of(f));
  if (s.empty()) return type_error(name_of(f), "a non-empty string", "an empty string");
  out.assign(s);
  return std::nullopt;
}

// aggregateId: a non-empty string, or a JSON integer rendered as decimal text.
std::optional<DecodeError> read_aggregate_id(od::value& v, std::string& out) {
  constexpr std::string_view kExpected = "a non-empty string or an integer";
  const std::string_view name = name_of(Field::kAggregateId);
  od::json_type t;
  if (auto e = v.type().get(t)) return invalid_json(e, name);
  if (t != od::json_type::number) {
    if (t != od::json_type::string) return type_error(name, kExpected, type_name(t));
    return read_required_string(v, Field::kAggregateId, out);
  }
  const std::string_view token = trim_right(v.raw_json_token());
  const NumberKind kind = classify_number(token);
  if (kind == NumberKind::kInvalid) return invalid_json(simdjson::NUMBER_ERROR, name);
  if (kind == NumberKind::kFloat) return type_error(name, kExpected, excerpt(token));
  char buf[24];
  char* p = buf;
  if (token.front() == '-') {
    int64_t n = 0;
    if (v.get_int64().get(n)) return type_error(name, kExpected, "out-of-range integer " + excerpt(token));
    p = std::to_chars(buf, buf + sizeof buf, n).ptr;
  } else {
    uint64_t n = 0;
    if (v.get_uint64().get(n)) return type_error(name, kExpected, "out-of-range integer " + excerpt(token));
    p = std::to_chars(buf, buf + sizeof buf, n).ptr;
  }
  out.assign(buf, p);
  return std::nullopt;
}

std::optional<DecodeError> read_aggregate_version(od::value& v, int64_t& out) {
  constexpr std::string_view kExpected = "a non-negative integer";
  const std::string_view name = name_of(Field::kAggregateVersion);
  od::json_type t;
  if (auto e = v.type().get(t)) return invalid_json(e, name);
  if (t != od::json_type::number) return type_error(name, kExpected, type_name(t));
  const std::string_view token = trim_right(v.raw_json_token());
  const NumberKind kind = classify_number(token);
  if (kind == NumberKind::kInvalid) return invalid_json(simdjson::NUMBER_ERROR, name);
  if (kind == NumberKind::kFloat || token.front() == '-') return type_error(name, kExpected, excerpt(token));
  int64_t n = 0;
  if (v.get_int64().get(n) || n < 0) {
    return type_error(name, kExpected, excerpt(token) + " (beyond the int64 range)");
  }
  out = n;
  return std::nullopt;
}

// occurredOn / occurredAt / timestamp: a string kept verbatim, or epoch milliseconds. Consumes a
// scalar value. `present`: the value is not null or "" (such a member is the envelope's time only
// when it is the first present one). An error in `json_error` is invalid JSON (always fatal); one in
// `time_error` matters only if this member becomes the envelope's time, else the member is payload.
void read_time(od::value& v, Field f, std::string& out, bool& present, std::optional<DecodeError>& json_error,
               std::optional<DecodeError>& time_error) {
  constexpr std::string_view kExpected = "a string or epoch milliseconds";
  od::json_type t;
  if (auto e = v.type().get(t)) {
    json_error = invalid_json(e, name_of(f));
    return;
  }
  if (t == od::json_type::string || t == od::json_type::null) {
    if (auto err = read_optional_string(v, f, out)) {
      json_error = std::move(err);
      return;
    }
    present = !out.empty();  // null and "" count as absent
    return;
  }
  if (t != od::json_type::number) {
    // A boolean here: validated like payload, judged only if it is the envelope's time.
    bool b;
    if (auto e = v.get_bool().get(b)) {
      json_error = invalid_json(e, name_of(f));
      return;
    }
    present = true;
    time_error = type_error(name_of(f), kExpected, type_name(t));
    return;
  }
  present = true;
  const std::string_view token = trim_right(v.raw_json_token());
  const NumberKind kind = classify_number(token);
  if (kind == NumberKind::kInvalid) {
    json_error = invalid_json(simdjson::NUMBER_ERROR, name_of(f));
    return;
  }
  int64_t ms = 0;
  bool in_range = false;
  if (kind == NumberKind::kInteger) {
    in_range = !v.get_int64().get(ms);
  } else {
    double d = 0;
    if (!v.get_double().get(d) && std::isfinite(d) && d >= double(kMinEpochMillis) &&
        d < double(kMaxEpochMillis) + 1) {
      ms = static_cast<int64_t>(std::floor(d));
      in_range = true;
    }
  }
  if (!in_range || ms < kMinEpochMillis || ms > kMaxEpochMillis) {
    time_error = field_error(name_of(f), "epoch milliseconds out of range (years 0000-9999): " + excerpt(token));
    return;
  }
  out = epoch_millis_to_iso8601(ms);
}

struct ThreadState {
  od::parser parser;
  std::string copy;              // padded copy of inputs that lack padding capacity
  std::vector<Member> members;   // scratch, reused
};

ThreadState& thread_state() {
  thread_local ThreadState state;
  return state;
}

DecodeResult decode_padded(ThreadState& ts, simdjson::padded_string_view json, JsonShape shape) {
  const std::string_view input(json.data(), json.size());
  od::document doc;
  if (auto e = ts.parser.iterate(json).get(doc)) return invalid_json_text(e, input);
  od::json_type top;
  if (auto e = doc.type().get(top)) return invalid_json_text(e, input);
  if (top != od::json_type::object && top != od::json_type::array) {
    return type_error("top level", "a JSON object",
                      std::string(type_name(top)) + " \"" + quote_text(trim(input)) + "\"");
  }
  if (top == od::json_type::array) {
    // Valid JSON of another type, or text that merely starts like it ("[object Object]").
    od::value v;
    const char* end = nullptr;
    if (auto e = doc.get_value().get(v)) return invalid_json_text(e, input);
    if (auto e = walk(v, 1, end)) return invalid_json_text(e, input);
    if (!doc.current_location().error()) return invalid_json_text(simdjson::TRAILING_CONTENT, input);
    return type_error("top level", "a JSON object",
                      std::string(type_name(top)) + " \"" + quote_text(trim(input)) + "\"");
  }
  od::object obj;
  if (auto e = doc.get_object().get(obj)) return invalid_json_text(e, input);

  DomainEvent event;
  std::array<std::string, 3> times;  // occurredOn, occurredAt, timestamp
  std::array<bool, 3> time_present{};  // with a value (not null or "")
  std::array<bool, 3> time_seen{};     // present at all
  std::array<std::optional<DecodeError>, 3> time_errors;
  std::array<size_t, 3> time_member{};  // index in `members`
  uint32_t seen = 0;                 // bit per envelope Field
  auto& members = ts.members;
  members.clear();

  for (auto field_result : obj) {
    od::field field;
    if (auto e = std::move(field_result).get(field)) return invalid_json_text(e, input);
    const char* key_raw = field.key().raw();
    od::value& v = field.value();
    std::string_view key = raw_key(key_raw, v.raw_json_token().data());
    if (has_backslash(key)) {
      if (auto e = field.unescaped_key().get(key)) return invalid_json(e);
    }
    const Field kind = classify(key);
    const char* key_begin = key_raw - 1;

    if (kind == Field::kPayload || kind == Field::kData || kind == Field::kMetadata) {
      Member m{kind, key_begin, v.raw_json_token().data(), nullptr};
      if (auto e = walk(v, 1, m.value_end)) return invalid_json(e, key);
      if (!followed_by(m.value_end, '}')) return invalid_json(simdjson::TAPE_ERROR, key);
      members.push_back(m);
      continue;
    }

    const uint32_t bit = 1u << static_cast<unsigned>(kind);
    if (seen & bit) return field_error(name_of(kind), "duplicate field");
    seen |= bit;

    std::optional<DecodeError> err;
    switch (kind) {
      case Field::kEventId: err = read_optional_string(v, kind, event.event_id); break;
      case Field::kEventType: err = read_required_string(v, kind, event.event_type); break;
      case Field::kAggregateId: err = read_aggregate_id(v, event.aggregate_id); break;
      case Field::kAggregateType: err = read_required_string(v, kind, event.aggregate_type); break;
      case Field::kAggregateVersion: err = read_aggregate_version(v, event.aggregate_version); break;
      case Field::kCorrelationId: err = read_optional_string(v, kind, event.correlation_id); break;
      case Field::kCausationId: err = read_optional_string(v, kind, event.causation_id); break;
      case Field::kOccurredOn:
      case Field::kOccurredAt:
      case Field::kTimestamp: {
        // Every time-named member is kept as a payload candidate: only the first present one is
        // the envelope's time, the others stay in the payload.
        const size_t i = static_cast<size_t>(kind) - static_cast<size_t>(Field::kOccurredOn);
        Member m{kind, key_begin, v.raw_json_token().data(), nullptr};
        od::json_type t;
        if (auto e = v.type().get(t)) return invalid_json(e, key);
        if (t == od::json_type::object || t == od::json_type::array) {
          if (auto e = walk(v, 1, m.value_end)) return invalid_json(e, key);
          time_present[i] = true;
          time_errors[i] = type_error(name_of(kind), "a string or epoch milliseconds", type_name(t));
        } else {
          const std::string_view token = trim_right(v.raw_json_token());
          m.value_end = token.data() + token.size();
          read_time(v, kind, times[i], time_present[i], err, time_errors[i]);
        }
        if (!err && !followed_by(m.value_end, '}')) return invalid_json(simdjson::TAPE_ERROR, key);
        time_seen[i] = true;
        time_member[i] = members.size();
        members.push_back(m);
        break;
      }
      default: break;
    }
    if (err) return std::move(*err);
  }

  // Anything after the top-level object's closing brace.
  if (!doc.current_location().error()) return invalid_json_text(simdjson::TRAILING_CONTENT, input);

  for (Field f : {Field::kEventType, Field::kAggregateId, Field::kAggregateType, Field::kAggregateVersion}) {
    if (!(seen & (1u << static_cast<unsigned>(f)))) {
      std::string reason = "missing required field ";
      reason += name_of(f);
      return DecodeError{std::move(reason)};
    }
  }
  // The envelope's time: the first time-named member with a value; when none has one, the first
  // present (null or "", i.e. no time). Every other time-named member is payload.
  const Member* time_used = nullptr;
  for (size_t i = 0; i < times.size(); ++i) {
    if (time_present[i]) {
      if (time_errors[i]) return std::move(*time_errors[i]);
      event.occurred_at = std::move(times[i]);
      time_used = &members[time_member[i]];
      break;
    }
  }
  for (size_t i = 0; time_used == nullptr && i < times.size(); ++i) {
    if (time_seen[i]) time_used = &members[time_member[i]];
  }

  if (shape == JsonShape::kNested) {
    // The payload is the `data` object; besides it only `metadata` (the producer's own, not kept)
    // may sit next to the envelope, so that nothing else is silently dropped.
    const Member* data = nullptr;
    for (const Member& m : members) {
      if (&m == time_used) continue;
      if (m.kind == Field::kData && data == nullptr) {
        if (*m.value_begin != '{') return DecodeError{"nested shape: \"data\" is not a JSON object"};
        data = &m;
      } else if (m.kind != Field::kMetadata) {
        std::string reason = "nested shape: unexpected top-level field \"";
        append_key_for_reason(reason, raw_key(m.key_begin + 1, m.value_begin));
        reason += "\" (the payload goes under \"data\"; the json codec takes the flat shape)";
        return DecodeError{std::move(reason)};
      }
    }
    if (data == nullptr) return DecodeError{"nested shape: missing \"data\" object"};
    event.payload.assign(data->value_begin, data->value_end);
    return event;
  }

  // Flat: every member that is not the envelope's, in input order, text verbatim.
  size_t payload_size = 2;
  for (const Member& m : members) payload_size += static_cast<size_t>(m.value_end - m.key_begin) + 1;
  event.payload.reserve(payload_size);
  event.payload.push_back('{');
  bool first = true;
  for (const Member& m : members) {
    if (&m == time_used) continue;
    if (!first) event.payload.push_back(',');
    first = false;
    event.payload.append(m.key_begin, m.value_end);
  }
  event.payload.push_back('}');
  return event;
}

// Frees thread-local buffers that a rare huge message grew (they would otherwise stay with the
// thread for its lifetime).
void trim_thread_state(ThreadState& ts) {
  if (ts.parser.capacity() > kKeepBytes) ts.parser = od::parser{};
  if (ts.copy.capacity() > kKeepBytes) std::string().swap(ts.copy);
  if (ts.members.capacity() > 4096) std::vector<Member>().swap(ts.members);
}

DecodeResult decode_guarded(const char* data, size_t size, size_t capacity, bool needs_copy, JsonShape shape) {
  return detail::guard_decode([&]() -> DecodeResult {
    ThreadState& ts = thread_state();
    // Buffers grown by a previous huge message are released here rather than after the decode,
    // so that the result can be returned without a move.
    trim_thread_state(ts);
    if (needs_copy) {
      ts.copy.reserve(size + simdjson::SIMDJSON_PADDING);
      ts.copy.assign(data, size);
      return decode_padded(ts, simdjson::padded_string_view(ts.copy.data(), size, ts.copy.capacity()), shape);
    }
    return decode_padded(ts, simdjson::padded_string_view(data, size, capacity), shape);
  });
}

bool is_object_text(std::string_view s) { return s.size() >= 2 && s.front() == '{' && s.back() == '}'; }

void append_key(std::string& out, bool& first, std::string_view key) {
  if (!first) out.push_back(',');
  first = false;
  out.push_back('"');
  out.append(key);
  out.append("\":");
}

}  // namespace

DecodeResult decode_json(const std::string& bytes, JsonShape shape) {
  const bool padded = bytes.capacity() >= bytes.size() + simdjson::SIMDJSON_PADDING;
  return decode_guarded(bytes.data(), bytes.size(), bytes.capacity(), !padded, shape);
}

DecodeResult decode_json(std::string_view bytes, JsonShape shape) {
  return decode_guarded(bytes.data(), bytes.size(), 0, true, shape);
}

std::optional<std::string> check_json_object(std::string_view text) {
  try {
    ThreadState& ts = thread_state();
    trim_thread_state(ts);
    ts.copy.reserve(text.size() + simdjson::SIMDJSON_PADDING);
    ts.copy.assign(text);
    const simdjson::padded_string_view json(ts.copy.data(), text.size(), ts.copy.capacity());
    od::document doc;
    if (auto e = ts.parser.iterate(json).get(doc)) return std::string(simdjson::error_message(e));
    od::json_type top;
    if (auto e = doc.type().get(top)) return std::string(simdjson::error_message(e));
    if (top != od::json_type::object) return "expected a JSON object, got " + std::string(type_name(top));
    od::value v;
    if (auto e = doc.get_value().get(v)) return std::string(simdjson::error_message(e));
    const char* end = nullptr;
    if (auto e = walk(v, 1, end)) return std::string(simdjson::error_message(e));
    if (!doc.current_location().error()) return std::string(simdjson::error_message(simdjson::TRAILING_CONTENT));
    return std::nullopt;
  } catch (const std::bad_alloc&) {
    return std::string("out of memory while validating JSON");
  } catch (...) {
    return std::string("internal error while validating JSON");
  }
}

std::string epoch_millis_to_iso8601(int64_t ms) {
  int64_t days = ms / 86400000;
  int64_t rem = ms % 86400000;
  if (rem < 0) {
    rem += 86400000;
    --days;
  }
  int64_t year;
  unsigned month, day;
  civil_from_days(days, year, month, day);
  char buf[48];
  char* p = buf;
  if (year >= 0 && year <= 9999) {
    put_digits(p, year, 4);
  } else {
    // ISO 8601 expanded year: a sign and at least four digits.
    *p++ = year < 0 ? '-' : '+';
    const int64_t magnitude = year < 0 ? -year : year;  // |year| < 300,000 for any int64 ms
    if (magnitude <= 9999) {
      put_digits(p, magnitude, 4);
    } else {
      p = std::to_chars(p, buf + sizeof buf, magnitude).ptr;
    }
  }
  *p++ = '-';
  put_digits(p, month, 2);
  *p++ = '-';
  put_digits(p, day, 2);
  *p++ = 'T';
  put_digits(p, rem / 3600000, 2);
  *p++ = ':';
  put_digits(p, rem / 60000 % 60, 2);
  *p++ = ':';
  put_digits(p, rem / 1000 % 60, 2);
  *p++ = '.';
  put_digits(p, rem % 1000, 3);
  *p++ = 'Z';
  return std::string(buf, p);
}

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
