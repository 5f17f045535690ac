// Protobuf envelope codec: bytes <-> DomainEvent for kurrent_ingest.envelope.v1.DomainEventEnvelope
// (proto/envelope.proto). The fields are the JSON envelope's; a JSON payload rides in `payload`
// unchanged, with payload_content_type "application/json" (or none: a JSON object is recognised).
//
// Rules (the same as JSON envelopes, reasons name the proto field):
//   event_type, aggregate_id, aggregate_type: required non-empty ("missing required field
//   event_type"); aggregate_version: required (explicit presence) and >= 0; other strings
//   optional; strings must be valid UTF-8 ("event_type: invalid UTF-8"). The payload and
//   DomainEvent::content_type follow binary_envelope.h. Inputs that are empty, over 64 MiB or not
//   a valid message (malformed wire data) are errors whose reason starts with "invalid protobuf: "
//   and says what and where ("invalid protobuf: length 9 beyond the end of the input (4 bytes
//   left) in field event_type (2) at byte 0"). Nothing is ever logged.
// Unknown fields are ignored (newer producers). Never throws, never crashes on any bytes.
//
// Threads: safe on any number of threads at once (one reused message per thread).
//
//   auto r = decode_protobuf(msg.value);  // DomainEvent or DecodeError
#pragma once

#include <string>
#include <string_view>

#include "codecs/json_codec.h"  // DecodeResult
#include "core/domain_event.h"

namespace kingest::codecs {

DecodeResult decode_protobuf(std::string_view bytes);

// Encodes an event as a DomainEventEnvelope: every non-empty string, aggregate_version always,
// the payload bytes, and payload_content_type = event.content_type. For producers, the generator
// and tests; decode_protobuf(encode_protobuf(e)) == e for any event decode_protobuf returned.
std::string encode_protobuf(const DomainEvent& event);

}  // namespace kingest::codecs
