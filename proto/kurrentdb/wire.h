// The conversions between the project's vocabulary (core/) and KurrentDB's v1/v2 protocol messages
// that both ends of the wire need: the client (kurrent/) encodes what the server (server/) decodes,
// so each pair lives here once. Pure functions, no gRPC calls. Target ki_wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include <google/protobuf/map.h>
#include <google/protobuf/struct.pb.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/types.h"
#include "core/uuid.h"
#include "proto/kurrentdb/shared.pb.h"
#include "proto/kurrentdb/streams.pb.h"

namespace kingest::wire {

// UUID: the structured form (two int64 halves) unless `as_string` (what a read asked for).
void to_proto(const Uuid& id, event_store::client::UUID* out, bool as_string = false);
// Either form; nullopt when absent or malformed.
std::optional<Uuid> from_proto(const event_store::client::UUID& id);

// KurrentDB's size of an event: data + metadata + 2 x type length. Any type with those fields;
// metadata given as encoded properties (EventData::properties) counts at their size.
template <typename Event>
size_t event_size(const Event& e) {
  size_t metadata = e.metadata.size();
  if constexpr (requires { e.properties; }) metadata += e.properties.size();
  return e.data.size() + metadata + 2 * e.type.size();
}

// A proposed message (Append's and BatchAppend's have the same fields) from an event, and back.
template <typename Event, typename Proposed>
void fill_proposed(const Event& e, Proposed* p) {
  to_proto(e.id, p->mutable_id());
  (*p->mutable_metadata())["type"] = e.type;
  (*p->mutable_metadata())["content-type"] = e.content_type;
  p->set_custom_metadata(e.metadata);
  p->set_data(e.data);
}
template <typename Event, typename Proposed>
absl::StatusOr<Event> event_of(const Proposed& m) {
  auto id = from_proto(m.id());
  if (!id) return absl::InvalidArgumentError("proposed message: missing or malformed id");
  auto type = m.metadata().find("type");
  if (type == m.metadata().end()) return absl::InvalidArgumentError("proposed message: metadata lacks 'type'");
  auto content_type = m.metadata().find("content-type");
  if (content_type == m.metadata().end()) {
    return absl::InvalidArgumentError("proposed message: metadata lacks 'content-type'");
  }
  Event e;
  e.id = *id;
  e.type = type->second;
  e.content_type = content_type->second;
  e.data = m.data();
  e.metadata = m.custom_metadata();
  return e;
}

// The expected revision of Append's and BatchAppend's options, both ways.
void set_expected(const ExpectedRevision& e, event_store::client::streams::AppendReq::Options* o);
void set_expected(const ExpectedRevision& e, event_store::client::streams::BatchAppendReq::Options* o);
absl::StatusOr<ExpectedRevision> expected_of(const event_store::client::streams::AppendReq::Options& o);
absl::StatusOr<ExpectedRevision> expected_of(const event_store::client::streams::BatchAppendReq::Options& o);

// The shared WrongExpectedVersion detail (BatchAppend's in-body error), both ways.
event_store::client::WrongExpectedVersion wrong_expected_version(const ExpectedRevision& expected,
                                                                 const std::optional<StreamRevision>& current);
std::optional<StreamRevision> current_of(const event_store::client::WrongExpectedVersion& w);

// v2's expected_revision: a revision, or NO_STREAM -1, ANY -2, EXISTS -4.
inline constexpr int64_t kV2NoStream = -1;
inline constexpr int64_t kV2Any = -2;
inline constexpr int64_t kV2Exists = -4;
int64_t v2_expected_value(const ExpectedRevision& e);
// Absent = any.
absl::StatusOr<ExpectedRevision> expected_of_v2(std::optional<int64_t> value);

// v2 record properties from and to the JSON object text of v1 metadata, as protobuf's JSON mapping
// of google.protobuf.Struct does it (numbers are doubles; printed without a fraction when
// integral), without its general-purpose converter, which costs tens of microseconds per event.
using Properties = google::protobuf::Map<std::string, google::protobuf::Value>;
// Adds the object's members to `out`; false when `json` is not a JSON object.
bool properties_from_json(std::string_view json, Properties* out);
// The properties as a JSON object, then `extra` (name, string value) pairs that replace properties
// of the same name; InvalidArgument for a number that JSON cannot hold (NaN, infinity).
absl::StatusOr<std::string> properties_to_json(const Properties& props,
                                               std::initializer_list<std::pair<std::string_view, std::string_view>> extra);
// A property's number as JSON text, as the mapping prints it (integral values up to 2^53 without a
// fraction, the rest shortest round-trip); false for NaN and infinity, which JSON cannot hold.
bool append_json_number(double d, std::string* out);
// The same text written at `at`, which has room for kMaxJsonNumber bytes; returns its end, or
// nullptr for NaN and infinity.
inline constexpr size_t kMaxJsonNumber = 32;
char* write_json_number(double d, char* at);

}  // namespace kingest::wire
