#include "kurrent/kurrent_client.h"

#include "kurrent/internal/core.h"

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
  if (text == "records") return AppendMode::kRecords;
  if (text == "auto") return AppendMode::kAuto;
  return absl::InvalidArgumentError("append mode '" + std::string(text) +
                                    "': use auto, records, batch, append or session");
}

std::string_view to_string(AppendMode mode) {
  switch (mode) {
    case AppendMode::kBatch:
      return "batch";
    case AppendMode::kAppend:
      return "append";
    case AppendMode::kSession:
      return "session";
    case AppendMode::kRecords:
      return "records";
    case AppendMode::kAuto:
      return "auto";
  }
  return "batch";
}
namespace {

using namespace internal;  // NOLINT(google-build-using-namespace): the public face of the internals
namespace features = ::event_store::client::server_features;
namespace gossip = ::event_store::client::gossip;

constexpr const char* kProbeStream = "kurrent-ingest-connection-check";

absl::StatusOr<std::string> discover(Core& core) {
  const auto& s = core.settings_;
  std::string last_error = "no seed answered";
  for (int attempt = 0; attempt < std::max(1, s.max_discover_attempts); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(s.discovery_interval);
    for (const auto& seed : s.hosts) {
      std::string seed_endpoint = seed.address();
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
      return Endpoint{.host = pick->http_end_point().address(), .port = uint16_t(pick->http_end_point().port())}.address();
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
  // AppendRecords' checks are exact (no idempotent re-append): a checked append writes every event
  // or is refused with the stream's state. The other paths may answer success for a re-append.
  [[nodiscard]] bool exact_answers() const override { return core_->effective_mode_.load() == AppendMode::kRecords; }
  // Records mode is chosen once, at connect: every append is then encoded as records.
  [[nodiscard]] bool wants_record_properties() const override {
    return core_->effective_mode_.load() == AppendMode::kRecords;
  }
  [[nodiscard]] std::string endpoint() const override { return core_->node()->endpoint; }
  [[nodiscard]] std::string server_version() const override { return core_->server_version_; }
  [[nodiscard]] ClientStats stats() const override { return core_->stats(); }

  void append(AppendRequest request, AppendDone done) override { core_->submit(std::move(request), std::move(done)); }
  void append_many(std::vector<PendingAppend>& appends) override { core_->submit_many(appends); }

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
  std::string endpoint = settings.hosts.front().address();
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
  bool has_records = false;
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
        if (m.service_name() == "kurrentdb.protocol.v2.streams.streamsservice" && m.method_name() == "appendrecords") {
          has_records = true;
        }
      }
    } else if (st.error_code() != grpc::StatusCode::UNIMPLEMENTED && st.error_code() != grpc::StatusCode::NOT_FOUND) {
      return call_error(st, wire::classify(st, {}).kind == wire::Verdict::kRetry,
                        explain_connect_error(settings, endpoint, st));
    }
  }
  switch (options.mode) {
    case AppendMode::kAuto:
      core->effective_mode_ = has_records ? AppendMode::kRecords : has_batch ? AppendMode::kBatch : AppendMode::kAppend;
      break;
    case AppendMode::kRecords:
      if (!has_records) {
        return absl::FailedPreconditionError(
            "--append-mode records needs KurrentDB 26.1+ (v2 AppendRecords); " + endpoint +
            " does not offer it (server version '" + core->server_version_ + "'): use --append-mode auto or batch");
      }
      break;
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
