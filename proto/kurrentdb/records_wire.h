// AppendRecordsRequest (kurrentdb.protocol.v2.streams) written straight in protobuf's wire format,
// without building protobuf messages: the records and the revision check of one stream as a
// fragment of the request. Fragments of several streams concatenate into one request, since
// `records` and `checks` are repeated fields (a parser appends each occurrence in order). The
// client encodes a stream group's fragment once, on the thread that submits it, and sends it
// again as is on a retry; the payload is copied once, into the fragment.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/record_properties.h"
#include "core/sink.h"

namespace kingest::wire {

// Appends to `out` the check (`expected` as StreamStateCheck.expected_state: -1 no stream, -4
// exists, else the exact revision; none: no check) and one AppendRecord per event, each as
// `fill_v2_record` would fill it (the id as a UUID string, the type as schema.name, JSON or bytes by
// content type, the metadata's JSON object as properties, or `EventData::properties` as they are
// when given) with its stream. An error message (and `out` as it was) when an event's metadata is
// not a JSON object.
std::optional<std::string> append_records_fragment(std::string_view stream, std::optional<int64_t> expected,
                                                   std::span<const EventData> events, std::string* out);

}  // namespace kingest::wire
