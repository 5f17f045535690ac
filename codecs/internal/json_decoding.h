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
