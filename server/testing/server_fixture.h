// The server tests' fixture: a server on an ephemeral loopback port over an in-memory store, the
// generated stubs, and helpers to build requests. Shared by the server_*_test.cc files.
#pragma once

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

namespace kingest::server::test {

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
inline void fill(const Ev& e, Msg* m, bool string_id = true) {
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
inline Expected exact(uint64_t r) { return {Exp::kExact, r}; }
constexpr Expected kNoStream{Exp::kNoStream};
constexpr Expected kAny{Exp::kAny};
constexpr Expected kExists{Exp::kExists};

inline int64_t now_ticks() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
             .count() /
         100;
}

// Sets `expected` on the options of an Append or a BatchAppend request; `set_exact` sets an exact
// revision (the two requests name that field differently).
template <typename Options, typename SetExact>
inline void set_expected(Options* o, Expected expected, SetExact set_exact) {
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
      set_exact(expected.revision);
      break;
  }
}

// One Append call on `stub` with `ctx`: to `stream`, expected any, one event. Its status; the
// answer goes to `*resp`.
inline grpc::Status append_one(streams::Streams::Stub& stub, grpc::ClientContext& ctx, const std::string& stream,
                               streams::AppendResp* resp) {
  auto writer = stub.Append(&ctx, resp);
  streams::AppendReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  req.mutable_options()->mutable_any();
  writer->Write(req);
  streams::AppendReq m;
  fill(Ev{}, m.mutable_proposed_message());
  writer->Write(m);
  writer->WritesDone();
  return writer->Finish();
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
    set_expected(o, expected, [o](uint64_t r) { o->set_revision(r); });
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
      set_expected(o, expected, [o](uint64_t r) { o->set_stream_position(r); });
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
    return read_request(req, status);
  }

  // Every message of the Read call `req`; its status goes to `*status`, or must be OK.
  std::vector<streams::ReadResp> read_request(const streams::ReadReq& req, grpc::Status* status = nullptr) {
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

inline std::vector<std::string> method_names(const features::SupportedMethods& m) {
  std::vector<std::string> out;
  for (const auto& x : m.methods()) out.push_back(x.method_name());
  return out;
}

}  // namespace kingest::server::test
