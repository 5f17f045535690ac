// AppendRecordsRequest read straight from its protobuf bytes, without building the generated
// message: its records and checks as views into the bytes, and a record's properties written as
// JSON text from their encoded google.protobuf.Value maps. The generated message would allocate a
// map node, a key, a Value and its string per property (two levels deep for the pipeline's "source"
// object) only for them to be printed and freed again; that was most of serve-store's per-event work
// in front of the store.
//
// Protobuf's rules are kept where a conforming sender can meet them: unknown fields are skipped, a
// singular field given twice keeps its last value, a message field given twice is merged, a map key
// given twice keeps its last value, a oneof keeps its last member (a Value's struct or list given
// twice is not merged: the last one counts). Names (stream, event type) and record ids must be
// valid UTF-8, as the generated parser requires; strings inside properties are written as JSON with
// invalid bytes replaced (U+FFFD).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace kingest::server::internal {

// One AppendRecord; the views point into the request's bytes.
struct WireRecord {
  std::string_view record_id;
  std::string_view stream;
  std::string_view data;
  std::string_view schema_name;
  int64_t schema_format = 0;  // v2::SchemaFormat's number
  std::string_view message;   // the whole encoded AppendRecord (its properties are read from it)
};

// One ConsistencyCheck; `has_stream_state` false when the oneof is not set.
struct WireCheck {
  bool has_stream_state = false;
  std::string_view stream;
  int64_t expected_state = 0;
};

// Splits an encoded AppendRecordsRequest into its records and checks (both cleared first).
// InvalidArgument when the bytes are not one.
absl::Status read_append_records(std::string_view request, std::vector<WireRecord>* records,
                                 std::vector<WireCheck>* checks);

// Appends the record's properties to `out` as one JSON object, followed by "$schema.format" and
// "$schema.name" (which replace properties of those names): the text `wire::properties_to_json`
// writes from the generated message, with the properties in the order they were sent.
// InvalidArgument when a property is malformed or a number is not finite.
absl::Status append_properties_json(const WireRecord& record, std::string_view schema_format_name,
                                    std::string* out);

}  // namespace kingest::server::internal
