// Records mode: the groups waiting at one moment go out in one v2 AppendRecords request (unary,
// records of many streams, one revision check per stream, all or nothing). The queue, its limits
// and pacing are the session mode's (session_call.cc).
#include <spdlog/spdlog.h>

#include <memory>
#include <map>
#include <string_view>

#include "absl/container/flat_hash_map.h"

#include "absl/strings/str_cat.h"
#include "kurrent/internal/core.h"
#include "proto/kurrentdb/records_wire.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/v2/errors.pb.h"

namespace kingest::kurrent::internal {

namespace v2err = kurrentdb::protocol::v2::streams::errors;
namespace {

// KurrentDB's actual_state of a deleted stream: -10 soft-deleted, -100 tombstoned.
constexpr int64_t kActualNoStream = -1;

const std::string kAppendRecordsMethod = "/kurrentdb.protocol.v2.streams.StreamsService/AppendRecords";

class RecordsCall {
 public:
  RecordsCall(std::shared_ptr<Core> core, std::shared_ptr<Node> node) : core_(std::move(core)), node_(std::move(node)) {}

  // The request: every op's fragment encoded side by side into one buffer, which gRPC then sends
  // as it is (one slice that owns it). Fragments copied into a slice of their own, or each held
  // as a slice, cost a copy of every event or per-group allocations and gRPC's per-slice work
  // (docs/performance.md). The ops whose events cannot be sent as records come back with the
  // reason; the call holds the others (none: nothing to start).
  std::vector<std::pair<OpPtr, std::string>> build(std::vector<OpPtr> ops) {
    std::vector<std::pair<OpPtr, std::string>> refused;
    size_t estimate = 0;
    for (const auto& op : ops) {
      estimate += op->part_bytes() + (op->end() - op->begin()) * (2 * op->req.stream.size() + 128) + 32;
    }
    auto buffer = std::make_unique<std::string>();
    buffer->reserve(estimate);
    ops_.reserve(ops.size());
    for (auto& op : ops) {
      if (auto bad = Core::encode_records_part(*op, buffer.get())) {
        refused.emplace_back(std::move(op), std::move(*bad));
      } else {
        ops_.push_back(std::move(op));
      }
    }
    if (!ops_.empty()) {
      std::string* owned = buffer.release();
      grpc::Slice slice(
          owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
      req_ = grpc::ByteBuffer(&slice, 1);
    }
    return refused;
  }
  [[nodiscard]] bool empty() const { return ops_.empty(); }

  void start() {
    core_->prepare(ctx_, core_->deadline());
    core_->call_started();
    // The request is given to gRPC from a local: gRPC takes its own reference to the slice while
    // starting the call (this client has no interceptors to defer that) and drops it once the
    // bytes are written, so the encoded request is not kept for the whole round trip. A resend
    // encodes its ops again. (A member cleared after the call would race the callback's delete.)
    grpc::ByteBuffer req;
    req.Swap(&req_);
    node_->generic->UnaryCall(&ctx_, kAppendRecordsMethod, grpc::StubOptions(), &req, &resp_buf_,
                              [this](grpc::Status status) {
                                // Read from its bytes: the streams are views into the slice.
                                ::kingest::wire::RecordsAnswer answer;
                                grpc::Slice bytes;
                                if (status.ok()) {
                                  if (!resp_buf_.TrySingleSlice(&bytes).ok()) (void)resp_buf_.DumpToSingleSlice(&bytes);
                                  const std::string_view view(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
                                  if (!::kingest::wire::read_records_answer(view, &answer)) {
                                    status = grpc::Status(grpc::StatusCode::INTERNAL,
                                                          "the AppendRecords answer cannot be parsed");
                                  }
                                }
                                core_->records_done(std::move(ops_), status, ctx_.GetServerTrailingMetadata(), answer,
                                                    node_);
                                auto core = std::move(core_);
                                delete this;
                                core->call_ended();
                              });
  }

 private:
  std::shared_ptr<Core> core_;
  std::shared_ptr<Node> node_;
  std::vector<OpPtr> ops_;
  grpc::ClientContext ctx_;
  grpc::ByteBuffer req_;
  grpc::ByteBuffer resp_buf_;
};

// The v2 error detail: google.rpc.Status{ErrorInfo, the reason's details}.
struct V2Error {
  std::string reason;
  std::optional<v2err::AppendConsistencyViolationErrorDetails> violations;
  std::optional<v2err::AppendRecordSizeExceededErrorDetails> record_too_big;
  std::optional<v2err::AppendTransactionSizeExceededErrorDetails> request_too_big;
};

V2Error v2_error_of(const grpc::Status& status) {
  V2Error out;
  google::rpc::Status detail;
  if (status.error_details().empty() || !detail.ParseFromString(status.error_details())) return out;
  for (const auto& any : detail.details()) {
    google::rpc::ErrorInfo info;
    v2err::AppendConsistencyViolationErrorDetails v;
    v2err::AppendRecordSizeExceededErrorDetails r;
    if (any.Is<google::rpc::ErrorInfo>() && any.UnpackTo(&info)) out.reason = info.reason();
    if (any.Is<v2err::AppendConsistencyViolationErrorDetails>() && any.UnpackTo(&v)) out.violations = v;
    if (any.Is<v2err::AppendRecordSizeExceededErrorDetails>() && any.UnpackTo(&r)) out.record_too_big = r;
    v2err::AppendTransactionSizeExceededErrorDetails t;
    if (any.Is<v2err::AppendTransactionSizeExceededErrorDetails>() && any.UnpackTo(&t)) out.request_too_big = t;
  }
  return out;
}

// A violating stream's answer from its actual state.
AppendOutcome violation_outcome(int64_t actual) {
  if (actual >= 0) {
    return {.code = AppendCode::kWrongExpectedVersion,
            .current_revision = StreamRevision{uint64_t(actual)},
            .position = 0,
            .message = "wrong expected version"};
  }
  if (actual == kActualNoStream) {
    return {.code = AppendCode::kWrongExpectedVersion,
            .current_revision = {},
            .position = 0,
            .message = "wrong expected version"};
  }
  return {.code = AppendCode::kStreamDeleted,
          .current_revision = {},
          .position = 0,
          .message = absl::StrCat("stream deleted (actual state ", actual, ")")};
}

}  // namespace

void Core::start_records(std::vector<OpPtr> ops) {
  auto* call = new RecordsCall(shared_from_this(), node());
  auto refused = call->build(std::move(ops));
  const bool empty = call->empty();
  if (empty) {
    delete call;
    std::lock_guard lock(mu_);
    sessions_in_flight_--;
  } else {
    call->start();
  }
  for (auto& [op, why] : refused) {
    part_done(op, {.code = AppendCode::kRejected, .current_revision = {}, .position = 0, .message = std::move(why)});
  }
  if (empty) pump_sessions();
}

std::optional<std::string> Core::encode_records_part(const Op& op, std::string* out) {
  const std::span<const EventData> events(op.req.events.data() + op.begin(), op.end() - op.begin());
  return ::kingest::wire::append_records_fragment(op.req.stream, wire::v2_expected(op.expected), events, out);
}

void Core::records_done(std::vector<OpPtr> ops, const grpc::Status& status, const wire::Trailers& trailers,
                        const ::kingest::wire::RecordsAnswer& answer, const std::shared_ptr<Node>& from) {
  {
    std::lock_guard lock(mu_);
    sessions_in_flight_--;
  }
  if (status.ok()) {
    // A stream's revision: the answer's entry at the op's place when the answer lists the streams
    // in the request's order (serve-store does: the order of their first records), else by name.
    const auto& revisions = answer.revisions;
    bool in_order = revisions.size() == ops.size();
    for (size_t i = 0; in_order && i < ops.size(); ++i) in_order = revisions[i].first == ops[i]->req.stream;
    absl::flat_hash_map<std::string_view, int64_t> by_stream;
    if (!in_order) {
      by_stream.reserve(revisions.size());
      for (const auto& [stream, revision] : revisions) by_stream[stream] = revision;
    }
    std::vector<std::pair<OpPtr, AppendOutcome>> ended;
    ended.reserve(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      auto& op = ops[i];
      std::optional<int64_t> revision;
      if (in_order) {
        revision = revisions[i].second;
      } else if (auto it = by_stream.find(op->req.stream); it != by_stream.end()) {
        revision = it->second;
      }
      if (!revision || *revision < 0) {
        part_done(op, {.code = AppendCode::kRejected,
                       .current_revision = {},
                       .position = 0,
                       .message = "the AppendRecords answer does not give the stream's revision"});
        continue;
      }
      // The request's position (its last record's) stands for each stream's.
      AppendOutcome out{.code = AppendCode::kSuccess,
                        .current_revision = StreamRevision{uint64_t(*revision)},
                        .position = uint64_t(std::max<int64_t>(answer.position, 0)),
                        .message = {}};
      if (op->part + 1 < op->part_ends.size()) {
        part_done(op, std::move(out));  // its next part goes out
      } else {
        ended.emplace_back(std::move(op), std::move(out));
      }
    }
    finish_all(ended);
    pump_sessions();
    return;
  }
  V2Error err = v2_error_of(status);
  if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION && err.violations) {
    // Every failing check at once: answer those streams, send the others again at once.
    std::map<std::string, int64_t, std::less<>> actual;
    for (const auto& v : err.violations->violations()) {
      if (v.has_stream_state()) actual[v.stream_state().stream()] = v.stream_state().actual_state();
    }
    std::vector<OpPtr> others;
    for (auto& op : ops) {
      auto it = actual.find(op->req.stream);
      if (it != actual.end()) {
        part_done(op, violation_outcome(it->second));
      } else {
        others.push_back(op);
      }
    }
    if (others.size() == ops.size()) {
      for (auto& op : ops) {
        part_done(op, {.code = AppendCode::kRejected,
                       .current_revision = {},
                       .position = 0,
                       .message = "consistency violation on no stream of the request: " + status.error_message()});
      }
      others.clear();
    }
    requeue_front(std::move(others));
    return;
  }
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT && err.reason == "APPEND_RECORD_SIZE_EXCEEDED" &&
      err.record_too_big) {
    // One event over the server's limit: that stream's answer; the others go again.
    std::vector<OpPtr> others;
    bool found = false;
    for (auto& op : ops) {
      if (!found && op->req.stream == err.record_too_big->stream()) {
        found = true;
        part_done(op, {.code = AppendCode::kTooLarge,
                       .current_revision = {},
                       .position = 0,
                       .message = absl::StrCat("event ", err.record_too_big->record_id(), " is ",
                                               err.record_too_big->size(), " bytes, over the server's ",
                                               err.record_too_big->max_size(), ": ", status.error_message())});
      } else {
        others.push_back(op);
      }
    }
    if (found) {
      requeue_front(std::move(others));
      return;
    }
  }
  if (status.error_code() == grpc::StatusCode::ABORTED && err.reason == "APPEND_TRANSACTION_SIZE_EXCEEDED") {
    if (err.request_too_big) {
      // The next requests are packed by the server's limit and count.
      size_t ours = 0;
      for (const auto& op : ops) ours += op->part_bytes();
      learn_request_size(ours, uint64_t(std::max<int64_t>(err.request_too_big->size(), 0)),
                         uint64_t(std::max<int64_t>(err.request_too_big->max_size(), 0)));
    }
    if (ops.size() == 1) {
      // part_done halves the group's part (or answers kTooLarge for a single event).
      part_done(ops[0], {.code = AppendCode::kTooLarge,
                         .current_revision = {},
                         .position = 0,
                         .message = status.error_message()});
      pump_sessions();
      return;
    }
    // The server counts sizes its own way: halves, each its own request.
    splits_++;
    std::vector<OpPtr> second(ops.begin() + long(ops.size() / 2), ops.end());
    ops.resize(ops.size() / 2);
    {
      std::lock_guard lock(mu_);
      sessions_in_flight_ += 2;
    }
    v2_requests_ += 2;
    v2_request_streams_ += ops.size() + second.size();
    start_records(std::move(ops));
    start_records(std::move(second));
    return;
  }
  wire::Verdict v = wire::classify(status, trailers);
  for (auto& op : ops) act(op, v, from);
  pump_sessions();
}

}  // namespace kingest::kurrent::internal
