// Conversions between the sink's types and KurrentDB's v1/v2 protocol messages, and the reading of
// a call's outcome (status, trailers, in-body errors) into what the client does next. Pure
// functions; used by the client (kurrent_client.cc) and its tests.
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
#include "proto/kurrentdb/shared.pb.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/streams.pb.h"

namespace kingest::kurrent::wire {

using Trailers = std::multimap<grpc::string_ref, grpc::string_ref>;

void to_proto(const Uuid& id, event_store::client::UUID* out);
std::optional<Uuid> from_proto(const event_store::client::UUID& id);

void set_expected(const ExpectedRevision& e, event_store::client::streams::AppendReq::Options* o);
void set_expected(const ExpectedRevision& e, event_store::client::streams::BatchAppendReq::Options* o);
// v2: absent = any; NO_STREAM -1, EXISTS -4, else the exact revision.
std::optional<int64_t> v2_expected(const ExpectedRevision& e);

// A proposed message (Append's and BatchAppend's have the same fields) from an event.
template <typename Proposed>
void fill_proposed(const EventData& e, Proposed* p) {
  to_proto(e.id, p->mutable_id());
  (*p->mutable_metadata())["type"] = e.type;
  (*p->mutable_metadata())["content-type"] = e.content_type;
  p->set_custom_metadata(e.metadata);
  p->set_data(e.data);
}

// The BatchAppend messages of one correlation id: the options (with the deadline) in the first,
// the events in messages of about `chunk_bytes` at most, is_final on the last.
std::vector<std::unique_ptr<event_store::client::streams::BatchAppendReq>> batch_append_messages(
    const Uuid& correlation, const std::string& stream, const ExpectedRevision& expected,
    std::span<const EventData> events, std::chrono::milliseconds deadline, size_t chunk_bytes);

// KurrentDB's size of an event: data + metadata + 2 x type length.
inline size_t event_size(const EventData& e) { return e.data.size() + e.metadata.size() + 2 * e.type.size(); }

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
