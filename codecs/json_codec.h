// JSON envelope codec (simdjson): bytes ↔ DomainEvent.
//
// Shapes (the seed's NestJS publisher sends the first, `JSON.stringify(event)`):
//   flat (JsonShape::kFlat, the default): {"eventId":..,"eventType":..,"aggregateId":..,
//           "aggregateType":..,"aggregateVersion":1,"correlationId":..,"causationId":..,
//           "occurredOn":.., <payload fields...>}
//           payload = a JSON object of every member that is not used as an envelope field, in
//           input order, values verbatim: the published object minus the envelope fields, always
//           (a member named `data` or `metadata` is an ordinary payload field). An event with no
//           payload fields gets {}.
//   nested (JsonShape::kNested, chosen per topic with the codec `json-nested`, never guessed):
//           the envelope plus "data": {...} and optionally "metadata" (not kept); payload = data.
//           Any other non-envelope member is an error rather than being dropped.
//
// Envelope: eventType, aggregateType: required non-empty strings. aggregateId: required non-empty
// string, or a JSON integer (some producers use numeric ids) rendered as decimal text ("42").
// aggregateVersion: required JSON integer in [0, INT64_MAX] (1.5, 1.0, -1, "1", huge are errors).
// eventId, correlationId, causationId: optional strings (null = absent, other types are errors).
// Time: the first of occurredOn, occurredAt, timestamp (in that order) whose value is not null or
// "" is the envelope's time; a string is kept verbatim, a number is epoch milliseconds rendered as
// 2024-01-02T03:04:05.678Z. The other time-named members stay in the payload, untouched.
// A repeated envelope field is an error. Payload text is copied byte for byte from the input and
// is fully validated (big numbers and \u escapes survive unchanged).
// Decoding never throws and never crashes: bad input is a DecodeError with a reason; input that
// is not JSON at all is quoted in the reason (`invalid JSON: got the text "[object Object]" …`).
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

enum class JsonShape { kFlat, kNested };

// Decodes one JSON envelope. When `bytes.capacity() >= bytes.size() + simdjson padding` the bytes
// are parsed in place; otherwise they are copied into a padded buffer first.
DecodeResult decode_json(const std::string& bytes, JsonShape shape = JsonShape::kFlat);
DecodeResult decode_json(std::string_view bytes, JsonShape shape = JsonShape::kFlat);
// Avoids the std::string / std::string_view ambiguity for literals; copies like the view overload.
inline DecodeResult decode_json(const char* bytes, JsonShape shape = JsonShape::kFlat) {
  return decode_json(bytes ? std::string_view(bytes) : std::string_view(), shape);
}

// Encodes an event as the NestJS publisher would (flat) or in the nested shape. The event's
// payload must be a JSON object's text. Fields with empty values are omitted (except the required
// ones); aggregateVersion is a JSON number; occurredOn carries occurred_at.
// Flat copies the payload's members verbatim after the envelope; nested writes "data": payload.
// An empty payload is {}; a payload that is not an object's text (after trimming whitespace) is
// written as a JSON string under "data" so that the output is still valid JSON. The payload is
// trusted, not validated. decode_json(encode_json(e, shape), shape) gives e back when its payload
// is an object whose keys are not envelope field names (a flat payload carrying a non-empty
// `occurredOn` while the event has no time would take the envelope's place).
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
