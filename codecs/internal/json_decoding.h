// What the JSON codec's files share (private to codecs/). Decoding is one pass over the top-level
// object (json_decode.cc) that recognises envelope fields by name (here), reads their values
// (json_fields.cc), walks every other member to validate it (json_walk.cc) and explains what it
// refuses (json_reasons.cc); json_encode.cc writes events. The text helpers defined here are
// inline because the pass and the walk call them for every member.
#pragma once

#include <simdjson.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codecs/json_codec.h"
#include "core/domain_event.h"

namespace kingest::codecs::json_internal {

namespace od = simdjson::ondemand;
using simdjson::error_code;

// Deepest payload nesting accepted (simdjson's DOM default); also bounds the walk's recursion.
inline constexpr size_t kMaxDepth = 1024;

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

inline constexpr std::array<std::string_view, 13> kFieldNames = {
    "",           "eventId",     "eventType",  "aggregateId", "aggregateType", "aggregateVersion", "correlationId",
    "causationId", "occurredOn", "occurredAt", "timestamp",   "data",          "metadata"};

inline std::string_view name_of(Field f) { return kFieldNames[static_cast<size_t>(f)]; }

// The envelope field a top-level key names (kPayload for any other key).
inline Field classify(std::string_view k) {
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

// One top-level member that may end up in the payload (any non-envelope key, and every
// time-named one), as spans of the input text.
struct Member {
  Field kind;
  const char* key_begin;    // the key's opening quote
  const char* value_begin;  // first byte of the value
  const char* value_end;    // one past the value's last byte
};

// The time-named members seen (occurredOn, occurredAt, timestamp, in that order).
struct TimeMembers {
  std::array<ShortString, 3> values;
  std::array<bool, 3> present{};  // with a value (not null or "")
  std::array<bool, 3> seen{};     // present at all
  std::array<std::optional<DecodeError>, 3> errors;
  std::array<size_t, 3> member{};  // index in the members
};

inline bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

inline std::string_view trim_right(std::string_view s) {
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view trim(std::string_view s);

// Whether `s` holds a backslash. `s` must lie in the padded input simdjson parses, whose
// SIMDJSON_PADDING (64) bytes after its end are readable: a key or string of up to sixteen bytes,
// most of an envelope's, is one compare of sixteen bytes whose matches past `s` are masked off;
// longer ones go to memchr, which is faster per byte.
inline bool has_backslash(std::string_view s) {
  static_assert(simdjson::SIMDJSON_PADDING >= 16);
#if defined(__SSE2__)
  if (s.size() <= 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data()));
    const auto hits = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, _mm_set1_epi8('\\'))));
    return (hits & ((uint32_t{1} << s.size()) - 1)) != 0;
  }
#endif
  return std::memchr(s.data(), '\\', s.size()) != nullptr;
}

// Whether a member or element ending at `end` is followed by a comma or the container's `closer`
// (a second line of defence: On-Demand checks this too for the values it consumes).
inline bool followed_by(const char* end, char closer) {
  while (is_ws(*end)) ++end;
  return *end == ',' || *end == closer;
}

// json_walk.cc: tokens, and the walk that validates a whole value.
std::string_view raw_key(const char* key_raw, const char* value_begin);
error_code string_value(od::value& v, std::string_view token, std::string_view& out);
enum class NumberKind { kInvalid, kInteger, kFloat };
NumberKind classify_number(std::string_view s);
error_code walk(od::value& v, size_t depth, const char*& end);

// json_decode.cc: after the pass over the top-level object: the required fields' presence, the
// envelope's time, and the payload assembled from `members` (bit per Field in `seen`).
std::optional<DecodeError> finish_event(const std::vector<Member>& members, TimeMembers& times, uint32_t seen,
                                        JsonShape shape, DomainEvent& event);

// json_scan.cc: the common case decoded without simdjson's On-Demand pass. True when `event` holds
// the result the full pass would give; false (`event` left partly written) when the input has
// anything the scan leaves to the full pass: an error of any kind, escapes in a key or an envelope
// string, \u escapes, numbers or objects as times, an integer aggregateId, deep nesting. `data`
// must be followed by simdjson's padding (readable, any content).
bool scan_event(const char* data, size_t size, JsonShape shape, std::vector<Member>& members, DomainEvent& event);

// json_scan.cc: true when `data` is one JSON object (whitespace around it) of the kind the scan
// takes; false when it is not, or when it holds what the scan leaves to On-Demand (\u escapes,
// nesting deeper than the scan's limit). Padded like scan_event's input.
bool scan_json_object(const char* data, size_t size);

// json_decode.cc: `bytes` decoded by the full pass alone, without trying the scan first (for the
// tests and the fuzz target that compare the two).
DecodeResult decode_json_full_pass(std::string_view bytes, JsonShape shape);
// The same for check_json_object: On-Demand alone.
std::optional<std::string> check_json_object_full_pass(std::string_view text);

// json_reasons.cc: the one-line reasons of DecodeError.
std::string_view type_name(od::json_type t);
std::string excerpt(std::string_view token);
void append_key_for_reason(std::string& out, std::string_view key);
DecodeError invalid_json(error_code e, std::string_view where = {});
std::string quote_text(std::string_view s);
DecodeError invalid_json_text(error_code e, std::string_view input);
DecodeError field_error(std::string_view field, std::string_view what);
DecodeError type_error(std::string_view field, std::string_view expected, std::string_view got);

// json_fields.cc: the envelope fields' values.
std::optional<DecodeError> read_optional_string(od::value& v, Field f, ShortString& out);
std::optional<DecodeError> read_required_string(od::value& v, Field f, ShortString& out);
std::optional<DecodeError> read_aggregate_id(od::value& v, ShortString& out);
std::optional<DecodeError> read_aggregate_version(od::value& v, int64_t& out);
void read_time(od::value& v, Field f, ShortString& out, bool& present, std::optional<DecodeError>& json_error,
               std::optional<DecodeError>& time_error);

}  // namespace kingest::codecs::json_internal
