// Rules shared by the binary envelope codecs (protobuf_codec.h, flatbuffers_codec.h): size limit,
// required fields, and how the payload's content type is resolved. Also the media-type helpers
// that content-type routing (codec.h) uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/domain_event.h"

namespace kingest::codecs {

// Largest binary envelope a decoder accepts; larger inputs are a DecodeError, never parsed.
inline constexpr size_t kMaxBinaryEnvelopeBytes = size_t{64} << 20;

// A media type without its parameters and surrounding whitespace:
// " application/json ; charset=utf-8" -> "application/json" (case preserved).
std::string_view media_type_essence(std::string_view content_type);

// ASCII case-insensitive equality (media types are case-insensitive).
bool iequals(std::string_view a, std::string_view b);

// application/json, text/json, or any type with the +json structured suffix
// (application/vnd.acme.order+json), with or without parameters, in any case.
bool is_json_media_type(std::string_view content_type);

namespace detail {

// Completes an event whose fields a binary decoder has filled in: checks the required fields
// (an empty event_type / aggregate_id / aggregate_type counts as missing; the version must be
// present and >= 0) and resolves the payload from the envelope's payload_content_type:
//   JSON media type: the payload must be a JSON object's text (empty = {}); content_type becomes
//     "application/json" exactly (KurrentDB's isJson flag compares that string).
//   other non-empty type: raw bytes; content_type is the envelope's, verbatim.
//   empty: a valid JSON object -> "application/json"; empty payload -> {} as "application/json"
//     (like a JSON envelope without payload fields); anything else -> "application/octet-stream".
// Returns the error, or std::nullopt when `event` is complete.
std::optional<DecodeError> finish_binary_event(DomainEvent& event, bool has_version, int64_t version,
                                               std::string_view payload_content_type);

// `s` for a one-line reason: control characters, quotes, backslashes and bytes that are not
// printable ASCII as \xNN, cut at `max` bytes with "...".
std::string printable(std::string_view s, size_t max = 64);

// Whether `s` is valid UTF-8: an ASCII fast path (8 bytes at a time; envelope strings are short
// and mostly ASCII, where simdjson's dispatch costs more than the check), simdjson otherwise.
bool valid_utf8(std::string_view s);

// "missing required field <name>".
DecodeError missing_field(std::string_view name);

}  // namespace detail
}  // namespace kingest::codecs
