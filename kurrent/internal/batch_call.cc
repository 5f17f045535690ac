// Batch mode: appends as correlation ids on one long-lived BatchAppend call.
#include "kurrent/internal/core.h"

#include <spdlog/spdlog.h>

#include <span>

#include "kurrent/internal/batch_call.h"

namespace kingest::kurrent::internal {
namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;  // proposed messages per BatchAppend message

}  // namespace

void BatchCall::start(const std::string& auth) {
  self_ = shared_from_this();
  if (!auth.empty()) ctx_.AddMetadata("authorization", auth);
  if (!core_->settings_.connection_name.empty()) ctx_.AddMetadata("connection-name", core_->settings_.connection_name);
  node_->streams->async()->BatchAppend(&ctx_, this);
  // Held until no write can be started any more: gRPC frees the call before OnDone, so a write
  // started after the last operation completed would touch freed memory.
  AddHold();
  StartRead(&resp_);
  StartCall();
  schedule_sweep();
}

void BatchCall::schedule_sweep() {
  auto period = std::clamp<milliseconds>(core_->deadline() / 4, milliseconds(10), milliseconds(1000));
  std::weak_ptr<BatchCall> weak = weak_from_this();
  core_->timer_.at(Clock::now() + period, [weak] {
    if (auto self = weak.lock()) self->sweep();
  });
}

bool BatchCall::send(const OpPtr& op, milliseconds deadline) {
  Uuid corr = Uuid::v4();
  std::pair<int64_t, int64_t> key{corr.most_significant(), corr.least_significant()};
  auto msgs = wire::batch_append_messages(
      corr, op->req.stream, op->expected,
      std::span<const EventData>(op->req.events).subspan(op->begin(), op->end() - op->begin()), deadline, kChunkBytes);
  {
    std::lock_guard lock(mu_);
    if (ended_ || broken_ || closing_) return false;
    pending_[key] = Pending{op, Clock::now() + deadline};
    for (auto& msg : msgs) writes_.push_back(std::move(msg));
    if (!writing_) write_next_locked();
  }
  return true;
}

void BatchCall::write_next_locked() {
  writing_ = true;
  // The groups handed over together queue up behind the write in progress: each but the last of
  // the queue goes with the buffer hint, so the transport may send them in one HTTP/2 write with
  // the next instead of flushing each. A call has one write in flight at a time, so this only
  // merges what queued meanwhile.
  grpc::WriteOptions options;
  if (writes_.size() > 1) options.set_buffer_hint();
  StartWrite(writes_.front().get(), options);
}

void BatchCall::sweep() {
  std::vector<OpPtr> late;
  {
    std::lock_guard lock(mu_);
    if (ended_) return;
    const auto now = Clock::now();
    std::erase_if(pending_, [&](const auto& entry) {
      if (entry.second.due > now) return false;
      late.push_back(entry.second.op);
      return true;
    });
  }
  for (const auto& op : late) {
    core_->retry(op, "no answer within the deadline (" + std::to_string(core_->deadline().count()) + " ms)");
  }
  schedule_sweep();
}

void BatchCall::release_hold() {
  {
    std::lock_guard lock(mu_);
    if (!held_) return;
    held_ = false;
  }
  RemoveHold();
}

void BatchCall::close() {
  bool half_closed = false;
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    if (ended_ || half_closed_) return;
    if (pending_.empty() && !writing_) {
      half_closed_ = half_closed = true;
      StartWritesDone();
    }
  }
  if (half_closed) return release_hold();
  // Appends still pending (a redirect, or a close that timed out): they are sent again elsewhere.
  ctx_.TryCancel();
}

void BatchCall::OnReadDone(bool ok) {
  if (!ok) {
    // The call is ending; OnDone follows once the hold is gone.
    {
      std::lock_guard lock(mu_);
      broken_ = true;
    }
    return release_hold();
  }
  OpPtr op;
  if (resp_.has_correlation_id()) {
    auto corr = wire::from_proto(resp_.correlation_id());
    if (corr) {
      std::lock_guard lock(mu_);
      auto it = pending_.find({corr->most_significant(), corr->least_significant()});
      if (it != pending_.end()) {
        op = it->second.op;
        pending_.erase(it);
      }
    }
  }
  if (op) core_->batch_response(op, resp_, node_);
  bool release = false;
  {
    std::lock_guard lock(mu_);
    if (closing_ && pending_.empty() && !writing_ && !half_closed_ && !ended_) {
      half_closed_ = true;
      StartWritesDone();
      release = true;
    }
  }
  if (release) release_hold();
  StartRead(&resp_);
}

void BatchCall::OnWriteDone(bool ok) {
  bool release = false;
  {
    std::lock_guard lock(mu_);
    writes_.pop_front();
    writing_ = false;
    if (!ok) {
      broken_ = true;  // OnDone moves what is pending
      release = true;
    } else if (!writes_.empty()) {
      write_next_locked();
    } else if (closing_ && pending_.empty() && !half_closed_) {
      half_closed_ = true;
      StartWritesDone();
      release = true;
    }
  }
  if (release) release_hold();
}

void BatchCall::OnDone(const grpc::Status& status) {
  std::vector<OpPtr> pending;
  {
    std::lock_guard lock(mu_);
    ended_ = true;
    for (auto& [k, p] : pending_) pending.push_back(std::move(p.op));
    pending_.clear();
    writes_.clear();
  }
  if (!status.ok())
    spdlog::debug("kurrentdb: BatchAppend call ended: {} {}", int(status.error_code()), status.error_message());
  core_->batch_call_done(this, status, ctx_.GetServerTrailingMetadata(), std::move(pending));
  auto keep = std::move(self_);  // `this` may go with it
}

void Core::send_batch(const OpPtr& op) {
  std::shared_ptr<BatchCall> call;
  {
    std::lock_guard lock(mu_);
    if (!batch_ || batch_->ended() || batch_->node() != node_) {
      if (batch_) reconnects_++;
      // Bound to its stream before anyone else can see it (a write needs the stream).
      auto fresh = std::make_shared<BatchCall>(shared_from_this(), node_);
      fresh->start(auth_);
      batch_ = std::move(fresh);
    }
    call = batch_;
  }
  if (!call->send(op, deadline())) retry(op, "the BatchAppend call ended", true);
}

void Core::batch_call_done(BatchCall* call, const grpc::Status& status, const wire::Trailers& trailers,
                           std::vector<OpPtr> pending) {
  {
    std::lock_guard lock(mu_);
    if (batch_.get() == call) batch_.reset();
  }
  idle_cv_.notify_all();
  if (pending.empty()) return;
  wire::Verdict v = wire::classify(status, trailers);
  if (status.ok())
    v = {.kind = wire::Verdict::kRetry, .outcome = {}, .reason = "the server ended the BatchAppend call"};
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    spdlog::warn("kurrentdb: the server does not implement BatchAppend; using Append");
    effective_mode_ = AppendMode::kAppend;
    for (auto& op : pending) dispatch(op);
    return;
  }
  if (v.kind == wire::Verdict::kDone && v.outcome.code == AppendCode::kAccessDenied) {
    // The whole call was refused: no stream can be written with these credentials.
    v.outcome.code = AppendCode::kFatal;
    v.outcome.message += ": check the credentials in the connection string";
  }
  for (auto& op : pending) act(op, v, call->node());
}

void Core::batch_response(const OpPtr& op, const streams::BatchAppendResp& resp, const std::shared_ptr<Node>& from) {
  if (resp.result_case() == streams::BatchAppendResp::kSuccess) {
    const auto& s = resp.success();
    AppendOutcome out{.code = AppendCode::kSuccess, .current_revision = {}, .position = 0, .message = {}};
    if (s.current_revision_option_case() == streams::BatchAppendResp::Success::kCurrentRevision) {
      out.current_revision = StreamRevision{s.current_revision()};
    }
    if (s.position_option_case() == streams::BatchAppendResp::Success::kPosition) {
      out.position = s.position().commit_position();
    }
    return part_done(op, std::move(out));
  }
  act(op, wire::classify(resp.error()), from);
}

}  // namespace kingest::kurrent::internal
