// The server's assembly: the services (Streams, ServerFeatures, Gossip), their registration and the
// lifecycle (start, shutdown); the rpcs themselves are in their own files (see internal/server.h).
#include "server/kurrent_server.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proto/kurrentdb/gossip.grpc.pb.h"
#include "proto/kurrentdb/serverfeatures.grpc.pb.h"
#include "server/internal/server.h"

namespace kingest::server {
namespace {

using namespace internal;  // NOLINT(google-build-using-namespace): this file wires the internals together
namespace features = ::event_store::client::server_features;
namespace gossip = ::event_store::client::gossip;

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
    return new_read_reactor(shared_, ctx, *req);
  }
  grpc::ServerReadReactor<streams::AppendReq>* Append(grpc::CallbackServerContext* ctx,
                                                      streams::AppendResp* resp) override {
    if (auto refused = refuse_access(shared_, ctx, Access::kStreams)) {
      return new RefusedRead<streams::AppendReq>(*refused, /*after_reads=*/false);
    }
    if (shared_.leader) return new RefusedRead<streams::AppendReq>(not_leader(shared_, ctx), /*after_reads=*/true);
    return new_append_reactor(shared_, ctx, resp);
  }
  grpc::ServerBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp>* BatchAppend(
      grpc::CallbackServerContext* ctx) override {
    using Refused = RefusedBidi<streams::BatchAppendReq, streams::BatchAppendResp>;
    if (auto refused = refuse_access(shared_, ctx, Access::kStreams)) return new Refused(*refused, false);
    // One long-lived call carries many appends: KurrentDB fails the whole call at the first one.
    if (shared_.leader) return new Refused(not_leader(shared_, ctx), /*after_first_read=*/true);
    return new_batch_append_reactor(shared_);
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
    if (!o.hide_append_records) add("appendrecords", "kurrentdb.protocol.v2.streams.streamsservice", {});
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
        v2_streams_(new_v2_streams_service(shared_, worker_)) {}

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
    if (o.max_append_size == 0 || o.max_event_size == 0 || o.max_pending_batch_bytes_per_call == 0 ||
        o.max_pending_batch_bytes == 0 || o.read_page_size == 0 || o.max_receive_message_bytes <= 0) {
      return absl::InvalidArgumentError(
          "sizes must be above 0 (max_append_size, max_event_size, max_pending_batch_bytes[_per_call], "
          "read_page_size, max_receive_message_bytes)");
    }
    for (const auto& u : o.users) {
      if (u.name.empty()) return absl::InvalidArgumentError("user with an empty name");
      if (u.password.empty()) return absl::InvalidArgumentError(absl::StrCat("user '", u.name, "' has an empty password"));
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
    builder.RegisterService(v2_streams_.get());
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
      for (auto* r : shared_.batch_reactors) drain(r);
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
  std::unique_ptr<grpc::Service> v2_streams_;
  std::unique_ptr<grpc::Server> server_;
  std::string host_;
  int port_ = 0;
};

}  // namespace

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

absl::StatusOr<std::unique_ptr<KurrentServer>> KurrentServer::start(store::EventStore& store, ServerOptions options) {
  auto server = std::make_unique<ServerImpl>(store, std::move(options));
  if (auto s = server->start(); !s.ok()) return s;
  return server;
}

}  // namespace kingest::server
