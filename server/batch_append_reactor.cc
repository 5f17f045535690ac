// Streams.BatchAppend: a long-lived bidi call carrying many appends, each a correlation id whose
// chunks are gathered until is_final; answers are queued and written one at a time.
#include "server/internal/server.h"

#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/empty.pb.h"
#include "proto/kurrentdb/status.pb.h"

namespace kingest::server::internal {

class BatchAppendReactor final : public grpc::ServerBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp> {
 public:
  explicit BatchAppendReactor(Shared& shared) : shared_(shared) {
    bool refuse = false;
    {
      std::lock_guard lock(shared_.mu);
      if (shared_.shutting_down) {
        refuse = true;
      } else {
        shared_.batch_reactors.insert(this);
      }
    }
    if (refuse) {
      Finish({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
      return;
    }
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The read path is over: what unfinished correlation ids held is given back before the call
      // can end, so a client that saw the call end finds the budget free.
      for (auto& [key, p] : pending_) release(p);
      pending_.clear();
      std::lock_guard lock(mu_);
      reads_done_ = true;
      maybe_finish_locked();
      return;
    }
    handle(req_);
    {
      std::lock_guard lock(mu_);
      if (finishing_ || stop_reading_) return;
    }
    StartRead(&req_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      broken_ = true;
      queue_.clear();
    }
    write_next_locked();
    maybe_finish_locked();
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    broken_ = true;
    reads_done_ = true;
    queue_.clear();
    maybe_finish_locked();
  }

  void OnDone() override {
    for (auto& [key, p] : pending_) release(p);
    {
      std::lock_guard lock(shared_.mu);
      shared_.batch_reactors.erase(this);
    }
    delete this;
  }

  // Server shutdown: stop taking chunks; finish once the pending appends are answered and sent.
  void drain() {
    std::lock_guard lock(mu_);
    stop_reading_ = true;
    reads_done_ = true;
    maybe_finish_locked();
  }

 private:
  struct Pending {
    std::string stream;
    ExpectedRevision expected;
    streams::BatchAppendReq::Options options;
    std::vector<store::ProposedEvent> events;
    size_t size = 0;
    size_t held = 0;      // bytes counted against the pending budgets
    bool failed = false;  // an error was answered; later chunks are dropped
  };

  // Counts `bytes` of an unfinished correlation id against the call's and the server's budgets;
  // false (nothing counted) when either would be exceeded.
  bool hold(Pending& p, size_t bytes) {
    if (held_bytes_ + bytes > shared_.options.max_pending_batch_bytes_per_call) return false;
    const size_t before = shared_.pending_batch_bytes.fetch_add(bytes);
    if (before + bytes > shared_.options.max_pending_batch_bytes) {
      shared_.pending_batch_bytes.fetch_sub(bytes);
      return false;
    }
    held_bytes_ += bytes;
    p.held += bytes;
    return true;
  }

  // Gives back what `p` held; a failed correlation id also drops its events.
  void release(Pending& p) {
    shared_.pending_batch_bytes.fetch_sub(p.held);
    held_bytes_ -= p.held;
    p.held = 0;
    if (p.failed) p.events.clear();
  }

  void handle(const streams::BatchAppendReq& req) {
    auto cid = from_proto(req.correlation_id());
    if (!cid) {
      std::lock_guard lock(mu_);
      stop_reading_ = true;
      reads_done_ = true;
      final_status_ = {grpc::StatusCode::INVALID_ARGUMENT, "batch append: missing or malformed correlation id"};
      maybe_finish_locked();
      return;
    }
    std::string key = cid->to_string();
    auto it = pending_.find(key);
    if (it == pending_.end()) {
      if (!req.has_options()) {
        answer_error(req.correlation_id(), nullptr, google::rpc::INVALID_ARGUMENT,
                     "batch append: first chunk of a correlation id must carry options", nullptr);
        return;
      }
      auto expected = expected_of(req.options());
      const std::string& name = req.options().stream_identifier().stream_name();
      if (!expected.ok() || name.empty()) {
        answer_error(req.correlation_id(), &req.options(), google::rpc::INVALID_ARGUMENT,
                     expected.ok() ? "batch append: empty stream name" : std::string(expected.status().message()),
                     nullptr);
        return;
      }
      it = pending_.emplace(key, Pending{.stream = name, .expected = *expected, .options = req.options()}).first;
    }
    Pending& p = it->second;
    for (const auto& m : req.proposed_messages()) {
      if (p.failed) break;
      auto ev = to_event(m);
      if (!ev.ok()) {
        answer_error(req.correlation_id(), &p.options, google::rpc::INVALID_ARGUMENT,
                     std::string(ev.status().message()), nullptr);
        p.failed = true;
        break;
      }
      size_t size = event_size(*ev);
      p.size += size;
      if (size > shared_.options.max_event_size || p.size > shared_.options.max_append_size) {
        pb::MaximumAppendSizeExceeded detail;
        detail.set_maxappendsize(static_cast<uint32_t>(shared_.options.max_append_size));
        answer_error(req.correlation_id(), &p.options, google::rpc::INVALID_ARGUMENT, "Maximum Append Size Exceeded",
                     &detail);
        p.failed = true;
        break;
      }
      if (!hold(p, size)) {
        const google::protobuf::Empty detail = message_detail();
        answer_error(req.correlation_id(), &p.options, google::rpc::RESOURCE_EXHAUSTED,
                     absl::StrCat("batch append: too many bytes in unfinished correlation ids (at most ",
                                  shared_.options.max_pending_batch_bytes_per_call, " per call and ",
                                  shared_.options.max_pending_batch_bytes,
                                  " per server): send is_final sooner, or fewer appends at once"),
                     &detail);
        p.failed = true;
        break;
      }
      p.events.push_back(std::move(*ev));
    }
    if (p.failed) release(p);
    if (!req.is_final()) return;
    release(p);
    Pending done = std::move(p);
    pending_.erase(it);
    if (done.failed) return;
    {
      // Checked with the increment: once finishing, the reactor may be deleted at any time, so no
      // append callback may still point at it.
      std::lock_guard lock(mu_);
      if (finishing_) return;
      ++in_flight_;
    }
    auto correlation = std::make_shared<pb::UUID>(req.correlation_id());
    auto options = std::make_shared<streams::BatchAppendReq::Options>(std::move(done.options));
    ExpectedRevision expected = done.expected;
    shared_.store.append(std::move(done.stream), expected, std::move(done.events),
                         [this, correlation, options, expected](const store::AppendResult& r) {
                           answer(*correlation, *options, expected, r);
                         });
  }

  // The detail of an error whose message is what the caller needs (a storage failure, a full
  // budget). The official clients turn the marker details (Unknown, Timeout, ...) into errors with
  // an empty message and keep the message only for a detail type they do not know; KurrentDB itself
  // answers google.protobuf.Empty with a message for its server-side conditions (not ready, busy,
  // internal error).
  static google::protobuf::Empty message_detail() { return {}; }

  static void echo_options(const streams::BatchAppendReq::Options& o, streams::BatchAppendResp* resp) {
    *resp->mutable_stream_identifier() = o.stream_identifier();
    using O = streams::BatchAppendReq::Options;
    switch (o.expected_stream_position_case()) {
      case O::kStreamPosition:
        resp->set_stream_position(o.stream_position());
        break;
      case O::kNoStream:
        resp->mutable_no_stream();
        break;
      case O::kAny:
        resp->mutable_any();
        break;
      case O::kStreamExists:
        resp->mutable_stream_exists();
        break;
      default:
        break;
    }
  }

  // From a gRPC thread (the read path), while no append of this correlation id is in flight.
  void answer_error(const pb::UUID& correlation, const streams::BatchAppendReq::Options* options,
                    google::rpc::Code code, const std::string& message, const google::protobuf::Message* detail) {
    streams::BatchAppendResp resp;
    *resp.mutable_correlation_id() = correlation;
    if (options) echo_options(*options, &resp);
    auto* err = resp.mutable_error();
    err->set_code(code);
    err->set_message(message);
    if (detail) {
      err->add_details()->PackFrom(*detail);
    } else {
      // Clients read the one detail by its type name: an error without one crashes them.
      pb::BadRequest bad;
      bad.set_message(message);
      err->add_details()->PackFrom(bad);
    }
    std::lock_guard lock(mu_);
    enqueue_locked(std::move(resp));
  }

  // On the store's writer thread: build the answer and queue it; never blocks.
  void answer(const pb::UUID& correlation, const streams::BatchAppendReq::Options& options,
              const ExpectedRevision& expected, const store::AppendResult& r) {
    streams::BatchAppendResp resp;
    *resp.mutable_correlation_id() = correlation;
    echo_options(options, &resp);
    switch (r.status) {
      case store::AppendStatus::kSuccess: {
        fill_success(r, resp.mutable_success());
        break;
      }
      case store::AppendStatus::kWrongExpectedVersion: {
        auto* err = resp.mutable_error();
        err->set_code(google::rpc::ALREADY_EXISTS);
        err->set_message("WrongExpectedVersion");
        err->add_details()->PackFrom(wire::wrong_expected_version(expected, r.current_revision));
        break;
      }
      case store::AppendStatus::kStreamDeleted: {
        auto* err = resp.mutable_error();
        err->set_code(google::rpc::NOT_FOUND);
        err->set_message("StreamDeleted");
        pb::StreamDeleted detail;
        *detail.mutable_stream_identifier() = options.stream_identifier();
        err->add_details()->PackFrom(detail);
        break;
      }
      case store::AppendStatus::kError: {
        auto* err = resp.mutable_error();
        err->set_code(google::rpc::UNAVAILABLE);
        err->set_message(absl::StrCat("batch append to ", options.stream_identifier().stream_name(),
                                      ": the store could not write it: ", r.message));
        err->add_details()->PackFrom(message_detail());
        break;
      }
    }
    std::lock_guard lock(mu_);
    --in_flight_;
    enqueue_locked(std::move(resp));
    maybe_finish_locked();
  }

  void enqueue_locked(streams::BatchAppendResp resp) {
    if (broken_ || finishing_) return;
    queue_.push_back(std::move(resp));
    write_next_locked();
  }

  void write_next_locked() {
    if (writing_ || queue_.empty() || broken_ || finishing_) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&current_);
  }

  void maybe_finish_locked() {
    if (finishing_ || !reads_done_ || in_flight_ > 0 || writing_ || !queue_.empty()) return;
    finishing_ = true;
    Finish(broken_ ? grpc::Status::CANCELLED : final_status_);
  }

  Shared& shared_;
  streams::BatchAppendReq req_;
  // Read path only (one read at a time).
  std::unordered_map<std::string, Pending> pending_;
  size_t held_bytes_ = 0;  // of the pending budget, summed over pending_
  // Guarded by mu_.
  std::mutex mu_;
  std::deque<streams::BatchAppendResp> queue_;
  streams::BatchAppendResp current_;
  bool writing_ = false;
  bool reads_done_ = false;
  bool broken_ = false;
  bool finishing_ = false;
  bool stop_reading_ = false;
  grpc::Status final_status_ = grpc::Status::OK;
  int in_flight_ = 0;
};

grpc::ServerBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp>* new_batch_append_reactor(Shared& shared) {
  return new BatchAppendReactor(shared);
}

void drain(BatchAppendReactor* reactor) { reactor->drain(); }

}  // namespace kingest::server::internal
