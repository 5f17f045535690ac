// JSON envelope codec (simdjson): bytes ↔ DomainEvent.
//
// Accepted shapes (the seed's NestJS publisher sends the first, `JSON.stringify(event)`):
//   flat:   {"eventId":..,"eventType":..,"aggregateId":..,"aggregateType":..,"aggregateVersion":1,
//            "correlationId":..,"causationId":..,"occurredOn":..,  <payload fields...>}
//           payload = a JSON object of every non-envelope field, in input order, values verbatim.
//   nested: the same envelope fields plus "data": {...} (and optionally "metadata"); payload = data.
// Shape rule: nested when the top level has exactly one `data` member whose value is an object and
// every other member is an envelope field or (at most one) `metadata`; otherwise flat. In the flat
// shape `data` and `metadata` are ordinary payload fields. An event with no payload fields gets {}.
//
// Envelope: eventType, aggregateType: required non-empty strings. aggregateId: required non-empty
// string, or a JSON integer (some producers use numeric ids) rendered as decimal text ("42").
// aggregateVersion: required JSON integer in [0, INT64_MAX] (1.5, 1.0, -1, "1", huge are errors).
// eventId, correlationId, causationId: optional strings (null = absent, other types are errors).
// Time: the first present of occurredOn, occurredAt, timestamp (in that order of preference); a
// string is kept verbatim, a number is epoch milliseconds rendered as 2024-01-02T03:04:05.678Z.
// A repeated envelope field is an error. Payload text is copied byte for byte from the input and
// is fully validated (big numbers and \u escapes survive unchanged).
// Decoding never throws and never crashes: bad input is a DecodeError with a reason.
//
// Threads: `decode_json` is safe to call from any number of threads at once (parser per thread).
//
//   auto r = decode_json(msg.value);  // std::variant<DomainEvent, DecodeError>
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/domain_event.h"

namespace kingest::codecs {

using DecodeResult = std::variant<DomainEvent, DecodeError>;

// Decodes one JSON envelope. When `bytes.capacity() >= bytes.size() + simdjson padding` the bytes
// are parsed in place; otherwise they are copied into a padded buffer first.
DecodeResult decode_json(const std::string& bytes);
DecodeResult decode_json(std::string_view bytes);
// Avoids the std::string / std::string_view ambiguity for literals; copies like the view overload.
inline DecodeResult decode_json(const char* bytes) {
  return decode_json(bytes ? std::string_view(bytes) : std::string_view());
}

enum class JsonShape { kFlat, kNested };

// Encodes an event as the NestJS publisher would (flat) or in the nested shape. The event's
// payload must be a JSON object's text. Fields with empty values are omitted (except the required
// ones); aggregateVersion is a JSON number; occurredOn carries occurred_at.
// Flat copies the payload's members verbatim after the envelope; nested writes "data": payload.
// An empty payload is {}; a payload that is not an object's text (after trimming whitespace) is
// written as a JSON string under "data" so that the output is still valid JSON. The payload is
// trusted, not validated. Note the shape rule: a flat event whose only payload member is an object
// named `data` decodes as nested, so use kNested when payloads may look like that.
std::string encode_json(const DomainEvent& event, JsonShape shape = JsonShape::kFlat);

// Validates `text` as one JSON object with the rules decode_json applies to payloads (RFC 8259,
// UTF-8, numbers checked by grammar so integers beyond 64 bits pass, nesting up to 1024 levels,
// nothing after the object). Returns std::nullopt when valid, else a one-line reason such as
// "expected a JSON object, got array" or simdjson's message. Never throws; thread-safe (uses the
// calling thread's parser). Used by the binary codecs for JSON payloads.
std::optional<std::string> check_json_object(std::string_view text);

// Epoch milliseconds as ISO 8601 UTC with milliseconds, e.g. 1704164645678 ->
// "2024-01-02T03:04:05.678Z". Years outside 0000-9999 use the expanded form (+10000-..., -0001-...).
std::string epoch_millis_to_iso8601(int64_t ms);

}  // namespace kingest::codecs
