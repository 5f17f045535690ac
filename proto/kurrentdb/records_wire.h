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
#include <utility>
#include <vector>

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

// AppendRecordsResponse read straight from its wire format, as protobuf reads it (each
// StreamRevision in the order sent, the last of a repeated scalar, unknown fields and fields of
// another wire type skipped), without building the message and a string per stream: the streams
// are views into the bytes read. False when the bytes are not such a response (a truncated field or
// a malformed tag); stream names are not checked for UTF-8 (they are only compared with the names
// sent).
struct RecordsAnswer {
  std::vector<std::pair<std::string_view, int64_t>> revisions;  // stream, revision
  int64_t position = 0;
};
bool read_records_answer(std::string_view bytes, RecordsAnswer* out);

// AppendRecordsResponse written straight in protobuf's wire format, byte for byte as protobuf
// serializes it (fields in number order; a zero revision or position and an empty stream name left
// out): serve-store's answer, without building the message and a string per stream.
// `records_answer_size` gives the bytes `write_records_answer` writes at `out`.
size_t records_answer_size(std::span<const std::pair<std::string_view, int64_t>> revisions, int64_t position);
void write_records_answer(std::span<const std::pair<std::string_view, int64_t>> revisions, int64_t position,
                          char* out);

}  // namespace kingest::wire
