#include "codecs/binary_envelope.h"

#include <simdjson.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "codecs/json_codec.h"

namespace kingest::codecs {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

}  // namespace

std::string_view media_type_essence(std::string_view content_type) {
  std::string_view s = content_type.substr(0, content_type.find(';'));
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a == b) return true;  // the usual case: the same spelling
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool is_json_media_type(std::string_view content_type) {
  const std::string_view t = media_type_essence(content_type);
  if (iequals(t, "application/json") || iequals(t, "text/json")) return true;
  // A structured +json suffix on a well-formed type/subtype.
  const size_t slash = t.find('/');
  return slash != std::string_view::npos && slash > 0 && t.size() > slash + 1 + 5 && iends_with(t, "+json");
}

namespace detail {

std::string printable(std::string_view s, size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const size_t n = s.size() < max ? s.size() : max;
  out.reserve(n + 8);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

bool valid_utf8(std::string_view s) {
  constexpr uint64_t kHighBits = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if (word & kHighBits) return simdjson::validate_utf8(s.data(), s.size());
  }
  for (; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) & 0x80) return simdjson::validate_utf8(s.data(), s.size());
  }
  return true;
}

DecodeError missing_field(std::string_view name) {
  std::string reason = "missing required field ";
  reason += name;
  return DecodeError{std::move(reason)};
}

std::optional<DecodeError> finish_binary_event(DomainEvent& event, bool has_version, int64_t version,
                                               std::string_view payload_content_type) {
  if (event.event_type.empty()) return missing_field("event_type");
  if (event.aggregate_id.empty()) return missing_field("aggregate_id");
  if (event.aggregate_type.empty()) return missing_field("aggregate_type");
  if (!has_version) return missing_field("aggregate_version");
  if (version < 0) {
    return DecodeError{"aggregate_version: expected a non-negative integer, got " + std::to_string(version)};
  }
  event.aggregate_version = version;

  if (payload_content_type.empty() || is_json_media_type(payload_content_type)) {
    if (event.payload.empty()) {
      event.payload = "{}";
      event.content_type = "application/json";
      return std::nullopt;
    }
    std::optional<std::string> problem = check_json_object(event.payload);
    if (!problem) {
      event.content_type = "application/json";
      return std::nullopt;
    }
    if (!payload_content_type.empty()) {
      std::string reason = "payload: content type \"";
      reason += printable(payload_content_type);
      reason += "\" but not a valid JSON object: ";
      reason += *problem;
      return DecodeError{std::move(reason)};
    }
    event.content_type = "application/octet-stream";
    return std::nullopt;
  }
  event.content_type.assign(payload_content_type);
  return std::nullopt;
}

}  // namespace detail
}  // namespace kingest::codecs
