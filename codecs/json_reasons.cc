// The JSON decoder's reasons for refusing an input: one line each, whatever bytes arrived
// (codecs/README.md lists them).
#include <simdjson.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "codecs/internal/json_decoding.h"

namespace kingest::codecs::json_internal {

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

DecodeError invalid_json(error_code e, std::string_view where) {
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

}  // namespace kingest::codecs::json_internal
