// Reading JSON text as the decoder needs it: keys and strings as spans of the input unless they
// hold escapes, numbers checked by the RFC 8259 grammar, and the walk that validates every value
// On-Demand would otherwise skip (what makes a payload guaranteed-valid JSON).
#include <simdjson.h>

#include <cstddef>
#include <string_view>
#include <utility>

#include "codecs/internal/json_decoding.h"

namespace kingest::codecs::json_internal {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  return trim_right(s);
}

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

}  // namespace kingest::codecs::json_internal
