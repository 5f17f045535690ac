// KurrentServer through the generated gRPC C++ client stubs, on an ephemeral loopback port over
// an in-memory store (a file store for the durability test; TLS with a certificate made by the
// openssl tool).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "core/uuid.h"
#include "proto/kurrentdb/gossip.grpc.pb.h"
#include "proto/kurrentdb/serverfeatures.grpc.pb.h"
#include "proto/kurrentdb/shared.pb.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/streams.grpc.pb.h"
#include "proto/kurrentdb/v2/errors.pb.h"
#include "proto/kurrentdb/v2/streams.grpc.pb.h"
#include "server/kurrent_server.h"
#include "server/testing/self_signed.h"
#include "store/event_store.h"

namespace kingest::server {
namespace {

namespace pb = ::event_store::client;
namespace streams = ::event_store::client::streams;
namespace features = ::event_store::client::server_features;
namespace gossip = ::event_store::client::gossip;
namespace v2 = ::kurrentdb::protocol::v2::streams;

using Proposed = streams::AppendReq::ProposedMessage;

struct Ev {
  Uuid id = Uuid::v4();
  std::string type = "Thing";
  std::string data = R"({"a":1})";
  std::string metadata = R"({"$correlationId":"x"})";
};

template <typename Msg>
void fill(const Ev& e, Msg* m, bool string_id = true) {
  if (string_id) {
    m->mutable_id()->set_string(e.id.to_string());
  } else {
    m->mutable_id()->mutable_structured()->set_most_significant_bits(e.id.most_significant());
    m->mutable_id()->mutable_structured()->set_least_significant_bits(e.id.least_significant());
  }
  (*m->mutable_metadata())["type"] = e.type;
  (*m->mutable_metadata())["content-type"] = "application/json";
  m->set_custom_metadata(e.metadata);
  m->set_data(e.data);
}

enum class Exp { kNoStream, kAny, kExists, kExact };
struct Expected {
  Exp kind = Exp::kAny;
  uint64_t revision = 0;
};
Expected exact(uint64_t r) { return {Exp::kExact, r}; }
constexpr Expected kNoStream{Exp::kNoStream};
constexpr Expected kAny{Exp::kAny};
constexpr Expected kExists{Exp::kExists};

int64_t now_ticks() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
             .count() /
         100;
}

struct AppendCall {
  grpc::Status status;
  streams::AppendResp resp;
  std::multimap<std::string, std::string> trailers;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }
  void TearDown() override {
    if (server_) server_->shutdown();
    if (store_) store_->close();
  }

  void start(ServerOptions o) {
    if (server_) server_->shutdown();
    if (!store_) store_ = store::EventStore::open({.in_memory = true}).value();
    o.listen = "127.0.0.1:0";
    auto s = KurrentServer::start(*store_, o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    streams_ = streams::Streams::NewStub(channel_);
    features_ = features::ServerFeatures::NewStub(channel_);
    v2_ = v2::StreamsService::NewStub(channel_);
  }

  AppendCall append(const std::string& stream, Expected expected, const std::vector<Ev>& events,
                    bool drop_type = false) {
    AppendCall out;
    grpc::ClientContext ctx;
    auto writer = streams_->Append(&ctx, &out.resp);
    streams::AppendReq req;
    auto* o = req.mutable_options();
    o->mutable_stream_identifier()->set_stream_name(stream);
    switch (expected.kind) {
      case Exp::kNoStream:
        o->mutable_no_stream();
        break;
      case Exp::kAny:
        o->mutable_any();
        break;
      case Exp::kExists:
        o->mutable_stream_exists();
        break;
      case Exp::kExact:
        o->set_revision(expected.revision);
        break;
    }
    writer->Write(req);
    bool string_id = false;
    for (const auto& e : events) {
      streams::AppendReq m;
      fill(e, m.mutable_proposed_message(), string_id = !string_id);  // both id forms
      if (drop_type) m.mutable_proposed_message()->mutable_metadata()->erase("type");
      writer->Write(m);
    }
    writer->WritesDone();
    out.status = writer->Finish();
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
      out.trailers.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
    return out;
  }

  static streams::BatchAppendReq batch_chunk(const Uuid& cid, const std::string* stream, Expected expected,
                                             const std::vector<Ev>& events, bool is_final) {
    streams::BatchAppendReq req;
    req.mutable_correlation_id()->set_string(cid.to_string());
    if (stream) {
      auto* o = req.mutable_options();
      o->mutable_stream_identifier()->set_stream_name(*stream);
      switch (expected.kind) {
        case Exp::kNoStream:
          o->mutable_no_stream();
          break;
        case Exp::kAny:
          o->mutable_any();
          break;
        case Exp::kExists:
          o->mutable_stream_exists();
          break;
        case Exp::kExact:
          o->set_stream_position(expected.revision);
          break;
      }
      o->mutable_deadline()->set_seconds(10);
    }
    for (const auto& e : events) fill(e, req.add_proposed_messages());
    req.set_is_final(is_final);
    return req;
  }

  std::vector<streams::ReadResp> read(const std::string& stream, bool backwards, std::optional<uint64_t> from,
                                      uint64_t count, bool from_end = false, bool string_ids = false,
                                      uint32_t compatibility = 0, grpc::Status* status = nullptr) {
    streams::ReadReq req;
    auto* o = req.mutable_options();
    o->mutable_stream()->mutable_stream_identifier()->set_stream_name(stream);
    if (from) {
      o->mutable_stream()->set_revision(*from);
    } else if (from_end) {
      o->mutable_stream()->mutable_end();
    } else {
      o->mutable_stream()->mutable_start();
    }
    o->set_read_direction(backwards ? streams::ReadReq::Options::Backwards : streams::ReadReq::Options::Forwards);
    o->set_count(count);
    o->mutable_no_filter();
    if (string_ids) {
      o->mutable_uuid_option()->mutable_string();
    } else {
      o->mutable_uuid_option()->mutable_structured();
    }
    o->mutable_control_option()->set_compatibility(compatibility);
    grpc::ClientContext ctx;
    auto reader = streams_->Read(&ctx, req);
    std::vector<streams::ReadResp> out;
    streams::ReadResp resp;
    while (reader->Read(&resp)) out.push_back(resp);
    auto s = reader->Finish();
    if (status) {
      *status = s;
    } else {
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    return out;
  }

  static std::vector<uint64_t> revisions(const std::vector<streams::ReadResp>& msgs) {
    std::vector<uint64_t> out;
    for (const auto& m : msgs) {
      if (m.has_event()) out.push_back(m.event().event().stream_revision());
    }
    return out;
  }

  std::unique_ptr<store::EventStore> store_;
  std::unique_ptr<KurrentServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<streams::Streams::Stub> streams_;
  std::unique_ptr<features::ServerFeatures::Stub> features_;
  std::unique_ptr<v2::StreamsService::Stub> v2_;
};

std::vector<std::string> method_names(const features::SupportedMethods& m) {
  std::vector<std::string> out;
  for (const auto& x : m.methods()) out.push_back(x.method_name());
  return out;
}

TEST_F(ServerTest, ServerFeaturesListsBatchAppend) {
  grpc::ClientContext ctx;
  pb::Empty req;
  features::SupportedMethods resp;
  ASSERT_TRUE(features_->GetSupportedMethods(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.event_store_server_version(), "24.10.0");
  auto names = method_names(resp);
  EXPECT_NE(std::find(names.begin(), names.end(), "read"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "append"), names.end());
  bool found = false;
  for (const auto& m : resp.methods()) {
    if (m.method_name() != "batchappend") continue;
    found = true;
    EXPECT_EQ(m.service_name(), "event_store.client.streams.streams");
    ASSERT_EQ(m.features_size(), 1);
    EXPECT_EQ(m.features(0), "deadline_duration");
  }
  EXPECT_TRUE(found);
  bool v2 = false;
  for (const auto& m : resp.methods()) {
    v2 |= m.method_name() == "appendsession" && m.service_name() == "kurrentdb.protocol.v2.streams.streamsservice";
  }
  EXPECT_TRUE(v2);
}

TEST_F(ServerTest, ServerFeaturesCanHideBatchAppend) {
  start({.hide_batch_append = true});
  grpc::ClientContext ctx;
  features::SupportedMethods resp;
  ASSERT_TRUE(features_->GetSupportedMethods(&ctx, pb::Empty{}, &resp).ok());
  auto names = method_names(resp);
  EXPECT_EQ(std::find(names.begin(), names.end(), "batchappend"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "append"), names.end());
}

TEST_F(ServerTest, AppendEveryExpectedRevisionKind) {
  auto r = append("s-1", kNoStream, {Ev{}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_TRUE(r.resp.has_success());
  EXPECT_EQ(r.resp.success().current_revision(), 0u);
  ASSERT_TRUE(r.resp.success().has_position());
  uint64_t p0 = r.resp.success().position().commit_position();
  EXPECT_EQ(r.resp.success().position().prepare_position(), p0);

  r = append("s-1", kAny, {Ev{}, Ev{}});
  ASSERT_TRUE(r.resp.has_success());
  EXPECT_EQ(r.resp.success().current_revision(), 2u);
  EXPECT_GT(r.resp.success().position().commit_position(), p0);

  r = append("s-1", kExists, {Ev{}});
  ASSERT_TRUE(r.resp.has_success());
  EXPECT_EQ(r.resp.success().current_revision(), 3u);

  r = append("s-1", exact(3), {Ev{}});
  ASSERT_TRUE(r.resp.has_success());
  EXPECT_EQ(r.resp.success().current_revision(), 4u);

  r = append("s-new", kAny, {Ev{}});
  ASSERT_TRUE(r.resp.has_success());
  EXPECT_EQ(r.resp.success().current_revision(), 0u);
}

TEST_F(ServerTest, AppendWrongExpectedVersionFillsBothFieldSets) {
  ASSERT_TRUE(append("s-2", kNoStream, {Ev{}, Ev{}}).resp.has_success());  // revision 1

  auto r = append("s-2", exact(5), {Ev{}});
  ASSERT_TRUE(r.status.ok());
  ASSERT_TRUE(r.resp.has_wrong_expected_version());
  const auto& w = r.resp.wrong_expected_version();
  EXPECT_EQ(w.current_revision_20_6_0(), 1u);
  EXPECT_EQ(w.current_revision(), 1u);
  EXPECT_EQ(w.expected_revision_20_6_0(), 5u);
  EXPECT_EQ(w.expected_revision(), 5u);

  r = append("s-2", kNoStream, {Ev{}});
  ASSERT_TRUE(r.resp.has_wrong_expected_version());
  EXPECT_EQ(r.resp.wrong_expected_version().expected_revision_20_6_0(), std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(r.resp.wrong_expected_version().has_expected_no_stream());
  EXPECT_EQ(r.resp.wrong_expected_version().current_revision(), 1u);

  r = append("s-missing", kExists, {Ev{}});
  ASSERT_TRUE(r.status.ok());
  ASSERT_TRUE(r.resp.has_wrong_expected_version());
  const auto& m = r.resp.wrong_expected_version();
  EXPECT_TRUE(m.has_no_stream_20_6_0());
  EXPECT_TRUE(m.has_current_no_stream());
  EXPECT_TRUE(m.has_stream_exists_20_6_0());
  EXPECT_TRUE(m.has_expected_stream_exists());

  r = append("s-missing", exact(0), {Ev{}});
  ASSERT_TRUE(r.resp.has_wrong_expected_version());
  EXPECT_TRUE(r.resp.wrong_expected_version().has_current_no_stream());
  EXPECT_EQ(r.resp.wrong_expected_version().expected_revision(), 0u);
}

TEST_F(ServerTest, AppendIdempotentReappend) {
  std::vector<Ev> evs{Ev{}, Ev{}, Ev{}};
  auto first = append("s-3", kNoStream, evs);
  ASSERT_TRUE(first.resp.has_success());
  auto again = append("s-3", kNoStream, evs);
  ASSERT_TRUE(again.resp.has_success()) << again.resp.DebugString();
  EXPECT_EQ(again.resp.success().current_revision(), 2u);
  EXPECT_EQ(again.resp.success().position().commit_position(), first.resp.success().position().commit_position());
  auto tail = append("s-3", exact(0), {evs[1], evs[2]});
  ASSERT_TRUE(tail.resp.has_success());
  EXPECT_EQ(tail.resp.success().current_revision(), 2u);
  EXPECT_EQ(revisions(read("s-3", false, std::nullopt, 100)).size(), 3u);  // nothing written twice
}

TEST_F(ServerTest, AppendWithoutTypeOrContentTypeIsInvalidArgument) {
  auto r = append("s-4", kAny, {Ev{}}, /*drop_type=*/true);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext ctx;
  streams::AppendResp resp;
  auto writer = streams_->Append(&ctx, &resp);
  streams::AppendReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name("s-4");
  req.mutable_options()->mutable_any();
  writer->Write(req);
  streams::AppendReq m;
  fill(Ev{}, m.mutable_proposed_message());
  m.mutable_proposed_message()->mutable_metadata()->erase("content-type");
  writer->Write(m);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status st;
  auto msgs = read("s-4", false, std::nullopt, 10, false, false, 0, &st);
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].has_stream_not_found());  // nothing written
}

TEST_F(ServerTest, AppendToDeletedStreamIsFailedPrecondition) {
  ASSERT_TRUE(append("s-5", kNoStream, {Ev{}}).resp.has_success());
  ASSERT_EQ(store_->tombstone("s-5", ExpectAny{}).status, store::AppendStatus::kSuccess);
  auto r = append("s-5", kAny, {Ev{}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  auto it = r.trailers.find("exception");
  ASSERT_NE(it, r.trailers.end());
  EXPECT_EQ(it->second, "stream-deleted");
}

TEST_F(ServerTest, AppendOverMaximumSizeIsInvalidArgument) {
  start({.max_append_size = 1000});
  Ev big;
  big.data.assign(2000, 'x');
  auto r = append("s-6", kAny, {big});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto it = r.trailers.find("exception");
  ASSERT_NE(it, r.trailers.end());
  EXPECT_EQ(it->second, "maximum-append-size-exceeded");
}

TEST_F(ServerTest, BatchAppendManyCorrelationIdsOnOneCall) {
  grpc::ClientContext ctx;
  auto stream = streams_->BatchAppend(&ctx);
  const std::string a = "b-a";
  const std::string b = "b-b";
  struct Case {
    const std::string* stream;
    Expected expected;
    int events;
    bool ok;
    uint64_t revision;
  };
  std::vector<Case> cases{{&a, kNoStream, 2, true, 1},  {&a, kAny, 1, true, 2},     {&a, kExists, 1, true, 3},
                          {&a, exact(3), 2, true, 5},   {&b, kExists, 1, false, 0}, {&a, exact(9), 1, false, 5},
                          {&a, kNoStream, 1, false, 5}, {&b, kNoStream, 1, true, 0}};
  std::vector<Uuid> cids;
  for (const auto& c : cases) {
    cids.push_back(Uuid::v4());
    std::vector<Ev> evs(static_cast<size_t>(c.events));
    ASSERT_TRUE(stream->Write(batch_chunk(cids.back(), c.stream, c.expected, evs, true)));
    streams::BatchAppendResp resp;
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.correlation_id().string(), cids.back().to_string());
    EXPECT_EQ(resp.stream_identifier().stream_name(), *c.stream);
    if (c.ok) {
      ASSERT_TRUE(resp.has_success()) << resp.DebugString();
      EXPECT_EQ(resp.success().current_revision(), c.revision);
      EXPECT_TRUE(resp.success().has_position());
    } else {
      ASSERT_TRUE(resp.has_error()) << resp.DebugString();
      EXPECT_EQ(resp.error().code(), google::rpc::ALREADY_EXISTS);
      EXPECT_EQ(resp.error().message(), "WrongExpectedVersion");
      ASSERT_EQ(resp.error().details_size(), 1);
      pb::WrongExpectedVersion w;
      ASSERT_TRUE(resp.error().details(0).UnpackTo(&w));
      if (c.stream == &b) {
        EXPECT_TRUE(w.has_current_no_stream());
        EXPECT_TRUE(w.has_expected_stream_exists());
      } else if (c.expected.kind == Exp::kExact) {
        EXPECT_EQ(w.current_stream_revision(), c.revision);
        EXPECT_EQ(w.expected_stream_position(), 9u);
      } else {
        EXPECT_EQ(w.current_stream_revision(), c.revision);
        EXPECT_TRUE(w.has_expected_no_stream());
      }
    }
  }
  // The expected position is echoed.
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &a, exact(5), {Ev{}}, true)));
  streams::BatchAppendResp resp;
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.stream_position(), 5u);
  EXPECT_EQ(resp.success().current_revision(), 6u);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerTest, BatchAppendChunksAndIdempotentReplay) {
  grpc::ClientContext ctx;
  auto stream = streams_->BatchAppend(&ctx);
  const std::string s = "b-chunks";
  std::vector<Ev> evs(5);
  Uuid cid = Uuid::v4();
  Uuid other = Uuid::v4();
  // Two correlation ids interleaved; only the final chunks trigger the appends.
  ASSERT_TRUE(stream->Write(batch_chunk(cid, &s, kNoStream, {evs[0], evs[1]}, false)));
  ASSERT_TRUE(stream->Write(batch_chunk(other, &s, kAny, {}, false)));
  ASSERT_TRUE(stream->Write(batch_chunk(cid, nullptr, kAny, {evs[2]}, false)));
  ASSERT_TRUE(stream->Write(batch_chunk(cid, nullptr, kAny, {evs[3], evs[4]}, true)));
  streams::BatchAppendResp resp;
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.correlation_id().string(), cid.to_string());
  ASSERT_TRUE(resp.has_success());
  EXPECT_EQ(resp.success().current_revision(), 4u);
  uint64_t pos = resp.success().position().commit_position();

  ASSERT_TRUE(stream->Write(batch_chunk(other, nullptr, kAny, {Ev{}}, true)));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.correlation_id().string(), other.to_string());
  EXPECT_EQ(resp.success().current_revision(), 5u);

  // Replaying the first append with the same ids answers the original revision and position.
  Uuid replay = Uuid::v4();
  ASSERT_TRUE(stream->Write(batch_chunk(replay, &s, kNoStream, evs, true)));
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_success()) << resp.DebugString();
  EXPECT_EQ(resp.success().current_revision(), 4u);
  EXPECT_EQ(resp.success().position().commit_position(), pos);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(revisions(read(s, false, std::nullopt, 100)).size(), 6u);
}

TEST_F(ServerTest, BatchAppendErrorsPerCorrelationId) {
  ASSERT_TRUE(append("b-del", kNoStream, {Ev{}}).resp.has_success());
  ASSERT_EQ(store_->tombstone("b-del", ExpectAny{}).status, store::AppendStatus::kSuccess);
  grpc::ClientContext ctx;
  auto stream = streams_->BatchAppend(&ctx);
  const std::string del = "b-del";
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &del, kAny, {Ev{}}, true)));
  streams::BatchAppendResp resp;
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_error());
  EXPECT_EQ(resp.error().code(), google::rpc::NOT_FOUND);

  const std::string s = "b-bad";
  auto req = batch_chunk(Uuid::v4(), &s, kAny, {Ev{}}, true);
  req.mutable_proposed_messages(0)->mutable_metadata()->erase("type");
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_error());
  EXPECT_EQ(resp.error().code(), google::rpc::INVALID_ARGUMENT);

  // The call is still usable.
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &s, kAny, {Ev{}}, true)));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_TRUE(resp.has_success());
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// The official Node client reads an in-body error's single detail by its type name and crashes on
// an error without one: every BatchAppend error carries exactly one detail.
TEST_F(ServerTest, EveryBatchAppendErrorCarriesOneDetail) {
  grpc::ClientContext ctx;
  auto stream = streams_->BatchAppend(&ctx);
  streams::BatchAppendResp resp;
  auto expect_one_detail = [&](google::rpc::Code code, const std::string& type_name) {
    ASSERT_TRUE(stream->Read(&resp));
    ASSERT_TRUE(resp.has_error()) << resp.DebugString();
    EXPECT_EQ(resp.error().code(), code);
    ASSERT_EQ(resp.error().details_size(), 1) << resp.DebugString();
    EXPECT_EQ(resp.error().details(0).type_url(), "type.googleapis.com/" + type_name);
  };
  // A first chunk without options.
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), nullptr, kAny, {Ev{}}, true)));
  expect_one_detail(google::rpc::INVALID_ARGUMENT, "event_store.client.BadRequest");
  // An empty stream name.
  const std::string empty;
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &empty, kAny, {Ev{}}, true)));
  expect_one_detail(google::rpc::INVALID_ARGUMENT, "event_store.client.BadRequest");
  // A proposed message without a type.
  const std::string s = "d-bad";
  auto req = batch_chunk(Uuid::v4(), &s, kAny, {Ev{}}, true);
  req.mutable_proposed_messages(0)->mutable_metadata()->erase("type");
  ASSERT_TRUE(stream->Write(req));
  expect_one_detail(google::rpc::INVALID_ARGUMENT, "event_store.client.BadRequest");
  // A wrong expected version and a deleted stream keep their own details.
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &s, exact(5), {Ev{}}, true)));
  expect_one_detail(google::rpc::ALREADY_EXISTS, "event_store.client.WrongExpectedVersion");
  // A store that cannot write (here: closed, as a full disk would fail it).
  store_->close();
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &s, kAny, {Ev{}}, true)));
  expect_one_detail(google::rpc::UNAVAILABLE, "event_store.client.Unknown");
  stream->WritesDone();
  stream->Finish();
}

// Chunks of correlation ids that never end are held in memory: bounded per call and per server.
TEST_F(ServerTest, PendingBatchAppendChunksAreBounded) {
  start({.max_append_size = 64 * 1024, .max_pending_batch_bytes_per_call = 256 * 1024,
         .max_pending_batch_bytes = 384 * 1024});
  const std::string big(60 * 1024, 'x');
  // Non-final chunks of distinct correlation ids, each under the append size limit.
  auto fill_call = [&](grpc::ClientReaderWriter<streams::BatchAppendReq, streams::BatchAppendResp>& call,
                       const std::string& prefix, int chunks) {
    for (int i = 0; i < chunks; ++i) {
      const std::string name = prefix + std::to_string(i);
      if (!call.Write(batch_chunk(Uuid::v4(), &name, kAny, {Ev{.data = big}}, false))) return false;
    }
    return true;
  };
  grpc::ClientContext ctx1;
  auto call1 = streams_->BatchAppend(&ctx1);
  // Per call: the fifth pending 60 KiB chunk passes 256 KiB.
  ASSERT_TRUE(fill_call(*call1, "p1-", 5));
  streams::BatchAppendResp resp;
  ASSERT_TRUE(call1->Read(&resp));
  ASSERT_TRUE(resp.has_error()) << resp.DebugString();
  EXPECT_EQ(resp.error().code(), google::rpc::RESOURCE_EXHAUSTED);
  ASSERT_EQ(resp.error().details_size(), 1);
  // Per server: a second call's chunks count against what the first one holds (240 KiB).
  grpc::ClientContext ctx2;
  auto call2 = streams_->BatchAppend(&ctx2);
  ASSERT_TRUE(fill_call(*call2, "p2-", 3));
  ASSERT_TRUE(call2->Read(&resp));
  ASSERT_TRUE(resp.has_error()) << resp.DebugString();
  EXPECT_EQ(resp.error().code(), google::rpc::RESOURCE_EXHAUSTED);
  // Ending the calls gives the memory back: a fresh call appends again.
  call1->WritesDone();
  call1->Finish();
  call2->WritesDone();
  call2->Finish();
  grpc::ClientContext ctx3;
  auto call3 = streams_->BatchAppend(&ctx3);
  for (int i = 0; i < 4; ++i) {
    const std::string name = "p3-" + std::to_string(i);
    ASSERT_TRUE(call3->Write(batch_chunk(Uuid::v4(), &name, kAny, {Ev{.data = big}}, true)));
    ASSERT_TRUE(call3->Read(&resp));
    EXPECT_TRUE(resp.has_success()) << resp.DebugString();
  }
  call3->WritesDone();
  EXPECT_TRUE(call3->Finish().ok());
}

class ReadTest : public ServerTest {
 protected:
  void SetUp() override {
    start({.read_page_size = 3});  // small pages: reads span several
    for (int i = 0; i < 10; ++i) events_.push_back(Ev{.type = "T" + std::to_string(i), .data = std::to_string(i)});
    before_ = now_ticks();
    ASSERT_TRUE(append("r-1", kNoStream, events_).resp.has_success());
    after_ = now_ticks();
  }
  std::vector<Ev> events_;
  int64_t before_ = 0;
  int64_t after_ = 0;
};

TEST_F(ReadTest, ForwardsBackwardsFromRevisionWithCount) {
  EXPECT_EQ(revisions(read("r-1", false, std::nullopt, 100)), (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(revisions(read("r-1", true, std::nullopt, 100, /*from_end=*/true)),
            (std::vector<uint64_t>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(revisions(read("r-1", false, 4, 5)), (std::vector<uint64_t>{4, 5, 6, 7, 8}));
  EXPECT_EQ(revisions(read("r-1", true, 4, 100)), (std::vector<uint64_t>{4, 3, 2, 1, 0}));
  EXPECT_EQ(revisions(read("r-1", true, std::nullopt, 1, true)), (std::vector<uint64_t>{9}));
  EXPECT_EQ(revisions(read("r-1", false, 20, 5)), std::vector<uint64_t>{});
  EXPECT_EQ(revisions(read("r-1", false, std::nullopt, 0)), std::vector<uint64_t>{});
}

TEST_F(ReadTest, RecordedEventFields) {
  auto msgs = read("r-1", false, 2, 1, false, /*string_ids=*/true);
  ASSERT_EQ(msgs.size(), 1u);
  const auto& e = msgs[0].event().event();
  EXPECT_EQ(e.id().string(), events_[2].id.to_string());
  EXPECT_EQ(e.stream_identifier().stream_name(), "r-1");
  EXPECT_EQ(e.stream_revision(), 2u);
  EXPECT_EQ(e.prepare_position(), e.commit_position());
  EXPECT_EQ(msgs[0].event().commit_position(), e.commit_position());
  EXPECT_EQ(e.metadata().at("type"), "T2");
  EXPECT_EQ(e.metadata().at("content-type"), "application/json");
  int64_t created = std::stoll(e.metadata().at("created"));
  EXPECT_GE(created, before_ - 10'000'000);  // 100 ns ticks since 1970 (1 s slack)
  EXPECT_LE(created, after_ + 10'000'000);
  EXPECT_EQ(e.custom_metadata(), events_[2].metadata);
  EXPECT_EQ(e.data(), "2");

  msgs = read("r-1", false, 2, 1);  // structured ids by default
  ASSERT_EQ(msgs.size(), 1u);
  const auto& id = msgs[0].event().event().id();
  ASSERT_TRUE(id.has_structured());
  EXPECT_EQ(Uuid::from_halves(id.structured().most_significant_bits(), id.structured().least_significant_bits()),
            events_[2].id);
}

TEST_F(ReadTest, LastStreamPositionWithCompatibility) {
  auto msgs = read("r-1", false, std::nullopt, 3, false, false, /*compatibility=*/1);
  ASSERT_EQ(msgs.size(), 4u);
  ASSERT_EQ(msgs.back().content_case(), streams::ReadResp::kLastStreamPosition);
  EXPECT_EQ(msgs.back().last_stream_position(), 9u);
  msgs = read("r-1", false, std::nullopt, 3);
  EXPECT_EQ(msgs.size(), 3u);
}

TEST_F(ReadTest, MissingStreamAnswersStreamNotFound) {
  auto msgs = read("nope", false, std::nullopt, 10, false, false, 1);
  ASSERT_EQ(msgs.size(), 1u);
  ASSERT_TRUE(msgs[0].has_stream_not_found());
  EXPECT_EQ(msgs[0].stream_not_found().stream_identifier().stream_name(), "nope");
  msgs = read("nope", true, std::nullopt, 10, true);
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].has_stream_not_found());
}

TEST_F(ReadTest, DeletedStreamIsFailedPrecondition) {
  ASSERT_EQ(store_->tombstone("r-1", ExpectAny{}).status, store::AppendStatus::kSuccess);
  grpc::Status st;
  read("r-1", false, std::nullopt, 10, false, false, 0, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ServerTest, ShutdownFinishesOpenBatchAppendCalls) {
  grpc::ClientContext ctx;
  auto stream = streams_->BatchAppend(&ctx);
  const std::string s = "sd";
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &s, kAny, {Ev{}}, true)));
  streams::BatchAppendResp resp;
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_TRUE(resp.has_success());
  auto t0 = std::chrono::steady_clock::now();
  server_->shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));  // not the 5 s grace
  EXPECT_FALSE(stream->Read(&resp));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerTest, ConcurrentAppendAndBatchAppendCalls) {
  constexpr int kThreads = 4;
  constexpr int kAppends = 40;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string a = "c-append-" + std::to_string(t);
      const std::string b = "c-batch-" + std::to_string(t);
      grpc::ClientContext ctx;
      auto stream = streams_->BatchAppend(&ctx);
      for (int i = 0; i < kAppends; ++i) {
        Expected e = i == 0 ? kNoStream : exact(static_cast<uint64_t>(2 * i - 1));
        auto r = append(a, e, {Ev{}, Ev{}});
        if (!r.resp.has_success() || r.resp.success().current_revision() != (2 * static_cast<uint64_t>(i)) + 1) {
          ++failures;
        }
        if (!stream->Write(batch_chunk(Uuid::v4(), &b, e, {Ev{}, Ev{}}, true))) ++failures;
      }
      for (int i = 0; i < kAppends; ++i) {
        streams::BatchAppendResp resp;
        if (!stream->Read(&resp) || !resp.has_success()) ++failures;
      }
      stream->WritesDone();
      if (!stream->Finish().ok()) ++failures;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(revisions(read("c-append-" + std::to_string(t), false, std::nullopt, 1000)).size(), 2u * kAppends);
    EXPECT_EQ(revisions(read("c-batch-" + std::to_string(t), false, std::nullopt, 1000)).size(), 2u * kAppends);
  }
}

TEST_F(ServerTest, ShutdownUnderLoadAnswersEveryAppend) {
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0};
  std::atomic<int> hung{0};
  std::vector<std::thread> threads;
  threads.reserve(3);
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      const std::string s = "load-" + std::to_string(t);
      while (!stop.load()) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        streams::AppendResp resp;
        auto writer = streams_->Append(&ctx, &resp);
        streams::AppendReq req;
        req.mutable_options()->mutable_stream_identifier()->set_stream_name(s);
        req.mutable_options()->mutable_any();
        writer->Write(req);
        streams::AppendReq m;
        fill(Ev{}, m.mutable_proposed_message());
        writer->Write(m);
        writer->WritesDone();
        auto st = writer->Finish();
        if (st.ok() && resp.has_success()) {
          ++answered;
        } else if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
          ++hung;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  server_->shutdown();
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_GT(answered.load(), 0);
  EXPECT_EQ(hung.load(), 0);
  // Every success reported is in the store.
  uint64_t stored = 0;
  for (int t = 0; t < 3; ++t) {
    auto page =
        store_->read("load-" + std::to_string(t), store::ReadFrom::start(), 1'000'000, store::ReadDirection::kForwards);
    ASSERT_TRUE(page.ok());
    stored += page->events.size();
  }
  EXPECT_GE(stored, static_cast<uint64_t>(answered.load()));
}

// The official clients ping every 10 s; gRPC's server defaults answer such pings on an idle
// connection with GOAWAY too_many_pings, which kills open calls. Here the client pings every
// 500 ms (stricter) while a BatchAppend call sits idle.
TEST_F(ServerTest, FrequentKeepalivePingsDoNotKillIdleCalls) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 500);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  auto channel = grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args);
  auto stub = streams::Streams::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->BatchAppend(&ctx);
  const std::string s = "ka";
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &s, kAny, {Ev{}}, true)));
  streams::BatchAppendResp resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));  // ~7 pings, no data
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &s, kAny, {Ev{}}, true)));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_TRUE(resp.has_success());
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

struct V2Req {
  std::string stream;
  std::optional<int64_t> expected;
  std::vector<Ev> events;
};

struct SessionCall {
  grpc::Status status;
  v2::AppendSessionResponse resp;
};

class AppendSessionTest : public ServerTest {
 protected:
  SessionCall session(const std::vector<V2Req>& reqs) {
    SessionCall out;
    grpc::ClientContext ctx;
    auto writer = v2_->AppendSession(&ctx, &out.resp);
    for (const auto& r : reqs) {
      v2::AppendRequest req;
      req.set_stream(r.stream);
      if (r.expected) req.set_expected_revision(*r.expected);
      for (const auto& e : r.events) {
        auto* rec = req.add_records();
        rec->set_record_id(e.id.to_string());
        rec->mutable_schema()->set_name(e.type);
        rec->mutable_schema()->set_format(v2::SCHEMA_FORMAT_JSON);
        rec->set_data(e.data);
        (*rec->mutable_properties())["$correlationId"].set_string_value("corr-1");
      }
      writer->Write(req);
    }
    writer->WritesDone();
    out.status = writer->Finish();
    return out;
  }
};

TEST_F(AppendSessionTest, AppendsSeveralStreams) {
  ASSERT_TRUE(append("v-b", kNoStream, {Ev{}}).resp.has_success());
  auto r = session({{"v-a", -1, {Ev{}, Ev{}}}, {"v-b", 0, {Ev{}}}, {"v-c", std::nullopt, {Ev{}}}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.resp.output_size(), 3);
  EXPECT_EQ(r.resp.output(0).stream(), "v-a");
  EXPECT_EQ(r.resp.output(0).stream_revision(), 1);
  EXPECT_EQ(r.resp.output(1).stream_revision(), 1);
  EXPECT_EQ(r.resp.output(2).stream_revision(), 0);
  EXPECT_GT(r.resp.position(), 0);

  // v1 readers see the properties as JSON metadata, with the schema keys.
  auto msgs = read("v-a", false, std::nullopt, 10);
  ASSERT_EQ(msgs.size(), 2u);
  const auto& e = msgs[0].event().event();
  EXPECT_EQ(e.metadata().at("type"), "Thing");
  EXPECT_EQ(e.metadata().at("content-type"), "application/json");
  EXPECT_NE(e.custom_metadata().find(R"("$correlationId":"corr-1")"), std::string::npos) << e.custom_metadata();
  EXPECT_NE(e.custom_metadata().find(R"("$schema.name":"Thing")"), std::string::npos) << e.custom_metadata();
  EXPECT_NE(e.custom_metadata().find(R"("$schema.format":"Json")"), std::string::npos) << e.custom_metadata();

  // no_stream on a stream the session created: a conflict.
  auto again = session({{"v-c", -1, {}}});
  EXPECT_EQ(again.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);  // exists now
}

TEST_F(AppendSessionTest, ConflictAbortsTheWholeSession) {
  ASSERT_TRUE(append("v-x", kNoStream, {Ev{}, Ev{}}).resp.has_success());  // revision 1
  auto r = session({{"v-new", -1, {Ev{}}}, {"v-x", 5, {Ev{}}}});
  ASSERT_EQ(r.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  google::rpc::Status st;
  ASSERT_TRUE(st.ParseFromString(r.status.error_details()));
  ASSERT_EQ(st.details_size(), 2);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(st.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "STREAM_REVISION_CONFLICT");
  EXPECT_EQ(info.domain(), "streams");
  v2::errors::StreamRevisionConflictErrorDetails d;
  ASSERT_TRUE(st.details(1).UnpackTo(&d));
  EXPECT_EQ(d.stream(), "v-x");
  EXPECT_EQ(d.expected_revision(), 5);
  EXPECT_EQ(d.actual_revision(), 1);
  // Nothing of the session was written.
  auto msgs = read("v-new", false, std::nullopt, 10);
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].has_stream_not_found());

  r = session({{"v-missing", -4, {Ev{}}}});
  ASSERT_EQ(r.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(st.ParseFromString(r.status.error_details()));
  ASSERT_TRUE(st.details(1).UnpackTo(&d));
  EXPECT_EQ(d.actual_revision(), -1);
  EXPECT_EQ(d.expected_revision(), -4);
}

TEST_F(AppendSessionTest, IdempotentReplayAndStreamTwice) {
  std::vector<Ev> evs{Ev{}, Ev{}};
  auto first = session({{"v-i", -1, evs}});
  ASSERT_TRUE(first.status.ok());
  auto again = session({{"v-i", -1, evs}});
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(again.resp.output(0).stream_revision(), 1);
  EXPECT_EQ(again.resp.output(0).position(), first.resp.output(0).position());

  auto twice = session({{"v-t", std::nullopt, {Ev{}}}, {"v-t", std::nullopt, {Ev{}}}});
  EXPECT_EQ(twice.status.error_code(), grpc::StatusCode::ABORTED);
  google::rpc::Status st;
  ASSERT_TRUE(st.ParseFromString(twice.status.error_details()));
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(st.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "STREAM_ALREADY_IN_APPEND_SESSION");
}

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
  auto writer = stub->Append(&ctx, &resp);
  streams::AppendReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  req.mutable_options()->mutable_any();
  writer->Write(req);
  streams::AppendReq m;
  fill(Ev{}, m.mutable_proposed_message());
  writer->Write(m);
  writer->WritesDone();
  out.status = writer->Finish();
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

class ReadAllTest : public ServerTest {
 protected:
  void SetUp() override {
    start({.read_page_size = 3});  // several pages
    for (int i = 0; i < 4; ++i) {
      for (const char* s : {"all-a", "all-b", "all-c"}) {
        auto r = append(s, kAny, {Ev{.data = std::to_string(i)}});
        ASSERT_TRUE(r.resp.has_success());
        positions_.push_back(r.resp.success().position().commit_position());
        streams_of_.emplace_back(s);
      }
    }
  }

  std::vector<streams::ReadResp> read_all(const std::function<void(streams::ReadReq::Options::AllOptions*)>& from,
                                          uint64_t count, bool backwards = false, grpc::Status* status = nullptr) {
    streams::ReadReq req;
    auto* o = req.mutable_options();
    from(o->mutable_all());
    o->set_read_direction(backwards ? streams::ReadReq::Options::Backwards : streams::ReadReq::Options::Forwards);
    o->set_count(count);
    o->mutable_no_filter();
    o->mutable_uuid_option()->mutable_string();
    o->mutable_control_option()->set_compatibility(1);
    grpc::ClientContext ctx;
    auto reader = streams_->Read(&ctx, req);
    std::vector<streams::ReadResp> out;
    streams::ReadResp resp;
    while (reader->Read(&resp)) out.push_back(resp);
    auto s = reader->Finish();
    if (status) {
      *status = s;
    } else {
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    return out;
  }

  static std::vector<uint64_t> positions(const std::vector<streams::ReadResp>& msgs) {
    std::vector<uint64_t> out;
    for (const auto& m : msgs) {
      EXPECT_TRUE(m.has_event()) << m.DebugString();  // $all reads carry events only
      out.push_back(m.event().event().commit_position());
    }
    return out;
  }

  std::vector<uint64_t> positions_;  // in append order = global order
  std::vector<std::string> streams_of_;
};

TEST_F(ReadAllTest, ForwardsFromStartAcrossStreamsInGlobalOrder) {
  auto msgs = read_all([](auto* a) { a->mutable_start(); }, 100);
  EXPECT_EQ(positions(msgs), positions_);
  ASSERT_EQ(msgs.size(), positions_.size());
  for (size_t i = 0; i < msgs.size(); ++i) {
    const auto& e = msgs[i].event();
    EXPECT_EQ(e.event().stream_identifier().stream_name(), streams_of_[i]);
    EXPECT_EQ(e.event().stream_revision(), i / 3);
    EXPECT_EQ(e.commit_position(), positions_[i]);
    EXPECT_EQ(e.event().prepare_position(), positions_[i]);
    EXPECT_EQ(e.event().metadata().at("type"), "Thing");
    EXPECT_EQ(e.event().data(), std::to_string(i / 3));
  }
}

TEST_F(ReadAllTest, FromAPositionInclusiveWithCount) {
  auto msgs = read_all([&](auto* a) { a->mutable_position()->set_commit_position(positions_[4]); }, 5);
  EXPECT_EQ(positions(msgs), std::vector<uint64_t>(positions_.begin() + 4, positions_.begin() + 9));
  msgs = read_all([&](auto* a) { a->mutable_position()->set_commit_position(positions_.back() + 1); }, 10);
  EXPECT_TRUE(msgs.empty());
  msgs = read_all([](auto* a) { a->mutable_end(); }, 10);
  EXPECT_TRUE(msgs.empty());
  msgs = read_all([](auto* a) { a->mutable_start(); }, 0);
  EXPECT_TRUE(msgs.empty());
}

TEST_F(ReadAllTest, BackwardsIsNotServed) {
  grpc::Status st;
  read_all([](auto* a) { a->mutable_end(); }, 10, /*backwards=*/true, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

// ---- TLS ----

using server::testing::make_self_signed;
using server::testing::SelfSigned;
using server::testing::slurp;

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

// ---- durability across shutdown ----

// What SIGINT/SIGTERM do in serve-store (server shutdown, then store close), under appends from
// several Append and BatchAppend callers: every event a client saw acknowledged is in the file
// after it is reopened.
TEST(ServerDurabilityTest, EveryAcknowledgedAppendSurvivesShutdownAndReopen) {
  const auto dir = std::filesystem::temp_directory_path() / ("ki-server-durable-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "events.db").string();
  auto store = store::EventStore::open({.path = path}).value();
  auto server = KurrentServer::start(*store, {.listen = "127.0.0.1:0"}).value();
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());

  std::mutex mu;
  std::map<std::string, std::vector<Uuid>> acked;  // stream -> acknowledged ids
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      auto stub = streams::Streams::NewStub(channel);
      const std::string s = "dur-append-" + std::to_string(t);
      while (!stop.load()) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        streams::AppendResp resp;
        auto writer = stub->Append(&ctx, &resp);
        streams::AppendReq req;
        req.mutable_options()->mutable_stream_identifier()->set_stream_name(s);
        req.mutable_options()->mutable_any();
        writer->Write(req);
        std::vector<Ev> evs(2);
        for (const auto& e : evs) {
          streams::AppendReq m;
          fill(e, m.mutable_proposed_message());
          writer->Write(m);
        }
        writer->WritesDone();
        if (writer->Finish().ok() && resp.has_success()) {
          std::lock_guard lock(mu);
          for (const auto& e : evs) acked[s].push_back(e.id);
        }
      }
    });
  }
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      auto stub = streams::Streams::NewStub(channel);
      const std::string s = "dur-batch-" + std::to_string(t);
      while (!stop.load()) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        auto call = stub->BatchAppend(&ctx);
        std::map<std::string, std::vector<Ev>> sent;  // correlation id -> events
        bool open = true;
        for (int i = 0; i < 50 && open && !stop.load(); ++i) {
          Uuid cid = Uuid::v4();
          std::vector<Ev> evs(3);
          streams::BatchAppendReq req;
          req.mutable_correlation_id()->set_string(cid.to_string());
          req.mutable_options()->mutable_stream_identifier()->set_stream_name(s);
          req.mutable_options()->mutable_any();
          for (const auto& e : evs) fill(e, req.add_proposed_messages());
          req.set_is_final(true);
          sent[cid.to_string()] = evs;
          open = call->Write(req);
        }
        call->WritesDone();
        streams::BatchAppendResp resp;
        while (call->Read(&resp)) {
          if (!resp.has_success()) continue;
          std::lock_guard lock(mu);
          for (const auto& e : sent[resp.correlation_id().string()]) acked[s].push_back(e.id);
        }
        call->Finish();
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  server->shutdown();
  store->close();
  stop = true;
  for (auto& th : threads) th.join();
  server.reset();
  store.reset();

  auto reopened = store::EventStore::open({.path = path}).value();
  size_t total = 0;
  for (const auto& [stream, ids] : acked) {
    auto page = reopened->read(stream, store::ReadFrom::start(), 10'000'000, store::ReadDirection::kForwards);
    ASSERT_TRUE(page.ok()) << page.status();
    std::set<Uuid> stored;
    for (const auto& e : page->events) stored.insert(e.id);
    for (const auto& id : ids) EXPECT_TRUE(stored.count(id)) << stream << " lost acknowledged " << id.to_string();
    total += ids.size();
  }
  EXPECT_GT(total, 0u);
  reopened->close();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kingest::server
