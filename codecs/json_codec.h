// JSON envelope codec (simdjson): bytes ↔ DomainEvent.
//
// Accepted shapes (the seed's NestJS publisher sends the first, `JSON.stringify(event)`):
//   flat:   {"eventId":..,"eventType":..,"aggregateId":..,"aggregateType":..,"aggregateVersion":1,
//            "correlationId":..,"causationId":..,"occurredOn":..,  <payload fields...>}
//           payload = a JSON object of every non-envelope field, in input order, values verbatim.
//   nested: the same envelope fields plus "data": {...} (and optionally "metadata"); payload = data.
// Decoding never throws and never crashes: bad input is a DecodeError with a reason.
//
// Threads: `decode_json` is safe to call from any number of threads at once (parser per thread).
//
//   auto r = decode_json(msg.value);  // std::variant<DomainEvent, DecodeError>
#pragma once

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

enum class JsonShape { kFlat, kNested };

// Encodes an event as the NestJS publisher would (flat) or in the nested shape. The event's
// payload must be a JSON object's text. Fields with empty values are omitted (except the required
// ones); aggregateVersion is a JSON number; occurredOn carries occurred_at.
std::string encode_json(const DomainEvent& event, JsonShape shape = JsonShape::kFlat);

}  // namespace kingest::codecs
