// Who may call what: options, credentials, follower mode, gossip, TLS.
#include "server/testing/server_fixture.h"

namespace kingest::server::test {
namespace {

// ---- credentials, follower mode, gossip, $all, TLS, durability -----------------------------------

using Metadata = std::vector<std::pair<std::string, std::string>>;

struct Outcome {
  grpc::Status status;
  std::multimap<std::string, std::string> trailers;
  bool success = false;  // the call's answer was a success (append/batch/session) or carried events (read)
  int events = 0;        // read: events received

  [[nodiscard]] std::string trailer(const std::string& key) const {
    auto it = trailers.find(key);
    return it == trailers.end() ? std::string("<none>") : it->second;
  }
};

void prepare(grpc::ClientContext& ctx, const Metadata& md) {
  for (const auto& [k, v] : md) ctx.AddMetadata(k, v);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
}

void collect(const grpc::ClientContext& ctx, Outcome& out) {
  for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
    out.trailers.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  }
}

std::string basic(const std::string& name_password) { return "Basic " + absl::Base64Escape(name_password); }

Outcome rpc_append(const std::shared_ptr<grpc::Channel>& ch, const Metadata& md, const std::string& stream) {
  auto stub = streams::Streams::NewStub(ch);
  Outcome out;
  grpc::ClientContext ctx;
  prepare(ctx, md);
  streams::AppendResp resp;
  out.status = append_one(*stub, ctx, stream, &resp);
  out.success = out.status.ok() && resp.has_success();
  collect(ctx, out);
  return out;
}

Outcome rpc_batch_append(const std::shared_ptr<grpc::Channel>& ch, const Metadata& md, const std::string& stream) {
  auto stub = streams::Streams::NewStub(ch);
  Outcome out;
  grpc::ClientContext ctx;
  prepare(ctx, md);
  auto call = stub->BatchAppend(&ctx);
  streams::BatchAppendReq req;
  req.mutable_correlation_id()->set_string(Uuid::v4().to_string());
  req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  req.mutable_options()->mutable_any();
  fill(Ev{}, req.add_proposed_messages());
  req.set_is_final(true);
  call->Write(req);
  streams::BatchAppendResp resp;
  if (call->Read(&resp)) out.success = resp.has_success();
  call->WritesDone();
  out.status = call->Finish();
  collect(ctx, out);
  return out;
}

Outcome rpc_read(const std::shared_ptr<grpc::Channel>& ch, const Metadata& md, const std::string& stream,
                 bool all = false) {
  auto stub = streams::Streams::NewStub(ch);
  Outcome out;
  grpc::ClientContext ctx;
  prepare(ctx, md);
  streams::ReadReq req;
  auto* o = req.mutable_options();
  if (all) {
    o->mutable_all()->mutable_start();
  } else {
    o->mutable_stream()->mutable_stream_identifier()->set_stream_name(stream);
    o->mutable_stream()->mutable_start();
  }
  o->set_count(100);
  o->mutable_no_filter();
  o->mutable_uuid_option()->mutable_string();
  auto reader = stub->Read(&ctx, req);
  streams::ReadResp resp;
  while (reader->Read(&resp)) out.events += resp.has_event() ? 1 : 0;
  out.status = reader->Finish();
  out.success = out.status.ok() && out.events > 0;
  collect(ctx, out);
  return out;
}

Outcome rpc_session(const std::shared_ptr<grpc::Channel>& ch, const Metadata& md, const std::string& stream) {
  auto stub = v2::StreamsService::NewStub(ch);
  Outcome out;
  grpc::ClientContext ctx;
  prepare(ctx, md);
  v2::AppendSessionResponse resp;
  auto writer = stub->AppendSession(&ctx, &resp);
  v2::AppendRequest req;
  req.set_stream(stream);
  auto* rec = req.add_records();
  rec->set_record_id(Uuid::v4().to_string());
  rec->mutable_schema()->set_name("Thing");
  rec->mutable_schema()->set_format(v2::SCHEMA_FORMAT_JSON);
  rec->set_data(R"({"a":1})");
  writer->Write(req);
  writer->WritesDone();
  out.status = writer->Finish();
  out.success = out.status.ok() && resp.output_size() == 1;
  collect(ctx, out);
  return out;
}

Outcome rpc_features(const std::shared_ptr<grpc::Channel>& ch, const Metadata& md) {
  auto stub = features::ServerFeatures::NewStub(ch);
  Outcome out;
  grpc::ClientContext ctx;
  prepare(ctx, md);
  features::SupportedMethods resp;
  out.status = stub->GetSupportedMethods(&ctx, pb::Empty{}, &resp);
  out.success = out.status.ok() && resp.methods_size() > 0;
  collect(ctx, out);
  return out;
}

Outcome rpc_gossip(const std::shared_ptr<grpc::Channel>& ch, const Metadata& md, gossip::ClusterInfo* info = nullptr) {
  auto stub = gossip::Gossip::NewStub(ch);
  Outcome out;
  grpc::ClientContext ctx;
  prepare(ctx, md);
  gossip::ClusterInfo resp;
  out.status = stub->Read(&ctx, pb::Empty{}, &resp);
  out.success = out.status.ok() && resp.members_size() > 0;
  collect(ctx, out);
  if (info) *info = resp;
  return out;
}

// Every rpc kind, by name, for the tables below.
std::vector<std::pair<std::string, std::function<Outcome(const Metadata&)>>> every_rpc(
    const std::shared_ptr<grpc::Channel>& ch, const std::string& stream) {
  return {{"Append", [=](const Metadata& md) { return rpc_append(ch, md, stream); }},
          {"BatchAppend", [=](const Metadata& md) { return rpc_batch_append(ch, md, stream); }},
          {"Read", [=](const Metadata& md) { return rpc_read(ch, md, stream); }},
          {"Read $all", [=](const Metadata& md) { return rpc_read(ch, md, "", /*all=*/true); }},
          {"AppendSession", [=](const Metadata& md) { return rpc_session(ch, md, stream + "-v2"); }},
          {"GetSupportedMethods", [=](const Metadata& md) { return rpc_features(ch, md); }},
          {"Gossip.Read", [=](const Metadata& md) { return rpc_gossip(ch, md); }}};
}

bool is_open_rpc(const std::string& name) { return name == "GetSupportedMethods" || name == "Gossip.Read"; }

TEST(ServerOptionsTest, ParseUser) {
  auto u = parse_user("admin:changeit");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->name, "admin");
  EXPECT_EQ(u->password, "changeit");
  u = parse_user("ops:p:w");  // the password may hold colons
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->name, "ops");
  EXPECT_EQ(u->password, "p:w");
  // An empty password is a typo (`--user admin:`), refused, and the message says which part.
  auto empty = parse_user("guest:");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(std::string(empty.status().message()).find("password is empty"), std::string::npos) << empty.status();
  EXPECT_FALSE(parse_user("nocolon").ok());
  EXPECT_FALSE(parse_user(":secret").ok());
  EXPECT_FALSE(parse_user("").ok());
}

TEST(ServerOptionsTest, UsersFromAFile) {
  const auto path = std::filesystem::temp_directory_path() / ("ki-users-" + std::to_string(::getpid()));
  {
    std::ofstream out(path);
    out << "# accounts\nadmin:changeit\n\n  ops:p:w  \n";
  }
  auto users = read_users_file(path.string());
  ASSERT_TRUE(users.ok()) << users.status();
  ASSERT_EQ(users->size(), 2u);
  EXPECT_EQ((*users)[0].name, "admin");
  EXPECT_EQ((*users)[0].password, "changeit");
  EXPECT_EQ((*users)[1].name, "ops");
  EXPECT_EQ((*users)[1].password, "p:w");
  {
    std::ofstream out(path);
    out << "admin:changeit\nbroken-S3cret\n";
  }
  auto bad = read_users_file(path.string());
  ASSERT_FALSE(bad.ok());
  const std::string msg(bad.status().message());
  EXPECT_NE(msg.find(path.string() + ":2"), std::string::npos) << msg;  // file and line
  EXPECT_EQ(msg.find("S3cret"), std::string::npos) << msg;             // never the text
  std::filesystem::remove(path);
  auto missing = read_users_file(path.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find(path.string()), std::string::npos);
}

TEST(ServerOptionsTest, UsersFromTheEnvironment) {
  ::unsetenv(kUsersVariable);
  auto none = users_from_environment();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  ::setenv(kUsersVariable, "admin:changeit\nops:pw", 1);
  auto two = users_from_environment();
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[1].name, "ops");
  ::setenv(kUsersVariable, "admin:", 1);
  auto bad = users_from_environment();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find(kUsersVariable), std::string::npos) << bad.status();
  ::unsetenv(kUsersVariable);
}

TEST(ServerOptionsTest, StartRefusesSizesOfZeroAndEmptyPasswords) {
  auto store = store::EventStore::open({.in_memory = true}).value();
  EXPECT_FALSE(KurrentServer::start(*store, {.listen = "127.0.0.1:0", .max_append_size = 0}).ok());
  EXPECT_FALSE(KurrentServer::start(*store, {.listen = "127.0.0.1:0", .max_pending_batch_bytes = 0}).ok());
  auto empty = KurrentServer::start(*store, {.listen = "127.0.0.1:0", .users = {{"admin", ""}}});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(std::string(empty.status().message()).find("admin"), std::string::npos);
  store->close();
}

TEST(ServerOptionsTest, ParseEndpoint) {
  auto e = parse_endpoint("node1.example:2113");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "node1.example");
  EXPECT_EQ(e->port, 2113);
  e = parse_endpoint("[::1]:2114");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "::1");
  for (const char* bad : {"node1", "node1:", ":2113", "node1:0", "node1:65536", "node1:x"}) {
    EXPECT_FALSE(parse_endpoint(bad).ok()) << bad;
  }
}

class AuthTest : public ServerTest {
 protected:
  void SetUp() override { start({.users = {{"admin", "changeit"}, {"ops", "p:w"}}}); }
};

TEST_F(AuthTest, AnonymousCallersAreDeniedStreamsButMayUseFeaturesAndGossip) {
  for (const auto& [name, call] : every_rpc(channel_, "auth-anon")) {
    auto out = call({});
    if (is_open_rpc(name)) {
      EXPECT_TRUE(out.status.ok()) << name << ": " << out.status.error_message();
      EXPECT_TRUE(out.success) << name;
    } else {
      EXPECT_EQ(out.status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << name;
      EXPECT_EQ(out.status.error_message(), "Access Denied") << name;
      EXPECT_EQ(out.trailer("exception"), "access-denied") << name;
    }
  }
  auto page = store_->read("auth-anon", store::ReadFrom::start(), 10, store::ReadDirection::kForwards);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->stream_found);  // nothing written
}

TEST_F(AuthTest, WrongOrMalformedCredentialsAreUnauthenticatedOnEveryRpc) {
  const std::vector<std::string> bad{basic("admin:wrong"), basic("nobody:changeit"),
                                     basic("admin"),       "Basic !!!not-base64!!!",
                                     "Bearer some-token",  "Basic",
                                     basic("ops:p")};
  for (const auto& header : bad) {
    for (const auto& [name, call] : every_rpc(channel_, "auth-bad")) {
      auto out = call({{"authorization", header}});
      EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << name << " with '" << header << "'";
      EXPECT_FALSE(out.status.error_message().empty()) << name;
    }
  }
  auto page = store_->read("auth-bad", store::ReadFrom::start(), 10, store::ReadDirection::kForwards);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->stream_found);
}

TEST_F(AuthTest, RightCredentialsAreServedOnEveryRpc) {
  for (const auto& creds : {"admin:changeit", "ops:p:w"}) {
    const std::string stream = std::string("auth-ok-") + (creds[0] == 'a' ? "admin" : "ops");
    for (const auto& [name, call] : every_rpc(channel_, stream)) {
      auto out = call({{"authorization", basic(creds)}});
      EXPECT_TRUE(out.status.ok()) << name << " as " << creds << ": " << out.status.error_message();
      EXPECT_TRUE(out.success) << name << " as " << creds;
    }
    // The scheme is case-insensitive, as in HTTP.
    auto out = rpc_append(channel_, {{"authorization", "basic " + absl::Base64Escape(creds)}}, stream);
    EXPECT_TRUE(out.success) << out.status.error_message();
  }
}

TEST_F(ServerTest, WithoutUsersCredentialsAreNotChecked) {
  for (const auto& [name, call] : every_rpc(channel_, "open")) {
    EXPECT_TRUE(call({{"authorization", basic("anyone:anything")}}).success) << name;
    EXPECT_TRUE(call({}).success) << name;
  }
}

TEST_F(ServerTest, DuplicateOrNamelessUsersAreRejected) {
  auto s = KurrentServer::start(*store_, {.listen = "127.0.0.1:0", .users = {{"a", "1"}, {"a", "2"}}});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  s = KurrentServer::start(*store_, {.listen = "127.0.0.1:0", .users = {{"", "1"}}});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
}

class FollowerTest : public ServerTest {
 protected:
  void SetUp() override {
    start({.follower_of = "leader.example:2113"});
    std::vector<store::ProposedEvent> evs;
    for (int i = 0; i < 3; ++i) {
      evs.push_back({.id = Uuid::v4(), .type = "T", .content_type = "application/json", .data = "{}"});
    }
    ASSERT_EQ(store_->append_sync("f-existing", ExpectNoStream{}, evs).status, store::AppendStatus::kSuccess);
  }

  static void expect_not_leader(const Outcome& out, const std::string& what) {
    EXPECT_EQ(out.status.error_code(), grpc::StatusCode::NOT_FOUND) << what << ": " << out.status.error_message();
    EXPECT_EQ(out.status.error_message(), "Leader info available") << what;
    EXPECT_EQ(out.trailer("exception"), "not-leader") << what;
    EXPECT_EQ(out.trailer("leader-endpoint-host"), "leader.example") << what;
    EXPECT_EQ(out.trailer("leader-endpoint-port"), "2113") << what;
    EXPECT_FALSE(out.success) << what;
  }
};

TEST_F(FollowerTest, EveryWriteAnswersNotLeaderAndWritesNothing) {
  expect_not_leader(rpc_append(channel_, {}, "f-new"), "Append");
  expect_not_leader(rpc_batch_append(channel_, {}, "f-new"), "BatchAppend");
  expect_not_leader(rpc_session(channel_, {}, "f-new"), "AppendSession");
  // The same with requires-leader: false; a write always needs the leader.
  expect_not_leader(rpc_append(channel_, {{"requires-leader", "false"}}, "f-new"), "Append, requires-leader false");
  auto page = store_->read("f-new", store::ReadFrom::start(), 10, store::ReadDirection::kForwards);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->stream_found);
}

TEST_F(FollowerTest, BatchAppendFailsTheWholeCallAtTheFirstRequest) {
  grpc::ClientContext ctx;
  auto call = streams_->BatchAppend(&ctx);
  const std::string s = "f-batch";
  call->Write(batch_chunk(Uuid::v4(), &s, kAny, {Ev{}}, true));
  streams::BatchAppendResp resp;
  EXPECT_FALSE(call->Read(&resp));  // no per-correlation answer: the call ends
  auto st = call->Finish();
  Outcome out{.status = st};
  collect(ctx, out);
  expect_not_leader(out, "BatchAppend");
}

TEST_F(FollowerTest, ReadsAreLocalUnlessTheyRequireTheLeader) {
  auto out = rpc_read(channel_, {}, "f-existing");
  EXPECT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.events, 3);
  out = rpc_read(channel_, {{"requires-leader", "false"}}, "f-existing");
  EXPECT_EQ(out.events, 3);
  out = rpc_read(channel_, {}, "", /*all=*/true);
  EXPECT_EQ(out.events, 3);
  for (const char* value : {"true", "True", "TRUE"}) {
    expect_not_leader(rpc_read(channel_, {{"requires-leader", value}}, "f-existing"),
                      std::string("Read, requires-leader ") + value);
  }
  expect_not_leader(rpc_read(channel_, {{"requires-leader", "true"}}, "", /*all=*/true), "Read $all");
}

TEST_F(FollowerTest, AuthenticationComesBeforeTheLeaderCheck) {
  start({.users = {{"admin", "changeit"}}, .follower_of = "leader.example:2113"});
  auto out = rpc_append(channel_, {}, "f-auth");
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  out = rpc_append(channel_, {{"authorization", basic("admin:nope")}}, "f-auth");
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  expect_not_leader(rpc_append(channel_, {{"authorization", basic("admin:changeit")}}, "f-auth"), "Append");
}

TEST_F(FollowerTest, GossipListsThisFollowerAndTheLeader) {
  gossip::ClusterInfo info;
  ASSERT_TRUE(rpc_gossip(channel_, {}, &info).status.ok());
  ASSERT_EQ(info.members_size(), 2);
  const auto& self = info.members(0);
  EXPECT_EQ(self.state(), gossip::MemberInfo::Follower);
  EXPECT_TRUE(self.is_alive());
  EXPECT_EQ(self.http_end_point().address(), "127.0.0.1");
  EXPECT_EQ(self.http_end_point().port(), static_cast<uint32_t>(server_->port()));
  const auto& leader = info.members(1);
  EXPECT_EQ(leader.state(), gossip::MemberInfo::Leader);
  EXPECT_TRUE(leader.is_alive());
  EXPECT_EQ(leader.http_end_point().address(), "leader.example");
  EXPECT_EQ(leader.http_end_point().port(), 2113u);
  EXPECT_NE(self.instance_id().SerializeAsString(), leader.instance_id().SerializeAsString());
}

TEST_F(ServerTest, BadFollowerOfOrAdvertiseIsRejected) {
  EXPECT_FALSE(KurrentServer::start(*store_, {.listen = "127.0.0.1:0", .follower_of = "leader"}).ok());
  EXPECT_FALSE(KurrentServer::start(*store_, {.listen = "127.0.0.1:0", .advertise = "node:0"}).ok());
}

Uuid uuid_of(const pb::UUID& id) {
  if (id.has_string()) return Uuid::parse(id.string()).value_or(Uuid::nil());
  return Uuid::from_halves(id.structured().most_significant_bits(), id.structured().least_significant_bits());
}

TEST_F(ServerTest, GossipReportsThisNodeAsLeader) {
  const int64_t before = now_ticks();
  gossip::ClusterInfo info;
  auto out = rpc_gossip(channel_, {}, &info);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_EQ(info.members_size(), 1);
  const auto& m = info.members(0);
  EXPECT_EQ(m.state(), gossip::MemberInfo::Leader);
  EXPECT_TRUE(m.is_alive());
  EXPECT_EQ(m.http_end_point().address(), "127.0.0.1");
  EXPECT_EQ(m.http_end_point().port(), static_cast<uint32_t>(server_->port()));
  EXPECT_EQ(server_->advertised_address(), server_->address());
  ASSERT_TRUE(m.instance_id().has_structured());  // KurrentDB's form
  EXPECT_FALSE(uuid_of(m.instance_id()).is_nil());
  EXPECT_GE(m.time_stamp(), before);
  EXPECT_LE(m.time_stamp(), now_ticks());

  gossip::ClusterInfo again;
  ASSERT_TRUE(rpc_gossip(channel_, {}, &again).status.ok());
  EXPECT_EQ(uuid_of(again.members(0).instance_id()), uuid_of(m.instance_id()));  // stable
}

TEST_F(ServerTest, GossipReportsTheAdvertisedAddress) {
  start({.advertise = "node1.example:1113"});
  gossip::ClusterInfo info;
  ASSERT_TRUE(rpc_gossip(channel_, {}, &info).status.ok());
  ASSERT_EQ(info.members_size(), 1);
  EXPECT_EQ(info.members(0).http_end_point().address(), "node1.example");
  EXPECT_EQ(info.members(0).http_end_point().port(), 1113u);
  EXPECT_EQ(server_->advertised_address(), "node1.example:1113");
}

TEST_F(ServerTest, ServerFeaturesDoesNotListGossip) {
  grpc::ClientContext ctx;
  features::SupportedMethods resp;
  ASSERT_TRUE(features_->GetSupportedMethods(&ctx, pb::Empty{}, &resp).ok());
  for (const auto& m : resp.methods()) EXPECT_EQ(m.service_name().find("gossip"), std::string::npos);
}

// ---- TLS ----

using server::testing::make_self_signed;
using server::testing::SelfSigned;

class TlsTest : public ServerTest {
 protected:
  static void SetUpTestSuite() {
    ca_ = make_self_signed("a");
    other_ = make_self_signed("b");
  }
  static void TearDownTestSuite() {
    for (auto* c : {&ca_, &other_}) {
      if (*c) std::filesystem::remove_all((*c)->dir);
    }
  }
  void SetUp() override {
    ASSERT_TRUE(ca_ && other_) << "openssl could not make a test certificate";
    start({.tls_cert_pem = ca_->cert, .tls_key_pem = ca_->key, .users = {{"admin", "changeit"}}});
  }
  // start() made an insecure channel_; TLS clients use this one.
  std::shared_ptr<grpc::Channel> tls_channel(const std::string& root) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = root;
    return grpc::CreateChannel(server_->address(), grpc::SslCredentials(ssl));
  }

  static inline std::optional<SelfSigned> ca_;
  static inline std::optional<SelfSigned> other_;
};

TEST_F(TlsTest, TlsClientTrustingTheCertificateIsServed) {
  auto ch = tls_channel(ca_->cert);
  const Metadata admin{{"authorization", basic("admin:changeit")}};
  for (const auto& [name, call] : every_rpc(ch, "tls")) {
    auto out = call(admin);
    EXPECT_TRUE(out.status.ok()) << name << ": " << out.status.error_message();
    EXPECT_TRUE(out.success) << name;
  }
  EXPECT_EQ(rpc_append(ch, {}, "tls").status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(TlsTest, PlaintextClientFails) {
  auto out = rpc_features(channel_, {});  // channel_ is plaintext
  EXPECT_FALSE(out.status.ok());
  out = rpc_append(channel_, {{"authorization", basic("admin:changeit")}}, "tls-plain");
  EXPECT_FALSE(out.status.ok());
  auto page = store_->read("tls-plain", store::ReadFrom::start(), 10, store::ReadDirection::kForwards);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->stream_found);
}

TEST_F(TlsTest, ClientTrustingAnotherCertificateFails) {
  auto out = rpc_features(tls_channel(other_->cert), {});
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, BadCertificatesAndKeysAreRejected) {
  auto start_with = [&](std::string cert, std::string key) {
    return KurrentServer::start(
               *store_, {.listen = "127.0.0.1:0", .tls_cert_pem = std::move(cert), .tls_key_pem = std::move(key)})
        .status();
  };
  EXPECT_EQ(start_with(ca_->cert, "").code(), absl::StatusCode::kInvalidArgument);  // half a pair
  EXPECT_EQ(start_with("", ca_->key).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start_with("not a certificate", ca_->key).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start_with(ca_->cert, "not a key").code(), absl::StatusCode::kInvalidArgument);
  auto mismatch = start_with(ca_->cert, other_->key);
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.message().find("does not match"), std::string::npos) << mismatch;

  auto cert = read_pem_certificate_chain(ca_->cert_path);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(*cert, ca_->cert);
  ASSERT_TRUE(read_pem_private_key(ca_->key_path).ok());
  auto missing = read_pem_certificate_chain(ca_->dir + "/missing.pem");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing.pem"), std::string::npos);
  auto swapped = read_pem_certificate_chain(ca_->key_path);  // a key where a certificate belongs
  ASSERT_FALSE(swapped.ok());
  EXPECT_NE(swapped.status().message().find("key.pem"), std::string::npos);
  EXPECT_FALSE(read_pem_private_key(ca_->cert_path).ok());
}

}  // namespace
}  // namespace kingest::server::test
