// v2 StreamsService.AppendRecords (KurrentDB 26.1): records of many streams interleaved in one
// unary request, revision checks kept apart from the records, all or nothing; every failing check
// is reported at once. The request is checked and converted on gRPC's thread, then written as one
// store transaction (`EventStore::append_multi`), which evaluates the checks with the write; the
// answer is sent from the store's writer thread.
#include <algorithm>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/v2/errors.pb.h"
#include "server/internal/server.h"

namespace kingest::server::internal {
namespace {

namespace v2err = ::kurrentdb::protocol::v2::streams::errors;

grpc::Status invalid(const std::string& message) { return {grpc::StatusCode::INVALID_ARGUMENT, message}; }

int32_t clamp32(size_t n) { return static_cast<int32_t>(std::min<size_t>(n, INT32_MAX)); }

int32_t check_index(uint32_t index) {
  return index == store::CheckViolation::kNoCheck ? -1 : static_cast<int32_t>(index);
}

grpc::Status violation_status(const std::vector<std::string>& streams,
                              const std::vector<store::CheckViolation>& violations) {
  v2err::AppendConsistencyViolationErrorDetails details;
  std::string message = absl::StrCat("append consistency violation: ", violations.size(), " failing check",
                                     violations.size() == 1 ? "" : "s");
  for (size_t i = 0; i < violations.size(); ++i) {
    const auto& v = violations[i];
    auto* out = details.add_violations();
    out->set_check_index(check_index(v.check_index));
    auto* state = out->mutable_stream_state();
    state->set_stream(streams[v.stream]);
    state->set_expected_state(wire::v2_expected_value(v.expected));
    state->set_actual_state(v.actual);
    if (i < 8) {
      absl::StrAppend(&message, i == 0 ? ": " : "; ", "stream '", streams[v.stream], "' expected ",
                      wire::v2_expected_value(v.expected), ", actual ", v.actual);
    } else if (i == 8) {
      absl::StrAppend(&message, "; ...");
    }
  }
  return v2_error(grpc::StatusCode::FAILED_PRECONDITION, "APPEND_CONSISTENCY_VIOLATION", message, &details);
}

}  // namespace

void append_records(Shared& shared, const v2::AppendRecordsRequest& req, v2::AppendRecordsResponse* resp,
                    std::function<void(const grpc::Status&)> done) {
  if (req.records().empty()) return done(invalid("append records: the request holds no records"));
  store::MultiAppend plan;
  std::unordered_map<std::string, uint32_t> index;
  auto stream_index = [&](const std::string& name) {
    auto [it, fresh] = index.try_emplace(name, static_cast<uint32_t>(plan.streams.size()));
    if (fresh) plan.streams.push_back(name);
    return it->second;
  };
  size_t total = 0;
  plan.records.reserve(size_t(req.records_size()));
  for (const auto& rec : req.records()) {
    if (rec.stream().empty()) return done(invalid("append records: a record without a stream"));
    auto ev = v2_event(rec);
    if (!ev.ok()) return done(to_grpc(ev.status()));
    const size_t size = event_size(*ev);
    if (size > shared.options.max_event_size) {
      v2err::AppendRecordSizeExceededErrorDetails d;
      d.set_stream(rec.stream());
      d.set_record_id(rec.record_id());
      d.set_size(clamp32(size));
      d.set_max_size(clamp32(shared.options.max_event_size));
      return done(v2_error(grpc::StatusCode::INVALID_ARGUMENT, "APPEND_RECORD_SIZE_EXCEEDED",
                           absl::StrCat("record ", rec.record_id(), " of stream '", rec.stream(), "' is ", size,
                                        " bytes, over the ", shared.options.max_event_size, " bytes allowed"),
                           &d));
    }
    total += size;
    plan.records.push_back({.stream = stream_index(rec.stream()), .event = std::move(*ev)});
  }
  if (total > shared.options.max_append_size) {
    v2err::AppendTransactionSizeExceededErrorDetails d;
    d.set_size(clamp32(total));
    d.set_max_size(clamp32(shared.options.max_append_size));
    return done(v2_error(grpc::StatusCode::ABORTED, "APPEND_TRANSACTION_SIZE_EXCEEDED",
                         absl::StrCat("append records: ", total, " bytes, over the ", shared.options.max_append_size,
                                      " bytes of one append"),
                         &d));
  }
  for (const auto& c : req.checks()) {
    if (!c.has_stream_state()) return done(invalid("append records: a consistency check without a type"));
    const auto& s = c.stream_state();
    if (s.stream().empty()) return done(invalid("append records: a consistency check without a stream"));
    auto expected = wire::expected_of_v2(s.expected_state());
    if (!expected.ok()) {
      return done(invalid(absl::StrCat("append records: check of stream '", s.stream(), "': ",
                                       expected.status().message())));
    }
    plan.checks.push_back({.stream = stream_index(s.stream()), .expected = *expected});
  }
  // The names outlive the request the store takes: the answer is written with them.
  auto streams = std::make_shared<const std::vector<std::string>>(plan.streams);
  shared.store.append_multi(std::move(plan), [streams, resp, done = std::move(done)](store::MultiAppendResult r) {
    switch (r.status) {
      case store::AppendStatus::kSuccess:
        // One revision per stream written, in the order of the streams' first records.
        std::sort(r.revisions.begin(), r.revisions.end());
        for (const auto& [s, rev] : r.revisions) {
          auto* out = resp->add_revisions();
          out->set_stream((*streams)[s]);
          out->set_revision(static_cast<int64_t>(rev.value()));
        }
        resp->set_position(static_cast<int64_t>(r.position));
        return done(grpc::Status::OK);
      case store::AppendStatus::kWrongExpectedVersion:
      case store::AppendStatus::kStreamDeleted:
        return done(violation_status(*streams, r.violations));
      case store::AppendStatus::kError:
        return done({grpc::StatusCode::UNAVAILABLE, "append records: " + r.message});
    }
  });
}

}  // namespace kingest::server::internal
