// The envelope fields' values, each read with json_codec.h's type rules, and epoch-millisecond
// times rendered as ISO 8601.
#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "codecs/internal/json_decoding.h"
#include "codecs/json_codec.h"

namespace kingest::codecs {
namespace {

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

}  // namespace

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

namespace json_internal {

// Epoch milliseconds representable as a four-digit year: 0000-01-01 .. 9999-12-31.
constexpr int64_t kMinEpochMillis = -62167219200000;
constexpr int64_t kMaxEpochMillis = 253402300799999;

// Reads an optional string envelope field. Null counts as absent.
std::optional<DecodeError> read_optional_string(od::value& v, Field f, ShortString& out) {
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

std::optional<DecodeError> read_required_string(od::value& v, Field f, ShortString& out) {
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
std::optional<DecodeError> read_aggregate_id(od::value& v, ShortString& out) {
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
void read_time(od::value& v, Field f, ShortString& out, bool& present, std::optional<DecodeError>& json_error,
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

}  // namespace json_internal
}  // namespace kingest::codecs
