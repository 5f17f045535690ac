// Core: the client's shared state and its append machinery, owned jointly by the public client
// (ClientImpl) and every call in flight (each holds a shared_ptr, so the core outlives its last
// callback). One file per job holds the methods: channel.cc (channels, credentials, redirects),
// core.cc (admission, retries, answers, lifecycle), batch_call.cc, append_call.cc,
// session_call.cc, records_call.cc (the append paths) and reads.cc. Threads: the pipeline's threads call
// submit/read; gRPC's callback threads and the timer thread run the rest; `mu_` guards the
// fields below it.
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "kurrent/internal/timer.h"
#include "kurrent/kurrent_client.h"
#include "kurrent/wire.h"
#include "proto/kurrentdb/records_wire.h"
#include "proto/kurrentdb/streams.grpc.pb.h"
#include "proto/kurrentdb/v2/streams.grpc.pb.h"

namespace kingest::kurrent::internal {

namespace pb = event_store::client;
namespace streams = event_store::client::streams;
namespace v2 = kurrentdb::protocol::v2::streams;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---- one append from the pipeline ----------------------------------------------------------------

struct Op {
  AppendRequest req;
  Sink::AppendDone done;
  absl::InlinedVector<size_t, 1> part_ends;  // events [part_ends[k-1], part_ends[k]) form part k
  size_t part = 0;
  ExpectedRevision expected;  // of the current part
  size_t bytes = 0;           // of the whole request
  int attempts = 0;           // consecutive failed attempts
  Clock::time_point failing_since{};
  Clock::time_point queued_at{};  // records and session modes, with a linger: when it joined the queue
  std::atomic<bool> finished{false};

  [[nodiscard]] size_t begin() const { return part == 0 ? 0 : part_ends[part - 1]; }
  [[nodiscard]] size_t end() const { return part_ends[part]; }
  [[nodiscard]] size_t part_bytes() const {
    size_t n = 0;
    for (size_t i = begin(); i < end(); ++i) n += wire::event_size(req.events[i]);
    return n;
  }
};
using OpPtr = std::shared_ptr<Op>;

// One node's channel and stubs; replaced as a whole when a not-leader answer names another node.
struct Node {
  std::string endpoint;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<streams::Streams::Stub> streams;
  std::unique_ptr<v2::StreamsService::Stub> v2;
  std::unique_ptr<grpc::GenericStub> generic;  // AppendRecords with a request encoded by records_wire.h
};

// ---- credentials and errors (channel.cc) ----------------------------------------------------------

// The `authorization` header value for the connection string's user; empty without one.
std::string authorization(const ConnectionSettings& s);
// Why a connection attempt failed, said so that the user knows what to check.
std::string explain_connect_error(const ConnectionSettings& s, const std::string& endpoint, const grpc::Status& st);
// A failed call as the caller's status, its code chosen by the retry rule: UNAVAILABLE only for
// what may pass by itself (`retryable`); credentials refused stay UNAUTHENTICATED /
// PERMISSION_DENIED (fatal: retrying cannot fix them), other refusals keep their gRPC code.
absl::Status call_error(const grpc::Status& st, bool retryable, std::string message);
// A stream's tail from a backwards read of one event.
StreamTail tail_of(const std::vector<RecordedEventData>& events, bool deleted);

class BatchCall;

class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(ConnectionSettings settings, ClientOptions options);
  ConnectionSettings settings_;
  ClientOptions options_;
  std::string auth_;
  std::atomic<AppendMode> effective_mode_;
  std::string server_version_;
  Timer timer_;

  // ---- connection (channel.cc) ----
  absl::StatusOr<std::shared_ptr<Node>> make_node(const std::string& endpoint);
  void prepare(grpc::ClientContext& ctx, milliseconds deadline, bool requires_leader = false) const;
  [[nodiscard]] milliseconds deadline() const { return settings_.default_deadline; }
  std::shared_ptr<Node> node();
  void set_node(std::shared_ptr<Node> n);
  // Moves to the leader named by a not-leader answer (once per node change).
  void redirect(const std::shared_ptr<Node>& from, const std::string& host, uint16_t port);

  // ---- appends (core.cc) ----
  void submit(AppendRequest req, Sink::AppendDone done);
  // The same for many, in order, with one turn of the lock and one pump for all of them.
  void submit_many(std::vector<Sink::PendingAppend>& appends);
  // An op for a request, its parts cut; null when it was answered at once (no events).
  OpPtr make_op(AppendRequest req, Sink::AppendDone done);
  // Admits the ops in order (one turn of the lock) and sends or queues them; an op without room
  // waits for an answer to make some. Leaves the span's pointers moved from, except those
  // dispatched one by one (the modes without a queue).
  void send_ops(std::span<OpPtr> ops);
  bool admit_locked(const Op& op);
  void dispatch(const OpPtr& op);
  // A part's answer: the next part goes out, or the op is answered.
  void part_done(const OpPtr& op, AppendOutcome out);
  void finish(const OpPtr& op, AppendOutcome out);
  // Answers the ops of one response that end with it: as finish, with one turn of the lock for all.
  void finish_all(std::vector<std::pair<OpPtr, AppendOutcome>>& answers);
  void retry(const OpPtr& op, const std::string& reason, bool immediate = false);
  // Acts on a verdict for one op (kDone answers the part, kRetry/kRedirect send it again).
  void act(const OpPtr& op, const wire::Verdict& v, const std::shared_ptr<Node>& from);

  // ---- batch mode (batch_call.cc) ----
  void send_batch(const OpPtr& op);
  void batch_call_done(BatchCall* call, const grpc::Status& status, const wire::Trailers& trailers,
                       std::vector<OpPtr> pending);
  void batch_response(const OpPtr& op, const streams::BatchAppendResp& resp, const std::shared_ptr<Node>& from);

  // ---- append mode (append_call.cc) ----
  void send_append(const OpPtr& op);
  void append_done(const OpPtr& op, const grpc::Status& status, const wire::Trailers& trailers,
                   const streams::AppendResp& resp, const std::shared_ptr<Node>& from);

  // ---- session mode (session_call.cc) ----
  void enqueue_session(const OpPtr& op);
  void pump_sessions();
  void start_session(std::vector<OpPtr> ops);
  void session_done(std::vector<OpPtr> ops, const grpc::Status& status, const wire::Trailers& trailers,
                    const v2::AppendSessionResponse& resp, const std::shared_ptr<Node>& from);
  void requeue_front(std::vector<OpPtr> ops);
  // Builds and starts one v2 call (`Call`: the session or the records call) for `ops`; a request
  // that cannot be built answers each op kRejected and frees its session slot.
  template <typename Call>
  void start_v2_call(std::vector<OpPtr> ops) {
    auto* call = new Call(shared_from_this(), node(), ops);
    if (auto bad = call->build()) {
      delete call;
      {
        std::lock_guard lock(mu_);
        sessions_in_flight_--;
      }
      for (auto& op : ops) {
        part_done(op, {.code = AppendCode::kRejected, .current_revision = {}, .position = 0, .message = *bad});
      }
      pump_sessions();
      return;
    }
    call->start();
  }

  // ---- records mode (records_call.cc; queued and paced by the session mode's pump) ----
  // One AppendRecords request for `ops`; an op whose events cannot be sent as records is answered
  // kRejected on its own, and the others go out without it.
  void start_records(std::vector<OpPtr> ops);
  // Appends the op's current part, as an AppendRecords fragment, to `out`; an error message (and
  // `out` as it was) when an event cannot be sent as a record.
  static std::optional<std::string> encode_records_part(const Op& op, std::string* out);
  void records_done(std::vector<OpPtr> ops, const grpc::Status& status, const wire::Trailers& trailers,
                    const ::kingest::wire::RecordsAnswer& answer, const std::shared_ptr<Node>& from);
  // The most bytes (wire::event_size, the client's count) one request may take: the smaller of
  // `max_append_size` and the server's limit once an answer told it, less a sixteenth, divided by
  // how much more than the client the server has been seen to count. Under mu_.
  [[nodiscard]] size_t request_budget() const;
  // From an APPEND_TRANSACTION_SIZE_EXCEEDED answer: the request was `ours` bytes by the client's
  // count and `theirs` by the server's, over its `limit` (0: not given).
  void learn_request_size(size_t ours, uint64_t theirs, uint64_t limit);

  // ---- reads (reads.cc) ----
  struct ReadResult {
    std::vector<RecordedEventData> events;
    bool deleted = false;
    bool not_found = false;
  };
  absl::StatusOr<ReadResult> read(const std::string& stream, bool backwards, std::optional<uint64_t> from,
                                  uint64_t count);
  // $all forwards from a commit position (inclusive; 0: the start).
  absl::StatusOr<ReadResult> read_all(uint64_t from_position, uint64_t count);
  // One read request, with the retry, redirect and outage handling of every read.
  absl::StatusOr<ReadResult> read(const std::string& stream, const streams::ReadReq& req);
  static streams::ReadReq read_request(const std::string& stream, bool backwards, std::optional<uint64_t> from,
                                       uint64_t count);
  static std::optional<RecordedEventData> recorded(const streams::ReadResp::ReadEvent::RecordedEvent& e);
  // Many tails at once: the reads overlap on the channel; a read that fails is read again on its
  // own (with the retry and redirect handling of `read`).
  std::vector<absl::StatusOr<StreamTail>> read_tails(const std::vector<std::string>& names);
  // Reads share one retry budget per outage: a read that fails (retryably) within the outage gap of
  // the last failure belongs to the same outage, and every read gives up once the outage is older
  // than retry_for. Returns how long the outage has lasted.
  milliseconds read_failed();
  void read_succeeded();

  // ---- lifecycle (core.cc) ----
  void close(milliseconds timeout);
  void call_started();
  void call_ended();
  ClientStats stats();
  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::shared_ptr<Node> node_;
  std::shared_ptr<BatchCall> batch_;
  std::deque<OpPtr> waiting_;
  std::deque<OpPtr> session_queue_;  // records and session modes
  size_t sessions_in_flight_ = 0;
  // What request_budget learned from the server's answers.
  size_t server_append_limit_ = SIZE_MAX;
  double request_size_factor_ = 1.0;
  bool linger_armed_ = false;
  size_t in_flight_ = 0;
  size_t in_flight_bytes_ = 0;
  size_t calls_ = 0;  // append and session calls not yet done
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> appends_{0}, retries_{0}, reconnects_{0}, redirects_{0}, splits_{0};
  std::atomic<uint64_t> v2_requests_{0}, v2_request_streams_{0};
  // The reads' outage (see read_failed); guarded by mu_. No outage: outage_since_ is unset.
  std::optional<Clock::time_point> outage_since_;
  Clock::time_point outage_last_failure_{};
};

}  // namespace kingest::kurrent::internal
