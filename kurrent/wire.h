// Conversions between the sink's types and KurrentDB's v1/v2 protocol messages, and the reading of
// a call's outcome (status, trailers, in-body errors) into what the client does next. Pure
// functions; used by the client (kurrent_client.cc) and its tests. What the server decodes too is
// in proto/kurrentdb/wire.h.
#pragma once

#include <grpcpp/support/status.h>
#include <grpcpp/support/string_ref.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <vector>
#include <map>
#include <optional>
#include <string>

#include "core/sink.h"
#include "proto/kurrentdb/wire.h"
#include "proto/kurrentdb/shared.pb.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/streams.pb.h"
#include "proto/kurrentdb/v2/streams.pb.h"

namespace kingest::kurrent::wire {

using Trailers = std::multimap<grpc::string_ref, grpc::string_ref>;

// The conversions shared with the server (proto/kurrentdb/wire.h).
using ::kingest::wire::event_size;
using ::kingest::wire::fill_proposed;
using ::kingest::wire::from_proto;
using ::kingest::wire::set_expected;
using ::kingest::wire::to_proto;

// v2: absent = any; NO_STREAM -1, EXISTS -4, else the exact revision.
std::optional<int64_t> v2_expected(const ExpectedRevision& e);
// An event as a v2 record (AppendSession, AppendRecords): the id as a UUID string, the type as
// schema.name, JSON or bytes by content type, the metadata's JSON object as properties. The
// record's stream is left to the caller. An error message when the metadata is not a JSON object.
std::optional<std::string> fill_v2_record(const EventData& e, kurrentdb::protocol::v2::streams::AppendRecord* rec);

// The BatchAppend messages of one correlation id: the options (with the deadline) in the first,
// the events in messages of about `chunk_bytes` at most, is_final on the last.
std::vector<std::unique_ptr<event_store::client::streams::BatchAppendReq>> batch_append_messages(
    const Uuid& correlation, const std::string& stream, const ExpectedRevision& expected,
    std::span<const EventData> events, std::chrono::milliseconds deadline, size_t chunk_bytes);

// What to do after a call ended with a non-OK status (or a BatchAppend in-body error).
struct Verdict {
  enum Kind { kDone, kRetry, kRedirect } kind = kDone;
  AppendOutcome outcome;   // kDone: the answer for the append
  std::string leader_host;  // kRedirect
  uint16_t leader_port = 0;
  std::string reason;       // kRetry / kRedirect: for logs and the final error
};

std::string trailer(const Trailers& t, const std::string& key);
// A call's status plus its trailers (`exception`, `leader-endpoint-*`, ...).
Verdict classify(const grpc::Status& status, const Trailers& trailers);
// BatchAppend's in-body google.rpc.Status (details: WrongExpectedVersion, MaximumAppendSizeExceeded).
Verdict classify(const google::rpc::Status& status);
// Append's in-body answer.
AppendOutcome outcome_of(const event_store::client::streams::AppendResp& resp);

}  // namespace kingest::kurrent::wire
