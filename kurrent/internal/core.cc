// The append machinery every path shares: admission (bytes and appends in flight), parts of an
// append over the size limit, retries with backoff, acting on a verdict, answers, and the lifecycle.
#include "kurrent/internal/core.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "kurrent/internal/batch_call.h"

namespace kingest::kurrent::internal {

Core::Core(ConnectionSettings settings, ClientOptions options) : settings_(std::move(settings)), options_(options) {
  auth_ = authorization(settings_);
  effective_mode_ = options_.mode;
}

OpPtr Core::make_op(AppendRequest req, Sink::AppendDone done) {
  auto op = std::make_shared<Op>();
  op->req = std::move(req);
  op->done = std::move(done);
  op->expected = op->req.expected;
  size_t part_bytes = 0;
  for (size_t i = 0; i < op->req.events.size(); ++i) {
    size_t sz = wire::event_size(op->req.events[i]);
    if (part_bytes > 0 && part_bytes + sz > options_.max_append_size) {
      op->part_ends.push_back(i);
      part_bytes = 0;
    }
    part_bytes += sz;
    op->bytes += sz;
  }
  op->part_ends.push_back(op->req.events.size());
  if (op->part_ends.size() > 1) splits_++;
  if (op->req.events.empty()) {
    op->finished = true;
    op->done(AppendOutcome{.code = AppendCode::kRejected,
                           .current_revision = {},
                           .position = 0,
                           .message = "an append needs at least one event"});
    return nullptr;
  }
  return op;
}

void Core::submit(AppendRequest req, Sink::AppendDone done) {
  OpPtr op = make_op(std::move(req), std::move(done));
  if (op != nullptr) send_ops({&op, 1});
}

void Core::submit_many(std::vector<Sink::PendingAppend>& appends) {
  std::vector<OpPtr> ops;
  ops.reserve(appends.size());
  for (auto& a : appends) {
    if (OpPtr op = make_op(std::move(a.request), std::move(a.done))) ops.push_back(std::move(op));
  }
  appends.clear();
  if (!ops.empty()) send_ops(ops);
}

void Core::send_ops(std::span<OpPtr> ops) {
  const AppendMode mode = effective_mode_;
  const bool queued_mode = mode == AppendMode::kSession || mode == AppendMode::kRecords;
  {
    std::lock_guard lock(mu_);
    const auto now = options_.session_linger.count() > 0 ? Clock::now() : Clock::time_point{};  // read only to linger
    for (OpPtr& op : ops) {
      if (!admit_locked(*op)) {
        waiting_.push_back(std::move(op));  // sent when an answer makes room
      } else if (queued_mode) {
        // Admitted and queued for the next request under the same lock (what dispatch and
        // enqueue_session do, each under a lock of its own, for an op admitted later).
        appends_++;
        op->queued_at = now;
        session_queue_.push_back(std::move(op));
      }
    }
  }
  if (queued_mode) {
    pump_sessions();
    return;
  }
  for (const OpPtr& op : ops) {
    if (op != nullptr) dispatch(op);
  }
}

bool Core::admit_locked(const Op& op) {
  bool room = in_flight_ == 0 || (in_flight_ < options_.max_in_flight_appends &&
                                  in_flight_bytes_ + op.bytes <= options_.max_in_flight_bytes);
  if (!room) return false;
  in_flight_++;
  in_flight_bytes_ += op.bytes;
  return true;
}

void Core::dispatch(const OpPtr& op) {
  if (op->finished) return;
  appends_++;
  switch (effective_mode_) {
    case AppendMode::kBatch:
      return send_batch(op);
    case AppendMode::kAppend:
      return send_append(op);
    case AppendMode::kSession:
    case AppendMode::kRecords:
      return enqueue_session(op);
    case AppendMode::kAuto:  // resolved by connect; never in effect
      return send_batch(op);
  }
}

// A part's answer: the next part goes out, or the op is answered.
void Core::part_done(const OpPtr& op, AppendOutcome out) {
  // A group the client sent whole goes back to the caller as too large: nothing of it is written, so
  // the caller can split it with exact revisions (and count what a re-append finds as duplicates
  // only when it really was there). A group already in parts continues in smaller parts, as its
  // first parts may be written.
  if (out.code == AppendCode::kTooLarge && op->end() - op->begin() > 1 && op->part_ends.size() > 1) {
    // The server counts sizes its own way (v2 adds schema properties): halve the part.
    op->part_ends.insert(op->part_ends.begin() + long(op->part), op->begin() + (op->end() - op->begin()) / 2);
    splits_++;
    dispatch(op);
    return;
  }
  if (out.code == AppendCode::kSuccess && op->part + 1 < op->part_ends.size()) {
    op->part++;
    op->attempts = 0;
    if (out.current_revision) op->expected = *out.current_revision;
    dispatch(op);
    return;
  }
  finish(op, std::move(out));
}

void Core::finish_all(std::vector<std::pair<OpPtr, AppendOutcome>>& answers) {
  std::vector<OpPtr> admitted;
  {
    std::lock_guard lock(mu_);
    for (auto& [op, out] : answers) {
      if (op->finished.exchange(true)) {
        op = nullptr;  // answered already
        continue;
      }
      in_flight_--;
      in_flight_bytes_ -= op->bytes;
    }
    while (!waiting_.empty() && admit_locked(*waiting_.front())) {
      admitted.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
  }
  const auto at = std::chrono::steady_clock::now();  // the answers' time, read once for them all
  for (auto& [op, out] : answers) {
    if (!op) continue;
    auto done = std::move(op->done);
    out.answered_at = at;
    done(std::move(out));
  }
  for (auto& next : admitted) dispatch(next);
  idle_cv_.notify_all();
}

void Core::finish(const OpPtr& op, AppendOutcome out) {
  if (op->finished.exchange(true)) return;
  std::vector<OpPtr> admitted;
  {
    std::lock_guard lock(mu_);
    in_flight_--;
    in_flight_bytes_ -= op->bytes;
    while (!waiting_.empty() && admit_locked(*waiting_.front())) {
      admitted.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
  }
  auto done = std::move(op->done);
  done(std::move(out));
  for (auto& next : admitted) dispatch(next);
  idle_cv_.notify_all();
}

void Core::retry(const OpPtr& op, const std::string& reason, bool immediate) {
  if (op->finished) return;
  auto now = Clock::now();
  if (op->attempts == 0) op->failing_since = now;
  op->attempts++;
  retries_++;
  if (now - op->failing_since > options_.retry_for || closed_) {
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - op->failing_since).count();
    finish(op, AppendOutcome{.code = AppendCode::kFatal,
                             .current_revision = {},
                             .position = 0,
                             .message = closed_ ? "the client was closed while retrying: " + reason
                                                : absl::StrCat("KurrentDB at ", node()->endpoint, " kept failing for ",
                                                               secs, " s; last error: ", reason)});
    return;
  }
  spdlog::debug("kurrentdb: retrying {} (attempt {}): {}", op->req.stream, op->attempts, reason);
  milliseconds delay{0};
  if (!immediate) {
    int64_t base = options_.backoff_initial.count() << std::min(op->attempts - 1, 16);
    base = std::min<int64_t>(base, options_.backoff_max.count());
    thread_local std::mt19937_64 rng{std::random_device{}()};
    delay = milliseconds(base / 2 + int64_t(rng() % uint64_t(base / 2 + 1)));  // 50-100 %: full jitter's spread
    // The last attempt comes when retry_for is up, not a backoff later: every append of an outage
    // gives up within a few milliseconds of retry_for, so a run that stops on the first one does
    // not wait up to backoff_max for the others.
    const auto left = std::chrono::duration_cast<milliseconds>(op->failing_since + options_.retry_for - now) +
                      milliseconds(1);
    delay = std::min(delay, std::max(left, milliseconds(0)));
  }
  std::weak_ptr<Core> weak = weak_from_this();
  timer_.at(now + delay, [weak, op] {
    if (auto self = weak.lock()) self->dispatch(op);
  });
}

// Acts on a verdict for one op (kDone answers the part, kRetry/kRedirect send it again).
void Core::act(const OpPtr& op, const wire::Verdict& v, const std::shared_ptr<Node>& from) {
  switch (v.kind) {
    case wire::Verdict::kDone:
      return part_done(op, v.outcome);
    case wire::Verdict::kRedirect:
      redirect(from, v.leader_host, v.leader_port);
      return retry(op, "not leader; moving to " + v.leader_host + ":" + std::to_string(v.leader_port), true);
    case wire::Verdict::kRetry:
      return retry(op, v.reason);
  }
}

void Core::close(milliseconds timeout) {
  {
    std::unique_lock lock(mu_);
    idle_cv_.wait_for(lock, timeout, [&] { return in_flight_ == 0; });
    if (in_flight_ > 0) spdlog::warn("kurrentdb: closing with {} appends unanswered", in_flight_);
    closed_ = true;
  }
  std::shared_ptr<BatchCall> call;
  {
    std::lock_guard lock(mu_);
    call = batch_;
  }
  if (call) {
    call->close();
    std::unique_lock lock(mu_);
    idle_cv_.wait_for(lock, milliseconds(5000), [&] { return batch_ == nullptr; });
  }
  std::unique_lock lock(mu_);
  idle_cv_.wait_for(lock, milliseconds(5000), [&] { return calls_ == 0; });
}

void Core::call_started() {
  std::lock_guard lock(mu_);
  calls_++;
}

void Core::call_ended() {
  {
    std::lock_guard lock(mu_);
    calls_--;
  }
  idle_cv_.notify_all();
}

ClientStats Core::stats() {
  std::lock_guard lock(mu_);
  const bool has_channel = node_ != nullptr && node_->channel != nullptr;
  const bool connected = has_channel && node_->channel->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
  return ClientStats{.appends = appends_,
                     .retries = retries_,
                     .reconnects = reconnects_,
                     .redirects = redirects_,
                     .splits = splits_,
                     .v2_requests = v2_requests_,
                     .v2_request_streams = v2_request_streams_,
                     .channels = has_channel ? 1u : 0u,
                     .channels_connected = connected ? 1u : 0u,
                     .calls_open = calls_ + (batch_ != nullptr ? 1u : 0u)};
}

}  // namespace kingest::kurrent::internal
