// The server's internals shared by its files: the state every call sees (Shared), the
// conversions and checks run at the start of a call, the fixed-status reactors, and one factory per
// rpc. Each rpc's reactor lives in its own file (append_reactor.cc, batch_append_reactor.cc,
// read_reactor.cc, append_session.cc); kurrent_server.cc registers the services and owns the
// lifecycle. Not part of the server's public interface (server/kurrent_server.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/kurrentdb/streams.grpc.pb.h"
#include "proto/kurrentdb/v2/streams.grpc.pb.h"
#include "proto/kurrentdb/wire.h"
#include "server/kurrent_server.h"
#include "store/event_store.h"

namespace kingest::server::internal {

namespace pb = ::event_store::client;
namespace streams = ::event_store::client::streams;
namespace v2 = ::kurrentdb::protocol::v2::streams;

// ---- shared state ----------------------------------------------------------------------------

class BatchAppendReactor;

struct Shared {
  store::EventStore& store;
  ServerOptions options;
  // Set once by start(), before the server listens; read-only afterwards.
  std::unordered_map<std::string, std::string> users;  // name -> password
  std::optional<Endpoint> leader;                      // follower mode: the leader's address
  Uuid instance_id = Uuid::v4();                       // this node in gossip (stable while it runs)
  Uuid leader_instance_id = Uuid::v4();                // the leader in follower mode's gossip
  std::mutex mu;
  bool shutting_down = false;
  std::set<BatchAppendReactor*> batch_reactors;  // live BatchAppend calls, finished on shutdown
  // Bytes of BatchAppend chunks held for correlation ids not yet final, over every call.
  std::atomic<size_t> pending_batch_bytes{0};
  Endpoint self;                                 // gossip's end point for this node; guarded by mu
};

// ---- conversions (conversions.cc; the ones the client shares are in proto/kurrentdb/wire.h) ----

using wire::event_size;
using wire::expected_of;
using wire::from_proto;
using wire::to_proto;

// ProposedMessage of Append and of BatchAppend have the same fields.
template <typename Proposed>
absl::StatusOr<store::ProposedEvent> to_event(const Proposed& m) {
  return wire::event_of<store::ProposedEvent>(m);
}

// The success answer of Append and of BatchAppend (their Success messages have the same fields).
template <typename Success>
void fill_success(const store::AppendResult& r, Success* s) {
  if (r.current_revision) {
    s->set_current_revision(r.current_revision->value());
    s->mutable_position()->set_commit_position(r.position);
    s->mutable_position()->set_prepare_position(r.position);
  } else {
    s->mutable_no_stream();
    s->mutable_no_position();
  }
}

grpc::Status to_grpc(const absl::Status& s);
// Append's in-body wrong expected version: both the 20.6 fields and the current ones.
void fill_wrong_version(const ExpectedRevision& expected, const std::optional<StreamRevision>& current,
                        streams::AppendResp::WrongExpectedVersion* w);
// .NET ticks (100 ns) since the Unix epoch, as gossip's time stamps.
int64_t now_ticks();

// ---- TLS material (tls.cc) ---------------------------------------------------------------------

// Both empty, or a parsable certificate chain and the private key that matches it.
absl::Status check_tls(const std::string& cert_pem, const std::string& key_pem);

// ---- authentication and the leader check (auth.cc) -----------------------------------------------
// Run at the start of each call, on gRPC's thread: a header parse and a map lookup, no blocking.

enum class Access { kOpen, kStreams };

// nullopt: go on. Otherwise the call's answer (trailers already added): UNAUTHENTICATED for bad
// credentials on any rpc; PERMISSION_DENIED "Access Denied" (`exception: access-denied`, as
// KurrentDB) for anonymous callers of the stream rpcs. No users configured: everything is open.
std::optional<grpc::Status> refuse_access(const Shared& shared, grpc::CallbackServerContext* ctx, Access access);
// `requires-leader: true` (any case, as .NET's bool.TryParse reads it).
bool requires_leader(const grpc::CallbackServerContext& ctx);
// KurrentDB's answer from a node that is not the leader: the client reconnects to the named leader.
grpc::Status not_leader(const Shared& shared, grpc::CallbackServerContext* ctx);

// ---- refused calls --------------------------------------------------------------------------------

// A client-streaming call answered with a fixed status: at once, or (`after_reads`) once the client
// has sent all its messages, which are dropped (what KurrentDB does for not-leader: it reads the
// whole append before the write is refused).
template <typename Req>
class RefusedRead final : public grpc::ServerReadReactor<Req> {
 public:
  RefusedRead(grpc::Status status, bool after_reads) : status_(std::move(status)) {
    if (after_reads) {
      this->StartRead(&req_);
    } else {
      this->Finish(status_);
    }
  }
  void OnReadDone(bool ok) override {
    if (ok) {
      this->StartRead(&req_);
    } else {
      this->Finish(status_);
    }
  }
  void OnDone() override { delete this; }

 private:
  grpc::Status status_;
  Req req_;
};

// A bidi call answered with a fixed status: at once, or (`after_first_read`) at the client's first
// message (or its half-close).
template <typename Req, typename Resp>
class RefusedBidi final : public grpc::ServerBidiReactor<Req, Resp> {
 public:
  RefusedBidi(grpc::Status status, bool after_first_read) : status_(std::move(status)) {
    if (after_first_read) {
      this->StartRead(&req_);
    } else {
      this->Finish(status_);
    }
  }
  void OnReadDone(bool) override { this->Finish(status_); }
  void OnDone() override { delete this; }

 private:
  grpc::Status status_;
  Req req_;
};

// A server-streaming call answered with a fixed status and no messages.
template <typename Resp>
class RefusedWrite final : public grpc::ServerWriteReactor<Resp> {
 public:
  explicit RefusedWrite(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};


// ---- the rpcs ------------------------------------------------------------------------------------

// Streams.Append (append_reactor.cc).
grpc::ServerReadReactor<streams::AppendReq>* new_append_reactor(Shared& shared, grpc::CallbackServerContext* ctx,
                                                                streams::AppendResp* resp);
// Streams.BatchAppend (batch_append_reactor.cc). The reactor registers itself in
// shared.batch_reactors until it is done.
grpc::ServerBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp>* new_batch_append_reactor(Shared& shared);
// Server shutdown: stop taking chunks; finish once the pending appends are answered and sent.
// Called under shared.mu.
void drain(BatchAppendReactor* reactor);
// Streams.Read (read_reactor.cc).
grpc::ServerWriteReactor<streams::ReadResp>* new_read_reactor(Shared& shared, grpc::CallbackServerContext* ctx,
                                                              const streams::ReadReq& req);

// Runs v2 sessions one at a time on one thread: that serialisation is the server-side lock that
// makes a session's check-then-append atomic with respect to other sessions (the store has no
// multi-stream transaction). Not per call: one thread for the whole server.
class SessionWorker {
 public:
  SessionWorker() : thread_([this] { run(); }) {}
  ~SessionWorker() { stop(); }

  void post(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

  // Runs the queued jobs, then joins. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

// ---- v2 (append_session.cc) ----

// KurrentDB's name of a schema format in "$schema.format" ("Json", "Bytes", ...).
const char* schema_format_name(v2::SchemaFormat f);
// A v2 record as the store's event: the properties become the JSON metadata with KurrentDB's
// "$schema.format" and "$schema.name" added.
absl::StatusOr<store::ProposedEvent> v2_event(const v2::AppendRecord& rec);
// `code` with grpc-status-details-bin = google.rpc.Status{ErrorInfo{reason, domain "streams"},
// `detail` when given}.
grpc::Status v2_error(grpc::StatusCode code, const std::string& reason, const std::string& message,
                      const google::protobuf::Message* detail = nullptr);

// AppendRecords (append_records.cc): reads the encoded AppendRecordsRequest (records_wire.h),
// checks and converts it on the caller's thread, then writes it as one store transaction; `done`
// gets the call's status once `response` holds the encoded AppendRecordsResponse (on the store's
// writer thread, or at once for a refused request).
void append_records(Shared& shared, const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
                    std::function<void(const grpc::Status&)> done);

// v2 StreamsService with AppendSession (run by `worker`, one session at a time) and AppendRecords.
std::unique_ptr<grpc::Service> new_v2_streams_service(Shared& shared, SessionWorker& worker);

}  // namespace kingest::server::internal
