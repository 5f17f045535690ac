#include "kurrent/kurrent_client.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kurrent/wire.h"
#include "proto/kurrentdb/gossip.grpc.pb.h"
#include "proto/kurrentdb/serverfeatures.grpc.pb.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/streams.grpc.pb.h"
#include "proto/kurrentdb/v2/errors.pb.h"
#include "proto/kurrentdb/v2/streams.grpc.pb.h"

namespace kingest::kurrent {

absl::StatusOr<AppendMode> parse_append_mode(std::string_view text) {
  if (text == "batch") return AppendMode::kBatch;
  if (text == "append") return AppendMode::kAppend;
  if (text == "session") return AppendMode::kSession;
  return absl::InvalidArgumentError("append mode '" + std::string(text) + "': use batch, append or session");
}

std::string_view to_string(AppendMode mode) {
  switch (mode) {
    case AppendMode::kBatch:
      return "batch";
    case AppendMode::kAppend:
      return "append";
    case AppendMode::kSession:
      return "session";
  }
  return "batch";
}

namespace {

namespace pb = event_store::client;
namespace streams = event_store::client::streams;
namespace features = event_store::client::server_features;
namespace gossip = event_store::client::gossip;
namespace v2 = kurrentdb::protocol::v2::streams;
namespace v2err = kurrentdb::protocol::v2::streams::errors;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kChunkBytes = size_t{1} << 20;         // proposed messages per BatchAppend message
constexpr int kMaxReceiveBytes = 17 * 1024 * 1024;      // what the official clients accept
constexpr const char* kProbeStream = "kurrent-ingest-connection-check";

// ---- timer thread ------------------------------------------------------------------------------

class Timer {
 public:
  Timer() : thread_([this] { run(); }) {}
  ~Timer() { stop(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void at(Clock::time_point when, std::function<void()> f) {
    bool earliest = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      auto it = queue_.emplace(when, std::move(f));
      earliest = it == queue_.begin();
    }
    // Every append schedules its deadline: the thread is woken only when its next wake-up moves.
    if (earliest) cv_.notify_one();
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      queue_.clear();
    }
    cv_.notify_one();
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // the last owner let go inside a timer callback
    } else {
      thread_.join();
    }
  }

 private:
  void run() {
    pthread_setname_np(pthread_self(), "ki-kurrent-timer");
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (queue_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto first = queue_.begin();
      if (first->first > Clock::now()) {
        cv_.wait_until(lock, first->first);
        continue;
      }
      auto f = std::move(first->second);
      queue_.erase(first);
      lock.unlock();
      f();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<Clock::time_point, std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

// ---- one append from the pipeline ----------------------------------------------------------------

struct Op {
  AppendRequest req;
  Sink::AppendDone done;
  std::vector<size_t> part_ends;  // events [part_ends[k-1], part_ends[k]) form part k
  size_t part = 0;
  ExpectedRevision expected;      // of the current part
  size_t bytes = 0;               // of the whole request
  int attempts = 0;               // consecutive failed attempts
  Clock::time_point failing_since{};
  Clock::time_point queued_at{};  // session mode: when it joined the queue
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
};

std::string read_file(const std::string& path, absl::Status* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = absl::InvalidArgumentError("tlsCaFile: cannot read " + path);
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials(const ConnectionSettings& s) {
  if (!s.tls) return grpc::InsecureChannelCredentials();
  absl::Status error;
  std::string roots = s.tls_ca_file.empty() ? std::string() : read_file(s.tls_ca_file, &error);
  if (!error.ok()) return error;
  if (!s.tls_ca_file.empty() && !absl::StrContains(roots, "-----BEGIN CERTIFICATE-----")) {
    return absl::InvalidArgumentError("tlsCaFile: " + s.tls_ca_file + " holds no PEM certificate");
  }
  if (s.tls_verify_cert) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = roots;
    return grpc::SslCredentials(o);
  }
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_verify_server_certs(false);
  o.set_check_call_host(false);
  o.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  if (!roots.empty()) {
    o.set_certificate_provider(std::make_shared<grpc::experimental::StaticDataCertificateProvider>(roots));
    o.watch_root_certs();
  }
  auto creds = grpc::experimental::TlsCredentials(o);
  if (!creds) return absl::InvalidArgumentError("tlsVerifyCert=false: could not set up TLS without verification");
  return creds;
}

std::string authorization(const ConnectionSettings& s) {
  if (!s.username) return {};
  return "Basic " + absl::Base64Escape(*s.username + ":" + s.password.value_or(""));
}

// Why a connection attempt failed, said so that the user knows what to check.
std::string explain_connect_error(const ConnectionSettings& s, const std::string& endpoint, const grpc::Status& st) {
  std::string msg = st.error_message();
  std::string lower = absl::AsciiStrToLower(msg);
  std::string where = "KurrentDB at " + endpoint + " (" + s.redacted() + ")";
  if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    return "authentication failed at " + endpoint + " (" + msg +
           "): check the user name and password in the connection string";
  }
  if (st.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    return "access denied at " + endpoint + " (" + msg +
           "): the server wants credentials; put user:password@ in the connection string";
  }
  if (absl::StrContains(lower, "handshake") || absl::StrContains(lower, "ssl") ||
      absl::StrContains(lower, "certificate") || absl::StrContains(lower, "tls")) {
    return "TLS handshake with " + where + " failed (" + msg +
           "): check tls=, tlsCaFile= and tlsVerifyCert= in the connection string (a server without TLS needs "
           "tls=false)";
  }
  std::string hint = s.tls ? " (tls=true is the default: a server without TLS needs ?tls=false)"
                           : " (tls=false: a server with TLS needs tls=true)";
  if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return "no answer from " + where + " within the deadline: is the server up, and is the connection string right?" +
           hint;
  }
  return "cannot connect to " + where + ": " + msg + ". Is the server up, and is the connection string right?" + hint;
}

// ---- the client ------------------------------------------------------------------------------

class Core;

// One long-lived BatchAppend call: every append is a correlation id on it.
class BatchCall final : public grpc::ClientBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp>,
                        public std::enable_shared_from_this<BatchCall> {
 public:
  BatchCall(std::shared_ptr<Core> core, std::shared_ptr<Node> node) : core_(std::move(core)), node_(std::move(node)) {}

  void start(const std::string& auth);
  // Queues the op's current part under a new correlation id; false when the call has ended.
  bool send(const OpPtr& op, milliseconds deadline);
  // Sends again what got no answer in time; runs every quarter deadline while the call lives (so a
  // correlation id's deadline is enforced up to a quarter late), instead of a timer per append.
  void sweep();
  // Half-closes once nothing is pending; the call then ends.
  void close();
  [[nodiscard]] bool ended() const {
    std::lock_guard lock(mu_);
    return ended_ || broken_;
  }
  [[nodiscard]] const std::shared_ptr<Node>& node() const { return node_; }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void write_next_locked();
  void release_hold();
  void schedule_sweep();
  struct Pending {
    OpPtr op;
    Clock::time_point due;
  };

  std::shared_ptr<Core> core_;
  std::shared_ptr<Node> node_;
  std::shared_ptr<BatchCall> self_;  // alive until OnDone
  grpc::ClientContext ctx_;
  streams::BatchAppendResp resp_;
  mutable std::mutex mu_;
  std::deque<std::unique_ptr<streams::BatchAppendReq>> writes_;
  bool writing_ = false;
  bool ended_ = false;
  bool closing_ = false;
  bool half_closed_ = false;
  bool broken_ = false;  // a read or write failed: the call is ending
  bool held_ = true;
  std::map<std::pair<int64_t, int64_t>, Pending> pending_;
};

class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(ConnectionSettings settings, ClientOptions options) : settings_(std::move(settings)), options_(options) {
    auth_ = authorization(settings_);
    effective_mode_ = options_.mode;
  }

  ConnectionSettings settings_;
  ClientOptions options_;
  std::string auth_;
  std::atomic<AppendMode> effective_mode_;
  std::string server_version_;
  Timer timer_;

  // ---- connection ----
  absl::StatusOr<std::shared_ptr<Node>> make_node(const std::string& endpoint) {
    auto creds = channel_credentials(settings_);
    if (!creds.ok()) return creds.status();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
    args.SetMaxSendMessageSize(-1);
    if (settings_.keep_alive_interval.count() > 0) {
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, int(settings_.keep_alive_interval.count()));
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, int(std::max<int64_t>(settings_.keep_alive_timeout.count(), 1)));
      args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    }
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, int(options_.backoff_initial.count()));
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, int(options_.backoff_max.count()));
    args.SetString(GRPC_ARG_PRIMARY_USER_AGENT_STRING,
                   "kurrent-ingest" + (settings_.connection_name.empty() ? "" : "/" + settings_.connection_name));
    // A distinct channel per node and per Core (no subchannel sharing with other clients).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto node = std::make_shared<Node>();
    node->endpoint = endpoint;
    node->channel = grpc::CreateCustomChannel(endpoint, *creds, args);
    node->streams = streams::Streams::NewStub(node->channel);
    node->v2 = v2::StreamsService::NewStub(node->channel);
    return node;
  }

  void prepare(grpc::ClientContext& ctx, milliseconds deadline, bool requires_leader = false) const {
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    if (!auth_.empty()) ctx.AddMetadata("authorization", auth_);
    if (!settings_.connection_name.empty()) ctx.AddMetadata("connection-name", settings_.connection_name);
    if (requires_leader) ctx.AddMetadata("requires-leader", "true");
  }

  [[nodiscard]] milliseconds deadline() const { return settings_.default_deadline; }

  std::shared_ptr<Node> node() {
    std::lock_guard lock(mu_);
    return node_;
  }

  void set_node(std::shared_ptr<Node> n) {
    std::lock_guard lock(mu_);
    node_ = std::move(n);
  }

  // Moves to the leader named by a not-leader answer (once per node change).
  void redirect(const std::shared_ptr<Node>& from, const std::string& host, uint16_t port) {
    std::string endpoint = host + ":" + std::to_string(port);
    {
      std::lock_guard lock(mu_);
      if (node_ != from || node_->endpoint == endpoint) return;
    }
    auto n = make_node(endpoint);
    if (!n.ok()) return;
    spdlog::info("kurrentdb: {} is not the leader; moving to the leader at {}", from->endpoint, endpoint);
    std::shared_ptr<BatchCall> old;
    {
      std::lock_guard lock(mu_);
      if (node_ != from) return;
      node_ = *n;
      redirects_++;
      old = batch_;
    }
    if (old && old->node() == from) old->close();
  }

  // ---- appends ----
  void submit(AppendRequest req, Sink::AppendDone done) {
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
      op->done(AppendOutcome{.code = AppendCode::kRejected, .current_revision = {}, .position = 0,
                             .message = "an append needs at least one event"});
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (!admit_locked(*op)) {
        waiting_.push_back(std::move(op));
        return;
      }
    }
    dispatch(op);
  }

  bool admit_locked(const Op& op) {
    bool room = in_flight_ == 0 ||
                (in_flight_ < options_.max_in_flight_appends && in_flight_bytes_ + op.bytes <= options_.max_in_flight_bytes);
    if (!room) return false;
    in_flight_++;
    in_flight_bytes_ += op.bytes;
    return true;
  }

  void dispatch(const OpPtr& op) {
    if (op->finished) return;
    appends_++;
    switch (effective_mode_) {
      case AppendMode::kBatch:
        return send_batch(op);
      case AppendMode::kAppend:
        return send_append(op);
      case AppendMode::kSession:
        return enqueue_session(op);
    }
  }

  // A part's answer: the next part goes out, or the op is answered.
  void part_done(const OpPtr& op, AppendOutcome out) {
    if (out.code == AppendCode::kTooLarge && op->end() - op->begin() > 1) {
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

  void finish(const OpPtr& op, AppendOutcome out) {
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

  void retry(const OpPtr& op, const std::string& reason, bool immediate = false) {
    if (op->finished) return;
    auto now = Clock::now();
    if (op->attempts == 0) op->failing_since = now;
    op->attempts++;
    retries_++;
    if (now - op->failing_since > options_.retry_for || closed_) {
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - op->failing_since).count();
      finish(op, AppendOutcome{.code = AppendCode::kFatal, .current_revision = {}, .position = 0,
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
    }
    std::weak_ptr<Core> weak = weak_from_this();
    timer_.at(now + delay, [weak, op] {
      if (auto self = weak.lock()) self->dispatch(op);
    });
  }

  // Acts on a verdict for one op (kDone answers the part, kRetry/kRedirect send it again).
  void act(const OpPtr& op, const wire::Verdict& v, const std::shared_ptr<Node>& from) {
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

  // ---- batch mode ----
  void send_batch(const OpPtr& op) {
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

  void batch_call_done(BatchCall* call, const grpc::Status& status, const wire::Trailers& trailers,
                       std::vector<OpPtr> pending) {
    {
      std::lock_guard lock(mu_);
      if (batch_.get() == call) batch_.reset();
    }
    idle_cv_.notify_all();
    if (pending.empty()) return;
    wire::Verdict v = wire::classify(status, trailers);
    if (status.ok()) v = {.kind = wire::Verdict::kRetry, .outcome = {}, .reason = "the server ended the BatchAppend call"};
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

  void batch_response(const OpPtr& op, const streams::BatchAppendResp& resp, const std::shared_ptr<Node>& from) {
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

  // ---- append mode ----
  void send_append(const OpPtr& op);
  void append_done(const OpPtr& op, const grpc::Status& status, const wire::Trailers& trailers,
                   const streams::AppendResp& resp, const std::shared_ptr<Node>& from) {
    if (status.ok()) return part_done(op, wire::outcome_of(resp));
    act(op, wire::classify(status, trailers), from);
  }

  // ---- session mode ----
  void enqueue_session(const OpPtr& op) {
    {
      std::lock_guard lock(mu_);
      op->queued_at = Clock::now();
      session_queue_.push_back(op);
    }
    pump_sessions();
  }

  void pump_sessions() {
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
        size_t bytes = 0;
        while (!session_queue_.empty() && ops.size() < options_.max_session_streams) {
          size_t b = session_queue_.front()->part_bytes();
          if (!ops.empty() && bytes + b > options_.max_append_size) break;
          bytes += b;
          ops.push_back(std::move(session_queue_.front()));
          session_queue_.pop_front();
        }
        sessions_in_flight_++;
      }
      start_session(std::move(ops));
    }
  }

  void start_session(std::vector<OpPtr> ops);

  void session_done(std::vector<OpPtr> ops, const grpc::Status& status, const wire::Trailers& trailers,
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
          out = {.code = AppendCode::kRejected, .current_revision = {}, .position = 0,
                 .message = "the session's answer does not mention the stream"};
        } else {
          if (it->second->stream_revision() >= 0) out.current_revision = StreamRevision{uint64_t(it->second->stream_revision())};
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
          AppendOutcome out{.code = AppendCode::kWrongExpectedVersion, .current_revision = {}, .position = 0,
                            .message = "wrong expected version"};
          if (conflict->actual_revision() >= 0) out.current_revision = StreamRevision{uint64_t(conflict->actual_revision())};
          part_done(op, std::move(out));
        } else {
          others.push_back(op);
        }
      }
      if (others.size() == ops.size()) {
        for (auto& op : ops) {
          part_done(op, {.code = AppendCode::kRejected, .current_revision = {}, .position = 0,
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

  void requeue_front(std::vector<OpPtr> ops) {
    {
      std::lock_guard lock(mu_);
      for (auto it = ops.rbegin(); it != ops.rend(); ++it) session_queue_.push_front(*it);
    }
    pump_sessions();
  }

  // ---- reads ----
  struct ReadResult {
    std::vector<RecordedEventData> events;
    bool deleted = false;
    bool not_found = false;
  };

  absl::StatusOr<ReadResult> read(const std::string& stream, bool backwards, std::optional<uint64_t> from,
                                  uint64_t count) {
    return read(stream, read_request(stream, backwards, from, count));
  }

  // $all forwards from a commit position (inclusive).
  absl::StatusOr<ReadResult> read_all(uint64_t from_position, uint64_t count) {
    streams::ReadReq req = read_request("$all", false, std::nullopt, count);
    auto* all = req.mutable_options()->mutable_all();
    if (from_position == 0) {
      all->mutable_start();
    } else {
      all->mutable_position()->set_commit_position(from_position);
      all->mutable_position()->set_prepare_position(from_position);
    }
    return read("$all", req);
  }

  absl::StatusOr<ReadResult> read(const std::string& stream, const streams::ReadReq& req) {
    Clock::time_point failing_since = Clock::now();
    for (int attempt = 1;; ++attempt) {
      auto n = node();
      grpc::ClientContext ctx;
      prepare(ctx, deadline(), /*requires_leader=*/true);
      ReadResult result;
      auto reader = n->streams->Read(&ctx, req);
      streams::ReadResp resp;
      while (reader->Read(&resp)) {
        if (resp.content_case() == streams::ReadResp::kStreamNotFound) result.not_found = true;
        if (resp.content_case() != streams::ReadResp::kEvent) continue;
        auto d = recorded(resp.event().event());
        if (!d) return absl::DataLossError("read " + stream + ": an event without a readable id");
        result.events.push_back(std::move(*d));
      }
      grpc::Status st = reader->Finish();
      if (st.ok()) return result;
      wire::Trailers trailers = ctx.GetServerTrailingMetadata();
      if (wire::trailer(trailers, "exception") == "stream-deleted") {
        result.events.clear();
        result.deleted = true;
        return result;
      }
      wire::Verdict v = wire::classify(st, trailers);
      if (v.kind == wire::Verdict::kRedirect) {
        redirect(n, v.leader_host, v.leader_port);
      } else if (v.kind != wire::Verdict::kRetry || Clock::now() - failing_since > options_.retry_for) {
        return absl::UnavailableError("read " + stream + " from " + n->endpoint + ": " +
                                      explain_connect_error(settings_, n->endpoint, st));
      }
      int64_t wait = std::min<int64_t>(options_.backoff_initial.count() << std::min(attempt - 1, 16),
                                       options_.backoff_max.count());
      std::this_thread::sleep_for(milliseconds(v.kind == wire::Verdict::kRedirect ? 0 : wait));
    }
  }

  static streams::ReadReq read_request(const std::string& stream, bool backwards, std::optional<uint64_t> from,
                                       uint64_t count) {
    streams::ReadReq req;
    auto* o = req.mutable_options();
    o->mutable_stream()->mutable_stream_identifier()->set_stream_name(stream);
    if (from) {
      o->mutable_stream()->set_revision(*from);
    } else if (backwards) {
      o->mutable_stream()->mutable_end();
    } else {
      o->mutable_stream()->mutable_start();
    }
    o->set_read_direction(backwards ? streams::ReadReq::Options::Backwards : streams::ReadReq::Options::Forwards);
    o->set_resolve_links(false);
    o->set_count(count);
    o->mutable_no_filter();
    o->mutable_uuid_option()->mutable_structured();
    o->mutable_control_option()->set_compatibility(1);
    return req;
  }

  static std::optional<RecordedEventData> recorded(const streams::ReadResp::ReadEvent::RecordedEvent& e) {
    RecordedEventData d;
    auto id = wire::from_proto(e.id());
    if (!id) return std::nullopt;
    d.id = *id;
    d.revision = StreamRevision{e.stream_revision()};
    auto type = e.metadata().find("type");
    if (type != e.metadata().end()) d.type = type->second;
    auto ct = e.metadata().find("content-type");
    if (ct != e.metadata().end()) d.content_type = ct->second;
    d.data = e.data();
    d.metadata = e.custom_metadata();
    d.stream = e.stream_identifier().stream_name();
    d.position = e.commit_position();
    auto created = e.metadata().find("created");
    if (created != e.metadata().end()) (void)absl::SimpleAtoi(created->second, &d.created_ticks);
    return d;
  }

  // Many tails at once: the reads overlap on the channel; a read that fails is read again on its
  // own (with the retry and redirect handling of `read`).
  std::vector<absl::StatusOr<StreamTail>> read_tails(const std::vector<std::string>& names);

  // ---- lifecycle ----
  void close(milliseconds timeout) {
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

  void call_started() {
    std::lock_guard lock(mu_);
    calls_++;
  }
  void call_ended() {
    {
      std::lock_guard lock(mu_);
      calls_--;
    }
    idle_cv_.notify_all();
  }

  ClientStats stats() {
    std::lock_guard lock(mu_);
    return ClientStats{.appends = appends_, .retries = retries_, .reconnects = reconnects_, .redirects = redirects_,
                       .splits = splits_};
  }

  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::shared_ptr<Node> node_;
  std::shared_ptr<BatchCall> batch_;
  std::deque<OpPtr> waiting_;
  std::deque<OpPtr> session_queue_;
  size_t sessions_in_flight_ = 0;
  bool linger_armed_ = false;
  size_t in_flight_ = 0;
  size_t in_flight_bytes_ = 0;
  size_t calls_ = 0;  // append and session calls not yet done
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> appends_{0}, retries_{0}, reconnects_{0}, redirects_{0}, splits_{0};
};

// ---- BatchCall ------------------------------------------------------------------------------------

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
  StartWrite(writes_.front().get());
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
  if (!status.ok()) spdlog::debug("kurrentdb: BatchAppend call ended: {} {}", int(status.error_code()), status.error_message());
  core_->batch_call_done(this, status, ctx_.GetServerTrailingMetadata(), std::move(pending));
  auto keep = std::move(self_);  // `this` may go with it
}

// ---- Append call ----------------------------------------------------------------------------------

// A client-streaming call that writes a list of requests made up front, the last one with the
// half-close.
template <typename Req>
class RequestWriter : public grpc::ClientWriteReactor<Req> {
 public:
  void OnWriteDone(bool ok) override {
    if (ok) write_next();
  }

 protected:
  void write_next() {
    if (next_ >= reqs_.size()) return;
    const auto& r = reqs_[next_++];
    if (next_ == reqs_.size()) {
      this->StartWriteLast(&r, grpc::WriteOptions());
    } else {
      this->StartWrite(&r);
    }
  }

  std::deque<Req> reqs_;  // stable addresses while written
  size_t next_ = 0;
};

class AppendCall final : public RequestWriter<streams::AppendReq> {
 public:
  AppendCall(std::shared_ptr<Core> core, std::shared_ptr<Node> node, OpPtr op)
      : core_(std::move(core)), node_(std::move(node)), op_(std::move(op)) {}

  void start() {
    auto& first = reqs_.emplace_back();
    first.mutable_options()->mutable_stream_identifier()->set_stream_name(op_->req.stream);
    wire::set_expected(op_->expected, first.mutable_options());
    for (size_t i = op_->begin(); i < op_->end(); ++i) {
      const EventData& e = op_->req.events[i];
      wire::fill_proposed(e, reqs_.emplace_back().mutable_proposed_message());
    }
    core_->prepare(ctx_, core_->deadline());
    core_->call_started();
    node_->streams->async()->Append(&ctx_, &resp_, this);
    write_next();
    StartCall();
  }

  void OnDone(const grpc::Status& status) override {
    core_->append_done(op_, status, ctx_.GetServerTrailingMetadata(), resp_, node_);
    auto core = std::move(core_);
    delete this;
    core->call_ended();
  }

 private:
  std::shared_ptr<Core> core_;
  std::shared_ptr<Node> node_;
  OpPtr op_;
  grpc::ClientContext ctx_;
  streams::AppendResp resp_;
};

void Core::send_append(const OpPtr& op) { (new AppendCall(shared_from_this(), node(), op))->start(); }

// ---- v2 AppendSession call --------------------------------------------------------------------------

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
        const EventData& e = op->req.events[i];
        auto* rec = r.add_records();
        rec->set_record_id(e.id.to_string());
        rec->mutable_schema()->set_name(e.type);
        rec->mutable_schema()->set_format(e.content_type == "application/json" ? v2::SCHEMA_FORMAT_JSON
                                                                               : v2::SCHEMA_FORMAT_BYTES);
        rec->set_data(e.data);
        if (!e.metadata.empty()) {
          google::protobuf::Struct props;
          if (!google::protobuf::util::JsonStringToMessage(e.metadata, &props).ok()) {
            return "metadata of event " + e.id.to_string() + " is not a JSON object (v2 properties)";
          }
          for (auto& [k, v] : *props.mutable_fields()) (*rec->mutable_properties())[k] = std::move(v);
        }
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

void Core::start_session(std::vector<OpPtr> ops) {
  auto* call = new SessionCall(shared_from_this(), node(), ops);
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

// ---- overlapped tail reads ----------------------------------------------------------------------------

StreamTail tail_of(const std::vector<RecordedEventData>& events, bool deleted) {
  StreamTail tail;
  tail.deleted = deleted;
  if (!events.empty()) {
    tail.exists = true;
    tail.last_revision = events.front().revision;
    tail.last_id = events.front().id;
  }
  return tail;
}

struct TailBatch {
  std::mutex mu;
  std::condition_variable cv;
  size_t outstanding = 0;
};

class ReadTailCall final : public grpc::ClientReadReactor<streams::ReadResp> {
 public:
  ReadTailCall(Core& core, const std::shared_ptr<Node>& node, const std::string& stream, TailBatch& batch,
               std::optional<StreamTail>& out)
      : batch_(batch), out_(out) {
    req_ = Core::read_request(stream, /*backwards=*/true, std::nullopt, 1);
    core.prepare(ctx_, core.deadline(), /*requires_leader=*/true);
    node->streams->async()->Read(&ctx_, &req_, this);
    StartRead(&resp_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (resp_.content_case() == streams::ReadResp::kEvent && !event_) {
      event_ = Core::recorded(resp_.event().event());
      if (!event_) bad_ = true;
    }
    StartRead(&resp_);
  }

  void OnDone(const grpc::Status& status) override {
    if (status.ok() && !bad_) {
      std::vector<RecordedEventData> events;
      if (event_) events.push_back(std::move(*event_));
      out_ = tail_of(events, false);
    } else if (wire::trailer(ctx_.GetServerTrailingMetadata(), "exception") == "stream-deleted") {
      out_ = tail_of({}, true);
    }
    // Anything else stays empty: read again one by one.
    TailBatch& batch = batch_;
    delete this;
    std::lock_guard lock(batch.mu);
    if (--batch.outstanding == 0) batch.cv.notify_all();
  }

 private:
  TailBatch& batch_;
  std::optional<StreamTail>& out_;
  grpc::ClientContext ctx_;
  streams::ReadReq req_;
  streams::ReadResp resp_;
  std::optional<RecordedEventData> event_;
  bool bad_ = false;
};

std::vector<absl::StatusOr<StreamTail>> Core::read_tails(const std::vector<std::string>& names) {
  std::vector<std::optional<StreamTail>> got(names.size());
  TailBatch batch;
  batch.outstanding = names.size();
  auto n = node();
  for (size_t i = 0; i < names.size(); ++i) new ReadTailCall(*this, n, names[i], batch, got[i]);
  {
    std::unique_lock lock(batch.mu);
    batch.cv.wait(lock, [&] { return batch.outstanding == 0; });
  }
  std::vector<absl::StatusOr<StreamTail>> out;
  out.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    if (got[i]) {
      out.emplace_back(*got[i]);
      continue;
    }
    auto r = read(names[i], /*backwards=*/true, std::nullopt, 1);
    if (!r.ok()) {
      out.emplace_back(r.status());
    } else {
      out.emplace_back(tail_of(r->events, r->deleted));
    }
  }
  return out;
}

// ---- discovery and the public face ------------------------------------------------------------------

absl::StatusOr<std::string> discover(Core& core) {
  const auto& s = core.settings_;
  std::string last_error = "no seed answered";
  for (int attempt = 0; attempt < std::max(1, s.max_discover_attempts); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(s.discovery_interval);
    for (const auto& seed : s.hosts) {
      std::string seed_endpoint = seed.host + ":" + std::to_string(seed.port);
      auto n = core.make_node(seed_endpoint);
      if (!n.ok()) return n.status();
      auto stub = gossip::Gossip::NewStub((*n)->channel);
      grpc::ClientContext ctx;
      core.prepare(ctx, s.gossip_timeout);
      gossip::ClusterInfo info;
      grpc::Status st = stub->Read(&ctx, pb::Empty(), &info);
      if (!st.ok()) {
        last_error = "gossip at " + seed_endpoint + ": " + explain_connect_error(s, seed_endpoint, st);
        continue;
      }
      using M = gossip::MemberInfo;
      auto wanted = [&](const M& m) {
        switch (s.node_preference) {
          case NodePreference::kLeader:
            return m.state() == M::Leader;
          case NodePreference::kFollower:
            return m.state() == M::Follower;
          case NodePreference::kReadOnlyReplica:
            return m.state() == M::ReadOnlyReplica;
          case NodePreference::kRandom:
            return m.state() == M::Leader || m.state() == M::Follower;
        }
        return false;
      };
      std::vector<const M*> candidates;
      for (const auto& m : info.members()) {
        if (m.is_alive() && wanted(m) && !m.http_end_point().address().empty()) candidates.push_back(&m);
      }
      // The leader is the fallback for any preference: writes go there anyway.
      if (candidates.empty()) {
        for (const auto& m : info.members()) {
          if (m.is_alive() && m.state() == M::Leader) candidates.push_back(&m);
        }
      }
      if (candidates.empty()) {
        last_error = "gossip at " + seed_endpoint + " lists no live leader (" + std::to_string(info.members_size()) +
                     " members)";
        continue;
      }
      const M* pick = candidates[size_t(Clock::now().time_since_epoch().count()) % candidates.size()];
      return pick->http_end_point().address() + ":" + std::to_string(pick->http_end_point().port());
    }
  }
  return absl::UnavailableError(absl::StrCat("cluster discovery failed after ", std::max(1, s.max_discover_attempts),
                                             " attempts: ", last_error, " (", s.redacted(), ")"));
}

class ClientImpl final : public KurrentClient {
 public:
  explicit ClientImpl(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  ~ClientImpl() override { close(std::chrono::seconds(30)); }

  [[nodiscard]] std::string name() const override { return "kurrentdb-grpc"; }
  [[nodiscard]] std::string append_mode() const override { return std::string(to_string(core_->effective_mode_.load())); }
  [[nodiscard]] std::string endpoint() const override { return core_->node()->endpoint; }
  [[nodiscard]] std::string server_version() const override { return core_->server_version_; }
  [[nodiscard]] ClientStats stats() const override { return core_->stats(); }

  void append(AppendRequest request, AppendDone done) override { core_->submit(std::move(request), std::move(done)); }

  absl::StatusOr<StreamTail> read_tail(const std::string& stream) override {
    auto r = core_->read(stream, /*backwards=*/true, std::nullopt, 1);
    if (!r.ok()) return r.status();
    return tail_of(r->events, r->deleted);
  }

  std::vector<absl::StatusOr<StreamTail>> read_tails(const std::vector<std::string>& streams) override {
    return core_->read_tails(streams);
  }

  absl::StatusOr<std::vector<RecordedEventData>> read_forwards(const std::string& stream, StreamRevision from,
                                                               uint64_t max_count) override {
    auto r = core_->read(stream, /*backwards=*/false, from.value(), max_count);
    if (!r.ok()) return r.status();
    return std::move(r->events);
  }

  absl::StatusOr<StreamPage> read_stream(const std::string& stream, std::optional<uint64_t> from, uint64_t count,
                                         bool backwards) override {
    auto r = core_->read(stream, backwards, from, count);
    if (!r.ok()) return r.status();
    return StreamPage{.found = !r->not_found, .deleted = r->deleted, .events = std::move(r->events)};
  }

  absl::StatusOr<std::vector<RecordedEventData>> read_all(uint64_t from_position, uint64_t count) override {
    auto r = core_->read_all(from_position, count);
    if (!r.ok()) return r.status();
    return std::move(r->events);
  }

  void close(std::chrono::milliseconds timeout) override {
    if (closed_.exchange(true)) return;
    core_->close(timeout);
    // The calls hold the core (and with it the channels) until their last callback returns. A
    // channel must not be destroyed on gRPC's own callback thread, so the last reference is let
    // go here, once the calls are gone.
    for (int i = 0; i < 10000 && core_.use_count() > 1; ++i) std::this_thread::sleep_for(milliseconds(1));
    core_->timer_.stop();
  }

 private:
  std::shared_ptr<Core> core_;
  std::atomic<bool> closed_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<KurrentClient>> KurrentClient::connect(const ConnectionSettings& settings,
                                                                      ClientOptions options) {
  if (settings.hosts.empty()) return absl::InvalidArgumentError("connection string: no host");
  if (options.max_append_size == 0) return absl::InvalidArgumentError("--max-append-size must be above 0");
  auto core = std::make_shared<Core>(settings, options);
  std::string endpoint = settings.hosts.front().host + ":" + std::to_string(settings.hosts.front().port);
  if (settings.discover) {
    auto found = discover(*core);
    if (!found.ok()) return found.status();
    endpoint = *found;
  }
  auto node = core->make_node(endpoint);
  if (!node.ok()) return node.status();
  core->set_node(*node);

  // ServerFeatures: which append paths the server has.
  bool has_batch = false;
  bool has_session = false;
  {
    auto stub = features::ServerFeatures::NewStub((*node)->channel);
    grpc::ClientContext ctx;
    core->prepare(ctx, settings.default_deadline);
    ctx.set_wait_for_ready(false);
    features::SupportedMethods methods;
    grpc::Status st = stub->GetSupportedMethods(&ctx, pb::Empty(), &methods);
    if (st.ok()) {
      core->server_version_ = methods.event_store_server_version();
      for (const auto& m : methods.methods()) {
        if (m.service_name() == "event_store.client.streams.streams" && m.method_name() == "batchappend") has_batch = true;
        if (m.service_name() == "kurrentdb.protocol.v2.streams.streamsservice" && m.method_name() == "appendsession") {
          has_session = true;
        }
      }
    } else if (st.error_code() != grpc::StatusCode::UNIMPLEMENTED && st.error_code() != grpc::StatusCode::NOT_FOUND) {
      return absl::UnavailableError(explain_connect_error(settings, endpoint, st));
    }
  }
  switch (options.mode) {
    case AppendMode::kBatch:
      if (!has_batch) {
        spdlog::info("kurrentdb: {} does not offer BatchAppend; appending with Append", endpoint);
        core->effective_mode_ = AppendMode::kAppend;
      }
      break;
    case AppendMode::kSession:
      if (!has_session) {
        return absl::FailedPreconditionError(
            "--append-mode session needs KurrentDB 25.1+ (v2 AppendSession); " + endpoint +
            " does not offer it (server version '" + core->server_version_ + "'): use --append-mode batch");
      }
      break;
    case AppendMode::kAppend:
      break;
  }

  // A read that needs the credentials: wrong ones fail here, with a message, not mid-run. The client
  // is the core's only owner from here on: close() waits until nothing else holds the core.
  auto client = std::make_unique<ClientImpl>(std::move(core));
  auto probe = client->read_tail(kProbeStream);
  if (!probe.ok()) {
    client->close(milliseconds(0));
    return probe.status();
  }
  const std::string version = client->server_version();
  spdlog::info("kurrentdb: connected to {} (server {}), append mode {}", client->endpoint(),
               version.empty() ? "version unknown" : version, client->append_mode());
  return client;
}

}  // namespace kingest::kurrent
