#include "server/kurrent_server.h"

#include <grpcpp/grpcpp.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proto/kurrentdb/gossip.grpc.pb.h"
#include "proto/kurrentdb/serverfeatures.grpc.pb.h"
#include "proto/kurrentdb/shared.pb.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/streams.grpc.pb.h"
#include "proto/kurrentdb/v2/errors.pb.h"
#include "proto/kurrentdb/v2/streams.grpc.pb.h"
#include "proto/kurrentdb/wire.h"

namespace kingest::server {
namespace {

namespace pb = ::event_store::client;
namespace streams = ::event_store::client::streams;
namespace features = ::event_store::client::server_features;
namespace gossip = ::event_store::client::gossip;
namespace v2 = ::kurrentdb::protocol::v2::streams;

constexpr uint64_t kNoStreamLegacy = std::numeric_limits<uint64_t>::max();

// ---- conversions ---------------------------------------------------------------------------

using wire::from_proto;
using wire::to_proto;

// ProposedMessage of Append and of BatchAppend have the same fields.
template <typename Proposed>
absl::StatusOr<store::ProposedEvent> to_event(const Proposed& m) {
  return wire::event_of<store::ProposedEvent>(m);
}

using wire::event_size;
using wire::expected_of;

grpc::Status to_grpc(const absl::Status& s) {
  return {static_cast<grpc::StatusCode>(static_cast<int>(s.code())), std::string(s.message())};
}

// Append's in-body wrong expected version: both the 20.6 fields and the current ones.
void fill_wrong_version(const ExpectedRevision& expected, const std::optional<StreamRevision>& current,
                        streams::AppendResp::WrongExpectedVersion* w) {
  if (current) {
    w->set_current_revision_20_6_0(current->value());
    w->set_current_revision(current->value());
  } else {
    w->mutable_no_stream_20_6_0();
    w->mutable_current_no_stream();
  }
  if (auto* r = std::get_if<StreamRevision>(&expected)) {
    w->set_expected_revision_20_6_0(r->value());
    w->set_expected_revision(r->value());
  } else if (std::holds_alternative<ExpectNoStream>(expected)) {
    w->set_expected_revision_20_6_0(kNoStreamLegacy);
    w->mutable_expected_no_stream();
  } else if (std::holds_alternative<ExpectAny>(expected)) {
    w->mutable_any_20_6_0();
    w->mutable_expected_any();
  } else {
    w->mutable_stream_exists_20_6_0();
    w->mutable_expected_stream_exists();
  }
}

int64_t now_ticks() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
             .count() /
         100;
}

// ---- TLS material ------------------------------------------------------------------------------

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> memory_bio(const std::string& text) {
  if (text.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return nullptr;
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The first certificate of a PEM chain; nullptr when there is none.
std::unique_ptr<X509, X509Free> parse_certificate(const std::string& pem) {
  auto bio = memory_bio(pem);
  std::unique_ptr<X509, X509Free> cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return cert;
}

// An unencrypted PEM private key; nullptr otherwise (the callback refuses to ask for a passphrase).
std::unique_ptr<EVP_PKEY, PkeyFree> parse_private_key(const std::string& pem) {
  auto bio = memory_bio(pem);
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return 0; };
  std::unique_ptr<EVP_PKEY, PkeyFree> key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr)
                                              : nullptr);
  ERR_clear_error();
  return key;
}

absl::Status check_tls(const std::string& cert_pem, const std::string& key_pem) {
  if (cert_pem.empty() && key_pem.empty()) return absl::OkStatus();
  if (cert_pem.empty() || key_pem.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate chain and its private key");
  }
  auto cert = parse_certificate(cert_pem);
  if (!cert) return absl::InvalidArgumentError("TLS certificate: no PEM certificate found");
  auto key = parse_private_key(key_pem);
  if (!key) return absl::InvalidArgumentError("TLS private key: no unencrypted PEM private key found");
  bool match = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  if (!match) return absl::InvalidArgumentError("TLS private key does not match the certificate");
  return absl::OkStatus();
}

absl::StatusOr<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "': ", std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read '", path, "'"));
  return text.str();
}

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
  Endpoint self;                                 // gossip's end point for this node; guarded by mu
};

// ---- authentication and the leader check --------------------------------------------------------
// Run at the start of each call, on gRPC's thread: a header parse and a map lookup, no blocking.

enum class Caller { kAnonymous, kUser };

bool same_secret(absl::string_view a, absl::string_view b) {
  // Length leaks; content compared without an early exit.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::optional<absl::string_view> header(const grpc::CallbackServerContext& ctx, absl::string_view key) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

// `authorization: Basic base64(name:password)`; an error status is UNAUTHENTICATED.
absl::StatusOr<Caller> authenticate(const Shared& shared, const grpc::CallbackServerContext& ctx) {
  auto value = header(ctx, "authorization");
  if (!value) return Caller::kAnonymous;
  absl::string_view v = absl::StripAsciiWhitespace(*value);
  constexpr absl::string_view kScheme = "basic ";
  if (v.size() <= kScheme.size() || !absl::EqualsIgnoreCase(v.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("Invalid authorization header: want 'Basic base64(name:password)'");
  }
  std::string decoded;
  if (!absl::Base64Unescape(absl::StripAsciiWhitespace(v.substr(kScheme.size())), &decoded)) {
    return absl::UnauthenticatedError("Invalid authorization header: the Basic credentials are not base64");
  }
  auto colon = decoded.find(':');
  if (colon == std::string::npos) {
    return absl::UnauthenticatedError("Invalid authorization header: the Basic credentials lack 'name:password'");
  }
  auto user = shared.users.find(decoded.substr(0, colon));
  if (user == shared.users.end() || !same_secret(user->second, absl::string_view(decoded).substr(colon + 1))) {
    return absl::UnauthenticatedError("Invalid credentials: unknown user or wrong password");
  }
  return Caller::kUser;
}

enum class Access { kOpen, kStreams };

// nullopt: go on. Otherwise the call's answer (trailers already added): UNAUTHENTICATED for bad
// credentials on any rpc; PERMISSION_DENIED "Access Denied" (`exception: access-denied`, as
// KurrentDB) for anonymous callers of the stream rpcs. No users configured: everything is open.
std::optional<grpc::Status> refuse_access(const Shared& shared, grpc::CallbackServerContext* ctx, Access access) {
  if (shared.users.empty()) return std::nullopt;
  auto caller = authenticate(shared, *ctx);
  if (!caller.ok()) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(caller.status().message()));
  if (access == Access::kStreams && *caller == Caller::kAnonymous) {
    ctx->AddTrailingMetadata("exception", "access-denied");
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "Access Denied");
  }
  return std::nullopt;
}

// `requires-leader: true` (any case, as .NET's bool.TryParse reads it).
bool requires_leader(const grpc::CallbackServerContext& ctx) {
  auto value = header(ctx, "requires-leader");
  return value && absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(*value), "true");
}

// KurrentDB's answer from a node that is not the leader: the client reconnects to the named leader.
grpc::Status not_leader(const Shared& shared, grpc::CallbackServerContext* ctx) {
  ctx->AddTrailingMetadata("exception", "not-leader");
  ctx->AddTrailingMetadata("leader-endpoint-host", shared.leader->host);
  ctx->AddTrailingMetadata("leader-endpoint-port", std::to_string(shared.leader->port));
  return {grpc::StatusCode::NOT_FOUND, "Leader info available"};
}

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

// ---- Streams.Append --------------------------------------------------------------------------

class AppendReactor final : public grpc::ServerReadReactor<streams::AppendReq> {
 public:
  AppendReactor(Shared& shared, grpc::CallbackServerContext* ctx, streams::AppendResp* resp)
      : shared_(shared), ctx_(ctx), resp_(resp) {
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      submit();
      return;
    }
    if (!have_options_) {
      if (!req_.has_options())
        return Finish({grpc::StatusCode::INVALID_ARGUMENT, "append: first message must be options"});
      auto expected = expected_of(req_.options());
      if (!expected.ok()) return Finish(to_grpc(expected.status()));
      stream_ = req_.options().stream_identifier().stream_name();
      if (stream_.empty()) return Finish({grpc::StatusCode::INVALID_ARGUMENT, "append: empty stream name"});
      expected_ = *expected;
      have_options_ = true;
    } else {
      if (!req_.has_proposed_message()) {
        return Finish({grpc::StatusCode::INVALID_ARGUMENT, "append: options sent twice"});
      }
      auto ev = to_event(req_.proposed_message());
      if (!ev.ok()) return Finish(to_grpc(ev.status()));
      size_t size = event_size(*ev);
      total_size_ += size;
      if (size > shared_.options.max_event_size || total_size_ > shared_.options.max_append_size) {
        ctx_->AddTrailingMetadata("exception", "maximum-append-size-exceeded");
        ctx_->AddTrailingMetadata("maximum-append-size", std::to_string(shared_.options.max_append_size));
        return Finish({grpc::StatusCode::INVALID_ARGUMENT, "Maximum Append Size Exceeded"});
      }
      events_.push_back(std::move(*ev));
    }
    StartRead(&req_);
  }

  void OnDone() override { delete this; }

 private:
  void submit() {
    if (!have_options_) return Finish({grpc::StatusCode::INVALID_ARGUMENT, "append: no options"});
    // The answer arrives on the store's writer thread; Finish is non-blocking.
    shared_.store.append(stream_, expected_, std::move(events_), [this](const store::AppendResult& r) { answer(r); });
  }

  void answer(const store::AppendResult& r) {
    switch (r.status) {
      case store::AppendStatus::kSuccess: {
        auto* s = resp_->mutable_success();
        if (r.current_revision) {
          s->set_current_revision(r.current_revision->value());
          s->mutable_position()->set_commit_position(r.position);
          s->mutable_position()->set_prepare_position(r.position);
        } else {
          s->mutable_no_stream();
          s->mutable_no_position();
        }
        return Finish(grpc::Status::OK);
      }
      case store::AppendStatus::kWrongExpectedVersion:
        fill_wrong_version(expected_, r.current_revision, resp_->mutable_wrong_expected_version());
        return Finish(grpc::Status::OK);
      case store::AppendStatus::kStreamDeleted:
        ctx_->AddTrailingMetadata("exception", "stream-deleted");
        ctx_->AddTrailingMetadata("stream-name", stream_);
        return Finish(
            {grpc::StatusCode::FAILED_PRECONDITION, absl::StrCat("Event stream '", stream_, "' is deleted.")});
      case store::AppendStatus::kError:
        return Finish({grpc::StatusCode::UNAVAILABLE, r.message});
    }
  }

  Shared& shared_;
  grpc::CallbackServerContext* ctx_;
  streams::AppendResp* resp_;
  streams::AppendReq req_;
  bool have_options_ = false;
  std::string stream_;
  ExpectedRevision expected_;
  std::vector<store::ProposedEvent> events_;
  size_t total_size_ = 0;
};

// ---- Streams.BatchAppend -----------------------------------------------------------------------

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
    bool failed = false;  // an error was answered; later chunks are dropped
  };

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
      p.events.push_back(std::move(*ev));
    }
    if (!req.is_final()) return;
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
    if (detail) err->add_details()->PackFrom(*detail);
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
        auto* s = resp.mutable_success();
        if (r.current_revision) {
          s->set_current_revision(r.current_revision->value());
          s->mutable_position()->set_commit_position(r.position);
          s->mutable_position()->set_prepare_position(r.position);
        } else {
          s->mutable_no_stream();
          s->mutable_no_position();
        }
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
        err->set_message(r.message);
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

// ---- Streams.Read ------------------------------------------------------------------------------

class ReadReactor final : public grpc::ServerWriteReactor<streams::ReadResp> {
 public:
  ReadReactor(Shared& shared, grpc::CallbackServerContext* ctx, const streams::ReadReq& req)
      : shared_(shared), ctx_(ctx) {
    const auto& o = req.options();
    if (o.count_option_case() != streams::ReadReq::Options::kCount) {
      fail({grpc::StatusCode::UNIMPLEMENTED, "read: subscriptions are not served"});
      return;
    }
    remaining_ = o.count();
    uuid_as_string_ = o.uuid_option().has_string();
    if (o.has_all()) {
      start_all(o);
      return;
    }
    if (!o.has_stream()) {
      fail({grpc::StatusCode::INVALID_ARGUMENT, "read: options name neither a stream nor $all"});
      return;
    }
    stream_ = o.stream().stream_identifier().stream_name();
    if (stream_.empty()) {
      fail({grpc::StatusCode::INVALID_ARGUMENT, "read: empty stream name"});
      return;
    }
    direction_ = o.read_direction() == streams::ReadReq::Options::Backwards ? store::ReadDirection::kBackwards
                                                                            : store::ReadDirection::kForwards;
    report_last_ = o.control_option().compatibility() >= 1;
    using S = streams::ReadReq::Options::StreamOptions;
    switch (o.stream().revision_option_case()) {
      case S::kRevision:
        from_ = store::ReadFrom::at(StreamRevision{o.stream().revision()});
        break;
      case S::kEnd:
        from_ = store::ReadFrom::end();
        break;
      default:
        from_ = store::ReadFrom::start();
        break;
    }
    next_page();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::CANCELLED);
    next_message();
  }

  void OnDone() override { delete this; }

 private:
  void fail(const grpc::Status& s) { Finish(s); }

  // $all: forwards, from the start or from a position (inclusive, as KurrentDB), no filter.
  void start_all(const streams::ReadReq::Options& o) {
    if (o.read_direction() == streams::ReadReq::Options::Backwards) {
      return fail({grpc::StatusCode::UNIMPLEMENTED, "read: $all backwards is not served"});
    }
    if (o.filter_option_case() == streams::ReadReq::Options::kFilter) {
      return fail({grpc::StatusCode::UNIMPLEMENTED, "read: filtered $all reads are not served"});
    }
    all_ = true;
    using A = streams::ReadReq::Options::AllOptions;
    switch (o.all().all_option_case()) {
      case A::kPosition: {
        // The store reads after a position; every event has a position > 0.
        uint64_t p = o.all().position().commit_position();
        after_position_ = p == 0 ? 0 : p - 1;
        break;
      }
      case A::kEnd:
        exhausted_ = true;  // nothing lies after the end of the log
        break;
      default:
        after_position_ = 0;
        break;
    }
    next_all_page();
  }

  void next_all_page() {
    if (remaining_ == 0 || exhausted_) return Finish(grpc::Status::OK);
    uint64_t n = std::min<uint64_t>(remaining_, shared_.options.read_page_size);
    auto page = shared_.store.read_all(after_position_, n);
    if (!page.ok()) return Finish(to_grpc(page.status()));
    page_ = std::move(*page);
    index_ = 0;
    if (page_.size() < n) exhausted_ = true;
    if (!page_.empty()) after_position_ = page_.back().position;
    remaining_ -= page_.size();
    next_message();
  }

  // Reads the next page from the store (a local SQLite read on pooled connections: short) and
  // streams it out one message per write.
  void next_page() {
    if (remaining_ == 0 || exhausted_) return finish_read();
    uint64_t n = std::min<uint64_t>(remaining_, shared_.options.read_page_size);
    auto page = shared_.store.read(stream_, from_, n, direction_);
    if (!page.ok()) return Finish(to_grpc(page.status()));
    if (page->stream_deleted) {
      ctx_->AddTrailingMetadata("exception", "stream-deleted");
      ctx_->AddTrailingMetadata("stream-name", stream_);
      return Finish({grpc::StatusCode::FAILED_PRECONDITION, absl::StrCat("Event stream '", stream_, "' is deleted.")});
    }
    if (!page->stream_found) {
      if (first_page_) {
        msg_.Clear();
        msg_.mutable_stream_not_found()->mutable_stream_identifier()->set_stream_name(stream_);
        not_found_ = true;
        StartWrite(&msg_);
        return;
      }
      return finish_read();
    }
    first_page_ = false;
    page_ = std::move(page->events);
    index_ = 0;
    if (page_.size() < n) exhausted_ = true;
    if (!page_.empty()) {
      const auto last = page_.back().revision.value();
      if (direction_ == store::ReadDirection::kForwards) {
        from_ = store::ReadFrom::at(StreamRevision{last + 1});
      } else if (last == 0) {
        exhausted_ = true;
      } else {
        from_ = store::ReadFrom::at(StreamRevision{last - 1});
      }
    }
    remaining_ -= page_.size();
    next_message();
  }

  void next_message() {
    if (not_found_ || finished_) {
      finished_ = true;
      return Finish(grpc::Status::OK);
    }
    if (index_ < page_.size()) {
      write_event(page_[index_++]);
      return;
    }
    if (all_) return next_all_page();
    next_page();
  }

  void finish_read() {
    if (report_last_ && !last_sent_) {
      last_sent_ = true;
      auto last = shared_.store.read(stream_, store::ReadFrom::end(), 1, store::ReadDirection::kBackwards);
      if (last.ok() && last->stream_found && !last->events.empty()) {
        msg_.Clear();
        msg_.set_last_stream_position(last->events.front().revision.value());
        finished_ = true;
        StartWrite(&msg_);
        return;
      }
    }
    Finish(grpc::Status::OK);
  }

  void write_event(const store::RecordedEvent& e) {
    msg_.Clear();
    auto* read_event = msg_.mutable_event();
    auto* r = read_event->mutable_event();
    to_proto(e.id, r->mutable_id(), uuid_as_string_);
    r->mutable_stream_identifier()->set_stream_name(e.stream);
    r->set_stream_revision(e.revision.value());
    r->set_prepare_position(e.position);
    r->set_commit_position(e.position);
    auto& md = *r->mutable_metadata();
    md["type"] = e.type;
    md["content-type"] = e.content_type;
    md["created"] = std::to_string(e.created_ticks);
    r->set_custom_metadata(e.metadata);
    r->set_data(e.data);
    read_event->set_commit_position(e.position);
    StartWrite(&msg_);
  }

  Shared& shared_;
  grpc::CallbackServerContext* ctx_;
  std::string stream_;
  store::ReadDirection direction_ = store::ReadDirection::kForwards;
  store::ReadFrom from_;
  uint64_t remaining_ = 0;
  bool uuid_as_string_ = false;
  bool report_last_ = false;
  bool first_page_ = true;
  bool exhausted_ = false;
  bool not_found_ = false;
  bool last_sent_ = false;
  bool finished_ = false;
  bool all_ = false;             // reading $all
  uint64_t after_position_ = 0;  // $all: the next page starts after this position
  std::vector<store::RecordedEvent> page_;
  size_t index_ = 0;
  streams::ReadResp msg_;
};

// ---- v2 StreamsService.AppendSession -------------------------------------------------------------

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

absl::StatusOr<ExpectedRevision> v2_expected(const v2::AppendRequest& r) {
  return wire::expected_of_v2(r.has_expected_revision() ? std::optional<int64_t>(r.expected_revision()) : std::nullopt);
}

using wire::v2_expected_value;

const char* schema_format_name(v2::SchemaFormat f) {
  switch (f) {
    case v2::SCHEMA_FORMAT_JSON:
      return "Json";
    case v2::SCHEMA_FORMAT_PROTOBUF:
      return "Protobuf";
    case v2::SCHEMA_FORMAT_AVRO:
      return "Avro";
    case v2::SCHEMA_FORMAT_BYTES:
      return "Bytes";
    default:
      return "Unspecified";
  }
}

// A record as a v1 event: the properties become the JSON metadata (what v1 readers see), with
// KurrentDB's "$schema.format" and "$schema.name" added.
absl::StatusOr<store::ProposedEvent> v2_event(const v2::AppendRecord& rec) {
  auto id = Uuid::parse(rec.record_id());
  if (!id) return absl::InvalidArgumentError(absl::StrCat("record_id '", rec.record_id(), "' is not a UUID"));
  if (rec.schema().name().empty()) return absl::InvalidArgumentError("record without schema.name (event type)");
  google::protobuf::Struct props;
  for (const auto& [k, v] : rec.properties()) (*props.mutable_fields())[k] = v;
  (*props.mutable_fields())["$schema.format"].set_string_value(schema_format_name(rec.schema().format()));
  (*props.mutable_fields())["$schema.name"].set_string_value(rec.schema().name());
  std::string metadata;
  if (!google::protobuf::util::MessageToJsonString(props, &metadata).ok()) {
    return absl::InvalidArgumentError("record properties cannot be written as JSON");
  }
  return store::ProposedEvent{
      .id = *id,
      .type = rec.schema().name(),
      .content_type = rec.schema().format() == v2::SCHEMA_FORMAT_JSON ? "application/json" : "application/octet-stream",
      .data = rec.data(),
      .metadata = std::move(metadata)};
}

// FAILED_PRECONDITION with grpc-status-details-bin = google.rpc.Status{ErrorInfo, details}.
grpc::Status v2_conflict(const std::string& stream, const ExpectedRevision& expected,
                         std::optional<StreamRevision> actual) {
  google::rpc::Status st;
  st.set_code(google::rpc::FAILED_PRECONDITION);
  st.set_message(absl::StrCat("stream '", stream, "': expected revision ", v2_expected_value(expected), ", actual ",
                              actual ? static_cast<int64_t>(actual->value()) : int64_t{-1}));
  google::rpc::ErrorInfo info;
  info.set_reason("STREAM_REVISION_CONFLICT");
  info.set_domain("streams");
  st.add_details()->PackFrom(info);
  v2::errors::StreamRevisionConflictErrorDetails d;
  d.set_stream(stream);
  d.set_expected_revision(v2_expected_value(expected));
  d.set_actual_revision(actual ? static_cast<int64_t>(actual->value()) : int64_t{-1});
  st.add_details()->PackFrom(d);  // last: the Node client keeps the last detail
  return {grpc::StatusCode::FAILED_PRECONDITION, st.message(), st.SerializeAsString()};
}

grpc::Status v2_error(grpc::StatusCode code, const std::string& reason, const std::string& message) {
  google::rpc::Status st;
  st.set_code(static_cast<google::rpc::Code>(code));
  st.set_message(message);
  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain("streams");
  st.add_details()->PackFrom(info);
  return {code, message, st.SerializeAsString()};
}

class AppendSessionReactor final : public grpc::ServerReadReactor<v2::AppendRequest> {
 public:
  AppendSessionReactor(Shared& shared, SessionWorker& worker, v2::AppendSessionResponse* resp)
      : shared_(shared), worker_(worker), resp_(resp) {
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      worker_.post([this] { Finish(run()); });
      return;
    }
    if (req_.stream().empty()) return Finish({grpc::StatusCode::INVALID_ARGUMENT, "append session: empty stream name"});
    for (const auto& w : writes_) {
      if (w.stream == req_.stream()) {
        return Finish(v2_error(grpc::StatusCode::ABORTED, "STREAM_ALREADY_IN_APPEND_SESSION",
                               absl::StrCat("stream '", req_.stream(), "' appears twice in one append session")));
      }
    }
    auto expected = v2_expected(req_);
    if (!expected.ok()) return Finish(to_grpc(expected.status()));
    Write w{.stream = req_.stream(), .expected = *expected};
    for (const auto& rec : req_.records()) {
      auto ev = v2_event(rec);
      if (!ev.ok()) return Finish(to_grpc(ev.status()));
      size_t size = event_size(*ev);
      total_size_ += size;
      if (size > shared_.options.max_event_size || total_size_ > shared_.options.max_append_size) {
        return Finish(v2_error(grpc::StatusCode::ABORTED, "APPEND_TRANSACTION_SIZE_EXCEEDED",
                               absl::StrCat("append session over ", shared_.options.max_append_size, " bytes")));
      }
      w.events.push_back(std::move(*ev));
    }
    writes_.push_back(std::move(w));
    StartRead(&req_);
  }

  void OnDone() override { delete this; }

 private:
  struct Write {
    std::string stream;
    ExpectedRevision expected;
    std::vector<store::ProposedEvent> events;
  };

  // The store's verdict on `w` without writing: nullopt = would succeed; else the conflict (or an
  // error status). Mirrors the store's rules, idempotent re-appends included.
  std::optional<grpc::Status> check(const Write& w) {
    auto tail = shared_.store.read(w.stream, store::ReadFrom::end(), 1, store::ReadDirection::kBackwards);
    if (!tail.ok()) return to_grpc(tail.status());
    if (tail->stream_deleted) {
      return v2_error(grpc::StatusCode::FAILED_PRECONDITION, "STREAM_DELETED",
                      absl::StrCat("stream '", w.stream, "' is deleted"));
    }
    std::optional<StreamRevision> actual;
    if (tail->stream_found && !tail->events.empty()) actual = tail->events.front().revision;
    auto ids_match_from = [&](uint64_t first) {
      if (w.events.empty()) return false;
      auto have = shared_.store.read(w.stream, store::ReadFrom::at(StreamRevision{first}), w.events.size(),
                                     store::ReadDirection::kForwards);
      if (!have.ok() || have->events.size() != w.events.size()) return false;
      for (size_t i = 0; i < w.events.size(); ++i) {
        if (have->events[i].id != w.events[i].id) return false;
      }
      return true;
    };
    bool ok = std::visit(
        [&](const auto& e) {
          using E = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<E, ExpectAny>) {
            return true;
          } else if constexpr (std::is_same_v<E, ExpectStreamExists>) {
            return actual.has_value();
          } else if constexpr (std::is_same_v<E, ExpectNoStream>) {
            return !actual || ids_match_from(0);
          } else {
            if (!actual) return false;
            if (*actual == e) return true;
            return actual->value() > e.value() && ids_match_from(e.value() + 1);
          }
        },
        w.expected);
    if (ok) return std::nullopt;
    return v2_conflict(w.stream, w.expected, actual);
  }

  // On the session worker: check every stream, then append them all and wait for the answers.
  grpc::Status run() {
    if (writes_.empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "append session without requests"};
    for (const auto& w : writes_) {
      if (auto bad = check(w)) return *bad;
    }
    std::mutex mu;
    std::condition_variable cv;
    size_t answered = 0;
    std::vector<store::AppendResult> results(writes_.size());
    for (size_t i = 0; i < writes_.size(); ++i) {
      shared_.store.append(writes_[i].stream, writes_[i].expected, std::move(writes_[i].events),
                           [&, i](store::AppendResult r) {
                             std::lock_guard lock(mu);
                             results[i] = std::move(r);
                             if (++answered == results.size()) cv.notify_one();
                           });
    }
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return answered == results.size(); });
    }
    uint64_t max_position = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      switch (r.status) {
        case store::AppendStatus::kSuccess:
          break;
        // Only when a v1 writer raced this session on the same stream; earlier streams of the
        // session may then be written (see server/README.md).
        case store::AppendStatus::kWrongExpectedVersion:
          return v2_conflict(writes_[i].stream, writes_[i].expected, r.current_revision);
        case store::AppendStatus::kStreamDeleted:
          return v2_error(grpc::StatusCode::FAILED_PRECONDITION, "STREAM_DELETED",
                          absl::StrCat("stream '", writes_[i].stream, "' is deleted"));
        case store::AppendStatus::kError:
          return {grpc::StatusCode::UNAVAILABLE, r.message};
      }
      auto* out = resp_->add_output();
      out->set_stream(writes_[i].stream);
      out->set_stream_revision(r.current_revision ? static_cast<int64_t>(r.current_revision->value()) : -1);
      out->set_position(static_cast<int64_t>(r.position));
      max_position = std::max(max_position, r.position);
    }
    resp_->set_position(static_cast<int64_t>(max_position));
    return grpc::Status::OK;
  }

  Shared& shared_;
  SessionWorker& worker_;
  v2::AppendSessionResponse* resp_;
  v2::AppendRequest req_;
  std::vector<Write> writes_;
  size_t total_size_ = 0;
};

class V2StreamsService final : public v2::StreamsService::CallbackService {
 public:
  V2StreamsService(Shared& shared, SessionWorker& worker) : shared_(shared), worker_(worker) {}
  grpc::ServerReadReactor<v2::AppendRequest>* AppendSession(grpc::CallbackServerContext* ctx,
                                                            v2::AppendSessionResponse* resp) override {
    if (auto refused = refuse_access(shared_, ctx, Access::kStreams)) {
      return new RefusedRead<v2::AppendRequest>(*refused, /*after_reads=*/false);
    }
    if (shared_.leader) return new RefusedRead<v2::AppendRequest>(not_leader(shared_, ctx), /*after_reads=*/true);
    return new AppendSessionReactor(shared_, worker_, resp);
  }

 private:
  Shared& shared_;
  SessionWorker& worker_;
};

// ---- services ----------------------------------------------------------------------------------

class StreamsService final : public streams::Streams::CallbackService {
 public:
  explicit StreamsService(Shared& shared) : shared_(shared) {}

  grpc::ServerWriteReactor<streams::ReadResp>* Read(grpc::CallbackServerContext* ctx,
                                                    const streams::ReadReq* req) override {
    if (auto refused = refuse_access(shared_, ctx, Access::kStreams)) {
      return new RefusedWrite<streams::ReadResp>(*refused);
    }
    if (shared_.leader && requires_leader(*ctx)) return new RefusedWrite<streams::ReadResp>(not_leader(shared_, ctx));
    return new ReadReactor(shared_, ctx, *req);
  }
  grpc::ServerReadReactor<streams::AppendReq>* Append(grpc::CallbackServerContext* ctx,
                                                      streams::AppendResp* resp) override {
    if (auto refused = refuse_access(shared_, ctx, Access::kStreams)) {
      return new RefusedRead<streams::AppendReq>(*refused, /*after_reads=*/false);
    }
    if (shared_.leader) return new RefusedRead<streams::AppendReq>(not_leader(shared_, ctx), /*after_reads=*/true);
    return new AppendReactor(shared_, ctx, resp);
  }
  grpc::ServerBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp>* BatchAppend(
      grpc::CallbackServerContext* ctx) override {
    using Refused = RefusedBidi<streams::BatchAppendReq, streams::BatchAppendResp>;
    if (auto refused = refuse_access(shared_, ctx, Access::kStreams)) return new Refused(*refused, false);
    // One long-lived call carries many appends: KurrentDB fails the whole call at the first one.
    if (shared_.leader) return new Refused(not_leader(shared_, ctx), /*after_first_read=*/true);
    return new BatchAppendReactor(shared_);
  }

 private:
  Shared& shared_;
};

class FeaturesService final : public features::ServerFeatures::CallbackService {
 public:
  FeaturesService(const Shared& shared, const ServerOptions& o) : shared_(shared) {
    constexpr const char* kStreams = "event_store.client.streams.streams";
    add("read", kStreams, {"position", "events"});
    add("append", kStreams, {});
    if (!o.hide_batch_append) add("batchappend", kStreams, {"deadline_duration"});
    add("getsupportedmethods", "event_store.client.server_features.serverfeatures", {});
    add("appendsession", "kurrentdb.protocol.v2.streams.streamsservice", {});
    methods_.set_event_store_server_version(o.server_version);
  }

  grpc::ServerUnaryReactor* GetSupportedMethods(grpc::CallbackServerContext* ctx, const pb::Empty*,
                                                features::SupportedMethods* resp) override {
    auto* reactor = ctx->DefaultReactor();
    if (auto refused = refuse_access(shared_, ctx, Access::kOpen)) {
      reactor->Finish(*refused);
      return reactor;
    }
    *resp = methods_;
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  void add(const std::string& method, const std::string& service, std::vector<std::string> feats) {
    auto* m = methods_.add_methods();
    m->set_method_name(method);
    m->set_service_name(service);
    for (auto& f : feats) m->add_features(std::move(f));
  }
  const Shared& shared_;
  features::SupportedMethods methods_;
};

// Gossip.Read: a one-node cluster (this node, Leader), or in follower mode this node as Follower
// and the configured leader as Leader, so discovering clients pick the leader for writes.
class GossipService final : public gossip::Gossip::CallbackService {
 public:
  explicit GossipService(Shared& shared) : shared_(shared) {}

  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* ctx, const pb::Empty*,
                                 gossip::ClusterInfo* resp) override {
    auto* reactor = ctx->DefaultReactor();
    if (auto refused = refuse_access(shared_, ctx, Access::kOpen)) {
      reactor->Finish(*refused);
      return reactor;
    }
    Endpoint self;
    {
      std::lock_guard lock(shared_.mu);
      self = shared_.self;
    }
    const int64_t now = now_ticks();
    using State = gossip::MemberInfo;
    add(resp, shared_.instance_id, now, shared_.leader ? State::Follower : State::Leader, self);
    if (shared_.leader) add(resp, shared_.leader_instance_id, now, State::Leader, *shared_.leader);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  static void add(gossip::ClusterInfo* info, const Uuid& id, int64_t now, gossip::MemberInfo::VNodeState state,
                  const Endpoint& at) {
    auto* m = info->add_members();
    to_proto(id, m->mutable_instance_id());  // KurrentDB sends the structured form
    m->set_time_stamp(now);
    m->set_state(state);
    m->set_is_alive(true);
    m->mutable_http_end_point()->set_address(at.host);
    m->mutable_http_end_point()->set_port(static_cast<uint32_t>(at.port));
  }

  Shared& shared_;
};

class ServerImpl final : public KurrentServer {
 public:
  ServerImpl(store::EventStore& store, ServerOptions options)
      : shared_{.store = store, .options = std::move(options)},
        streams_(shared_),
        features_(shared_, shared_.options),
        gossip_(shared_),
        v2_streams_(shared_, worker_) {}

  ~ServerImpl() override { shutdown(); }

  absl::Status start() {
    const ServerOptions& o = shared_.options;
    const std::string& listen = o.listen;
    auto colon = listen.rfind(':');
    int port_number = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port_number) || port_number < 0 ||
        port_number > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("listen address '", listen, "': want HOST:PORT"));
    }
    host_ = listen.substr(0, colon);
    if (auto s = check_tls(o.tls_cert_pem, o.tls_key_pem); !s.ok()) return s;
    for (const auto& u : o.users) {
      if (u.name.empty()) return absl::InvalidArgumentError("user with an empty name");
      if (!shared_.users.emplace(u.name, u.password).second) {
        return absl::InvalidArgumentError(absl::StrCat("user '", u.name, "' given twice"));
      }
    }
    std::optional<Endpoint> advertise;
    if (!o.advertise.empty()) {
      auto e = parse_endpoint(o.advertise);
      if (!e.ok()) return absl::InvalidArgumentError(absl::StrCat("advertise: ", e.status().message()));
      advertise = *e;
    }
    if (!o.follower_of.empty()) {
      auto e = parse_endpoint(o.follower_of);
      if (!e.ok()) return absl::InvalidArgumentError(absl::StrCat("follower_of: ", e.status().message()));
      shared_.leader = *e;
    }

    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (!o.tls_cert_pem.empty()) {
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back({.private_key = o.tls_key_pem, .cert_chain = o.tls_cert_pem});
      credentials = grpc::SslServerCredentials(ssl);
    }
    grpc::ServerBuilder builder;
    builder.AddListeningPort(listen, credentials, &port_);
    builder.RegisterService(&streams_);
    builder.RegisterService(&features_);
    builder.RegisterService(&gossip_);
    builder.RegisterService(&v2_streams_);
    builder.SetMaxReceiveMessageSize(shared_.options.max_receive_message_bytes);
    // The official clients ping every 10 s; gRPC's defaults would answer GOAWAY too_many_pings.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      server_.reset();
      return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
    }
    {
      std::lock_guard lock(shared_.mu);
      if (advertise) {
        shared_.self = *advertise;
      } else {
        std::string host = host_;
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        shared_.self = {.host = host, .port = port_};
      }
    }
    return absl::OkStatus();
  }

  [[nodiscard]] int port() const override { return port_; }
  [[nodiscard]] std::string address() const override { return absl::StrCat(host_, ":", port_); }
  [[nodiscard]] std::string advertised_address() const override {
    if (!shared_.options.advertise.empty()) return shared_.options.advertise;
    return address();
  }

  void shutdown() override {
    {
      std::lock_guard lock(shared_.mu);
      if (shared_.shutting_down) return;
      shared_.shutting_down = true;
      if (!server_) return;
      // Open BatchAppend calls stop taking chunks and finish once their pending appends are
      // answered. Called under the registry lock: a reactor leaves the registry (OnDone) only
      // under it, so none is deleted meanwhile; drain() only schedules Finish (gRPC runs OnDone
      // later, on one of its threads).
      for (auto* r : shared_.batch_reactors) r->drain();
    }
    server_->Shutdown(std::chrono::system_clock::now() + shared_.options.shutdown_grace);
    server_->Wait();
    worker_.stop();
  }

 private:
  Shared shared_;
  StreamsService streams_;
  FeaturesService features_;
  GossipService gossip_;
  SessionWorker worker_;
  V2StreamsService v2_streams_;
  std::unique_ptr<grpc::Server> server_;
  std::string host_;
  int port_ = 0;
};

}  // namespace

absl::StatusOr<User> parse_user(std::string_view view) {
  const std::string text(view);
  // The messages leave the text out: it may hold a password.
  auto colon = text.find(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError("want NAME:PASSWORD (no ':' found)");
  if (colon == 0) return absl::InvalidArgumentError("want NAME:PASSWORD (the name is empty)");
  return User{.name = text.substr(0, colon), .password = text.substr(colon + 1)};
}

absl::StatusOr<Endpoint> parse_endpoint(std::string_view view) {
  const std::string text(view);
  auto bad = [&] { return absl::InvalidArgumentError(absl::StrCat("'", text, "': want HOST:PORT (port 1-65535)")); };
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return bad();
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  if (host.empty() || !absl::SimpleAtoi(text.substr(colon + 1), &port) || port < 1 || port > 65535) return bad();
  return Endpoint{.host = std::move(host), .port = port};
}

absl::Status check_tls_pair(const std::string& cert_pem, const std::string& key_pem) {
  return check_tls(cert_pem, key_pem);
}

absl::StatusOr<std::string> read_pem_certificate_chain(const std::string& path) {
  auto text = read_text_file(path);
  if (!text.ok()) return text.status();
  if (!parse_certificate(*text)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
  }
  return text;
}

absl::StatusOr<std::string> read_pem_private_key(const std::string& path) {
  auto text = read_text_file(path);
  if (!text.ok()) return text.status();
  if (!parse_private_key(*text)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' holds no unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)"));
  }
  return text;
}

absl::StatusOr<std::unique_ptr<KurrentServer>> KurrentServer::start(store::EventStore& store, ServerOptions options) {
  auto server = std::make_unique<ServerImpl>(store, std::move(options));
  if (auto s = server->start(); !s.ok()) return s;
  return server;
}

}  // namespace kingest::server
