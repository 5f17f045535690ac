// FlatBuffers envelope codec: bytes <-> DomainEvent for the kurrent_ingest.envelope.v1
// DomainEventEnvelopeFb table (proto/envelope.fbs, file identifier "KIEV"). The fields are the JSON
// envelope's; a JSON payload rides in `payload` unchanged.
//
// Safety: nothing is read before the buffer passed flatbuffers::Verifier (bounds, offsets,
// alignment, string terminators; at most 8 levels and 16 tables). The file identifier is checked
// first, so a wrong one is reported as such. Inputs whose address is not 8-byte aligned are
// copied into an aligned thread-local buffer first (FlatBuffers reads scalars in place).
//
// Rules (the same as JSON envelopes, reasons name the schema field): event_type, aggregate_id,
// aggregate_type: required ("missing required field event_type" when absent, "event_type:
// expected a non-empty string, got an empty string" when empty); aggregate_version: required
// (an optional scalar, so absent is detectable) and >= 0; every string must be valid UTF-8. The
// payload and DomainEvent::content_type follow binary_envelope.h. Structural failures start with
// "invalid FlatBuffers: ". Unknown (newer) fields are ignored. Never throws, never crashes.
//
// Threads: safe on any number of threads at once.
#pragma once

#include <string>
#include <string_view>

#include "codecs/json_codec.h"  // DecodeResult
#include "core/domain_event.h"

namespace kingest::codecs {

// The FlatBuffers file identifier of the envelope (bytes 4..7 of every buffer).
inline constexpr std::string_view kFlatBuffersIdentifier = "KIEV";

DecodeResult decode_flatbuffers(std::string_view bytes);

// Encodes an event as a finished DomainEventEnvelope buffer with the "KIEV" identifier: the
// required strings and aggregate_version always, other strings when non-empty, the payload, and
// payload_content_type = event.content_type. decode_flatbuffers(encode_flatbuffers(e)) == e for
// any event decode_flatbuffers returned.
std::string encode_flatbuffers(const DomainEvent& event);

}  // namespace kingest::codecs
