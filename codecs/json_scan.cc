// The scan: the JSON envelope's common case decoded in one pass over the bytes, without simdjson's
// On-Demand navigation.
//
// On-Demand reaches every value through its structural index (simdjson's stage 1 over the whole
// input), and the walk that validates the payload visits each value again through it: most of a
// decode's cost on events of a few hundred bytes. The scan validates and splits the text itself,
// with one UTF-8 check over the input (simdjson's, chosen for the CPU at run time) and sixteen
// bytes at a time through strings.
//
// It accepts only what it can decode exactly as the full pass (json_decode.cc) does, and leaves
// everything else to it: any error (the full pass gives the reason), escapes in a top-level key or
// an envelope string, \u escapes anywhere, a time that is not a string or null, an aggregateId that
// is not a string, an aggregateVersion that is not a plain integer of up to 18 digits, a duplicate
// envelope field, nesting deeper than kScanDepth. What it accepts is decided by the same rules:
// RFC 8259's grammar, keys classified by `classify`, the same members kept, and `finish_event`
// choosing the time and assembling the payload. `scan_json_object` is the same walk for the binary
// codecs' JSON payloads (`check_json_object`). The test `JsonScan` and the fuzz target compare the
// two on every input they make.
#include <simdjson.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "codecs/internal/json_decoding.h"
#include "core/json_string_stops.h"

namespace kingest::codecs::json_internal {
namespace {

// Containers nested deeper than this are left to the full pass (which accepts up to kMaxDepth).
constexpr unsigned kScanDepth = 64;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

const char* skip_ws(const char* p, const char* end) {
  while (p < end && is_ws(*p)) ++p;
  return p;
}

// `p` is just after a string's opening quote. Returns its closing quote, or nullptr when the
// string is not closed before `end`, holds a control character or a \u escape, or an invalid
// escape. `escaped` is set when it holds an escape. Reads up to fifteen bytes past `end` (padding).
const char* scan_string(const char* p, const char* end, bool& escaped) {
  for (;;) {
    if (p >= end) return nullptr;
    const auto left = static_cast<size_t>(end - p);
#if defined(__SSE2__)
    uint32_t stops = json_string_stops(p);
    if (left < 16) stops |= uint32_t{1} << left;  // the end of the input stops the scan too
    if (stops == 0) {
      p += 16;
      continue;
    }
    const auto i = static_cast<size_t>(std::countr_zero(stops));
#else
    size_t i = 0;
    while (i < left && p[i] != '"' && p[i] != '\\' && static_cast<unsigned char>(p[i]) >= 0x20) ++i;
#endif
    if (i >= left) return nullptr;
    p += i;
    if (*p == '"') return p;
    if (*p != '\\' || left - i < 2) return nullptr;  // a control character, or the input ends
    switch (p[1]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        escaped = true;
        p += 2;
        break;
      default:
        return nullptr;  // \u (left to simdjson's unescaper, which checks surrogates) or invalid
    }
  }
}

// RFC 8259 number grammar from `p`: one past the number, or nullptr.
const char* scan_number(const char* p, const char* end) {
  if (p < end && *p == '-') ++p;
  if (p >= end) return nullptr;
  if (*p == '0') {
    ++p;
  } else if (*p >= '1' && *p <= '9') {
    ++p;
    while (p < end && is_digit(*p)) ++p;
  } else {
    return nullptr;
  }
  if (p < end && *p == '.') {
    ++p;
    if (p >= end || !is_digit(*p)) return nullptr;
    while (p < end && is_digit(*p)) ++p;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p < end && (*p == '+' || *p == '-')) ++p;
    if (p >= end || !is_digit(*p)) return nullptr;
    while (p < end && is_digit(*p)) ++p;
  }
  return p;
}

const char* scan_literal(const char* p, const char* end, std::string_view word) {
  if (static_cast<size_t>(end - p) < word.size() || std::memcmp(p, word.data(), word.size()) != 0) return nullptr;
  return p + word.size();
}

// After a member or element: `p` at the next one (after a comma), or `closed` set and `p` one past
// the closer. nullptr for anything else.
const char* after_item(const char* p, const char* end, char closer, bool& closed) {
  p = skip_ws(p, end);
  if (p >= end) return nullptr;
  if (*p == ',') return skip_ws(p + 1, end);
  if (*p != closer) return nullptr;
  closed = true;
  return p + 1;
}

// A whole JSON value at `p` (`p` < `end`, not whitespace): one past its last byte, or nullptr.
const char* scan_value(const char* p, const char* end, unsigned depth) {
  switch (*p) {
    case '"': {
      bool escaped = false;
      const char* q = scan_string(p + 1, end, escaped);
      return q != nullptr ? q + 1 : nullptr;
    }
    case '{': {
      if (depth >= kScanDepth) return nullptr;
      p = skip_ws(p + 1, end);
      if (p < end && *p == '}') return p + 1;
      for (bool closed = false; !closed;) {
        if (p >= end || *p != '"') return nullptr;
        bool escaped = false;
        const char* q = scan_string(p + 1, end, escaped);
        if (q == nullptr) return nullptr;
        p = skip_ws(q + 1, end);
        if (p >= end || *p != ':') return nullptr;
        p = skip_ws(p + 1, end);
        if (p >= end || (p = scan_value(p, end, depth + 1)) == nullptr) return nullptr;
        if ((p = after_item(p, end, '}', closed)) == nullptr) return nullptr;
      }
      return p;
    }
    case '[': {
      if (depth >= kScanDepth) return nullptr;
      p = skip_ws(p + 1, end);
      if (p < end && *p == ']') return p + 1;
      for (bool closed = false; !closed;) {
        if (p >= end || (p = scan_value(p, end, depth + 1)) == nullptr) return nullptr;
        if ((p = after_item(p, end, ']', closed)) == nullptr) return nullptr;
      }
      return p;
    }
    case 't': return scan_literal(p, end, "true");
    case 'f': return scan_literal(p, end, "false");
    case 'n': return scan_literal(p, end, "null");
    default: return scan_number(p, end);
  }
}

// A string without escapes at `p`: its contents in `out`, one past its closing quote returned.
const char* plain_string(const char* p, const char* end, std::string_view& out) {
  if (*p != '"') return nullptr;
  bool escaped = false;
  const char* q = scan_string(p + 1, end, escaped);
  if (q == nullptr || escaped) return nullptr;
  out = std::string_view(p + 1, static_cast<size_t>(q - p - 1));
  return q + 1;
}

// An envelope field with one value, read as the full pass's readers would, in the cases the scan
// takes (json_fields.cc has the rest).
const char* scan_envelope_field(const char* p, const char* end, Field kind, DomainEvent& event) {
  std::string_view s;
  switch (kind) {
    case Field::kEventId:
    case Field::kCorrelationId:
    case Field::kCausationId: {
      ShortString& out = kind == Field::kEventId         ? event.event_id
                         : kind == Field::kCorrelationId ? event.correlation_id
                                                         : event.causation_id;
      if (*p == 'n') {
        out.clear();
        return scan_literal(p, end, "null");
      }
      if ((p = plain_string(p, end, s)) != nullptr) out.assign(s);
      return p;
    }
    case Field::kEventType:
    case Field::kAggregateType:
    case Field::kAggregateId: {
      if ((p = plain_string(p, end, s)) == nullptr || s.empty()) return nullptr;
      (kind == Field::kEventType ? event.event_type
       : kind == Field::kAggregateType ? event.aggregate_type
                                       : event.aggregate_id).assign(s);
      return p;
    }
    case Field::kAggregateVersion: {
      // 0, or up to 18 digits without a leading zero: always within int64. A sign, a fraction or an
      // exponent after them is not a delimiter, so the caller leaves the input to the full pass.
      if (*p == '0') {
        event.aggregate_version = 0;
        return p + 1;
      }
      int64_t n = 0;
      const char* q = p;
      while (q < end && is_digit(*q) && q - p < 18) n = n * 10 + (*q++ - '0');
      if (q == p) return nullptr;
      event.aggregate_version = n;
      return q;
    }
    default:
      return nullptr;
  }
}

}  // namespace

bool scan_event(const char* data, size_t size, JsonShape shape, std::vector<Member>& members, DomainEvent& event) {
  if (!simdjson::validate_utf8(data, size)) return false;
  const char* const end = data + size;
  const char* p = skip_ws(data, end);
  if (p >= end || *p != '{') return false;
  p = skip_ws(p + 1, end);
  members.clear();
  TimeMembers times;
  uint32_t seen = 0;  // bit per envelope Field
  for (bool closed = false; !closed;) {
    if (p >= end || *p != '"') return false;  // also the empty object (its required fields missing)
    const char* key_begin = p;
    bool escaped = false;
    const char* q = scan_string(p + 1, end, escaped);
    if (q == nullptr || escaped) return false;
    const Field kind = classify(std::string_view(p + 1, static_cast<size_t>(q - p - 1)));
    p = skip_ws(q + 1, end);
    if (p >= end || *p != ':') return false;
    p = skip_ws(p + 1, end);
    if (p >= end) return false;
    const char* value_begin = p;

    if (kind == Field::kPayload || kind == Field::kData || kind == Field::kMetadata) {
      if ((p = scan_value(p, end, 1)) == nullptr) return false;
      members.push_back(Member{kind, key_begin, value_begin, p});
    } else {
      const uint32_t bit = 1u << static_cast<unsigned>(kind);
      if (seen & bit) return false;  // a duplicate: the full pass names it
      seen |= bit;
      if (kind == Field::kOccurredOn || kind == Field::kOccurredAt || kind == Field::kTimestamp) {
        const size_t i = static_cast<size_t>(kind) - static_cast<size_t>(Field::kOccurredOn);
        std::string_view s;
        if (*p == 'n') {
          p = scan_literal(p, end, "null");
        } else if ((p = plain_string(p, end, s)) != nullptr) {
          times.values[i].assign(s);
          times.present[i] = !s.empty();  // "" counts as absent, as null does
        }
        if (p == nullptr) return false;
        times.seen[i] = true;
        times.member[i] = members.size();
        members.push_back(Member{kind, key_begin, value_begin, p});
      } else if ((p = scan_envelope_field(p, end, kind, event)) == nullptr) {
        return false;
      }
    }
    if ((p = after_item(p, end, '}', closed)) == nullptr) return false;
  }
  if (skip_ws(p, end) != end) return false;
  return !finish_event(members, times, seen, shape, event);
}

bool scan_json_object(const char* data, size_t size) {
  if (!simdjson::validate_utf8(data, size)) return false;
  const char* const end = data + size;
  const char* p = skip_ws(data, end);
  if (p >= end || *p != '{' || (p = scan_value(p, end, 1)) == nullptr) return false;
  return skip_ws(p, end) == end;
}

}  // namespace kingest::codecs::json_internal
