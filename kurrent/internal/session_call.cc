// Session mode: appends gathered into v2 AppendSession calls (several streams, all or nothing). The
// queue and its pump serve the records mode too (records_call.cc).
#include "kurrent/internal/core.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "kurrent/internal/request_writer.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/v2/errors.pb.h"

namespace kingest::kurrent::internal {

namespace v2err = kurrentdb::protocol::v2::streams::errors;
namespace {

class SessionCall final : public RequestWriter<v2::AppendRequest> {
 public:
  SessionCall(std::shared_ptr<Core> core, std::shared_ptr<Node> node, std::vector<OpPtr> ops)
      : core_(std::move(core)), node_(std::move(node)), ops_(std::move(ops)) {}

  // False (and nothing started) when an event's metadata cannot be sent as v2 properties.
  std::optional<std::string> build() {
    for (const auto& op : ops_) {
      auto& r = reqs_.emplace_back();
      r.set_stream(op->req.stream);
      if (auto e = wire::v2_expected(op->expected)) r.set_expected_revision(*e);
      for (size_t i = op->begin(); i < op->end(); ++i) {
        if (auto bad = wire::fill_v2_record(op->req.events[i], r.add_records())) return bad;
      }
    }
    return std::nullopt;
  }

  void start() {
    core_->prepare(ctx_, core_->deadline());
    core_->call_started();
    node_->v2->async()->AppendSession(&ctx_, &resp_, this);
    write_next();
    StartCall();
  }

  void OnDone(const grpc::Status& status) override {
    core_->session_done(std::move(ops_), status, ctx_.GetServerTrailingMetadata(), resp_, node_);
    auto core = std::move(core_);
    delete this;
    core->call_ended();
  }

 private:
  std::shared_ptr<Core> core_;
  std::shared_ptr<Node> node_;
  std::vector<OpPtr> ops_;
  grpc::ClientContext ctx_;
  v2::AppendSessionResponse resp_;
};

}  // namespace

void Core::start_session(std::vector<OpPtr> ops) { start_v2_call<SessionCall>(std::move(ops)); }

void Core::enqueue_session(const OpPtr& op) {
  {
    std::lock_guard lock(mu_);
    if (options_.session_linger.count() > 0) op->queued_at = Clock::now();  // read only to linger
    session_queue_.push_back(op);
  }
  pump_sessions();
}

void Core::pump_sessions() {
  for (;;) {
    std::vector<OpPtr> ops;
    {
      std::lock_guard lock(mu_);
      if (sessions_in_flight_ >= options_.max_sessions_in_flight || session_queue_.empty()) return;
      // Lingering: wait for more streams until the oldest has waited `session_linger` or the
      // queue fills a session.
      auto ready_at = session_queue_.front()->queued_at + options_.session_linger;
      if (options_.session_linger.count() > 0 && Clock::now() < ready_at &&
          session_queue_.size() < options_.max_session_streams) {
        if (!linger_armed_) {
          linger_armed_ = true;
          std::weak_ptr<Core> weak = weak_from_this();
          timer_.at(ready_at, [weak] {
            if (auto self = weak.lock()) {
              {
                std::lock_guard l(self->mu_);
                self->linger_armed_ = false;
              }
              self->pump_sessions();
            }
          });
        }
        return;
      }
      // In queue order, at most one group per stream (a second one waits for the next request: its
      // expected revision follows from the first's answer), up to the count and size limits.
      size_t bytes = 0;
      const size_t budget = request_budget();
      absl::flat_hash_set<std::string_view> streams;
      streams.reserve(std::min(options_.max_session_streams, session_queue_.size()));
      std::vector<OpPtr> skipped;
      while (!session_queue_.empty() && ops.size() < options_.max_session_streams) {
        const OpPtr& next = session_queue_.front();
        size_t b = next->part_bytes();
        if (!ops.empty() && bytes + b > budget) break;
        if (streams.insert(next->req.stream).second) {
          bytes += b;
          ops.push_back(next);
        } else {
          skipped.push_back(next);
        }
        session_queue_.pop_front();
      }
      for (auto it = skipped.rbegin(); it != skipped.rend(); ++it) session_queue_.push_front(std::move(*it));
      sessions_in_flight_++;
      v2_requests_++;
      v2_request_streams_ += ops.size();
    }
    if (effective_mode_ == AppendMode::kRecords) {
      start_records(std::move(ops));
    } else {
      start_session(std::move(ops));
    }
  }
}

void Core::session_done(std::vector<OpPtr> ops, const grpc::Status& status, const wire::Trailers& trailers,
                        const v2::AppendSessionResponse& resp, const std::shared_ptr<Node>& from) {
  {
    std::lock_guard lock(mu_);
    sessions_in_flight_--;
  }
  if (status.ok()) {
    std::map<std::string, const v2::AppendResponse*> by_stream;
    for (const auto& o : resp.output()) by_stream[o.stream()] = &o;
    for (auto& op : ops) {
      auto it = by_stream.find(op->req.stream);
      AppendOutcome out{.code = AppendCode::kSuccess, .current_revision = {}, .position = 0, .message = {}};
      if (it == by_stream.end()) {
        out = {.code = AppendCode::kRejected,
               .current_revision = {},
               .position = 0,
               .message = "the session's answer does not mention the stream"};
      } else {
        if (it->second->stream_revision() >= 0)
          out.current_revision = StreamRevision{uint64_t(it->second->stream_revision())};
        out.position = uint64_t(std::max<int64_t>(it->second->position(), 0));
      }
      part_done(op, std::move(out));
    }
    pump_sessions();
    return;
  }
  // The v2 error detail: google.rpc.Status{ErrorInfo, StreamRevisionConflictErrorDetails}.
  google::rpc::Status detail;
  std::string reason;
  std::optional<v2err::StreamRevisionConflictErrorDetails> conflict;
  if (!status.error_details().empty() && detail.ParseFromString(status.error_details())) {
    for (const auto& any : detail.details()) {
      google::rpc::ErrorInfo info;
      v2err::StreamRevisionConflictErrorDetails c;
      if (any.Is<google::rpc::ErrorInfo>() && any.UnpackTo(&info)) reason = info.reason();
      if (any.Is<v2err::StreamRevisionConflictErrorDetails>() && any.UnpackTo(&c)) conflict = c;
    }
  }
  if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION && conflict) {
    // One stream's conflict aborted the session: answer it, send the others again.
    std::vector<OpPtr> others;
    for (auto& op : ops) {
      if (op->req.stream == conflict->stream()) {
        AppendOutcome out{.code = AppendCode::kWrongExpectedVersion,
                          .current_revision = {},
                          .position = 0,
                          .message = "wrong expected version"};
        if (conflict->actual_revision() >= 0)
          out.current_revision = StreamRevision{uint64_t(conflict->actual_revision())};
        part_done(op, std::move(out));
      } else {
        others.push_back(op);
      }
    }
    if (others.size() == ops.size()) {
      for (auto& op : ops) {
        part_done(op, {.code = AppendCode::kRejected,
                       .current_revision = {},
                       .position = 0,
                       .message = "revision conflict on a stream the session did not hold: " + conflict->stream()});
      }
    }
    requeue_front(std::move(others));
    return;
  }
  if (status.error_code() == grpc::StatusCode::ABORTED &&
      (reason == "APPEND_TRANSACTION_SIZE_EXCEEDED" || reason == "STREAM_ALREADY_IN_APPEND_SESSION")) {
    if (ops.size() == 1) {
      auto code = reason == "APPEND_TRANSACTION_SIZE_EXCEEDED" ? AppendCode::kTooLarge : AppendCode::kRejected;
      part_done(ops[0], {.code = code, .current_revision = {}, .position = 0, .message = status.error_message()});
      pump_sessions();
      return;
    }
    splits_++;
    // Split in halves, each its own session.
    std::vector<OpPtr> second(ops.begin() + long(ops.size() / 2), ops.end());
    ops.resize(ops.size() / 2);
    {
      std::lock_guard lock(mu_);
      sessions_in_flight_ += 2;
    }
    start_session(std::move(ops));
    start_session(std::move(second));
    return;
  }
  wire::Verdict v = wire::classify(status, trailers);
  for (auto& op : ops) act(op, v, from);
  pump_sessions();
}

size_t Core::request_budget() const {
  const size_t limit = std::min(options_.max_append_size, server_append_limit_);
  const size_t headroom = limit / 16;
  return static_cast<size_t>(static_cast<double>(limit - headroom) / request_size_factor_);
}

void Core::learn_request_size(size_t ours, uint64_t theirs, uint64_t limit) {
  std::lock_guard lock(mu_);
  if (limit > 0) server_append_limit_ = std::min(server_append_limit_, static_cast<size_t>(limit));
  if (ours > 0 && theirs > ours) {
    request_size_factor_ =
        std::min(16.0, std::max(request_size_factor_, static_cast<double>(theirs) / static_cast<double>(ours)));
  }
}

void Core::requeue_front(std::vector<OpPtr> ops) {
  {
    std::lock_guard lock(mu_);
    for (auto it = ops.rbegin(); it != ops.rend(); ++it) session_queue_.push_front(*it);
  }
  pump_sessions();
}

}  // namespace kingest::kurrent::internal
