// Append and BatchAppend through the generated stubs: every expected-revision kind, errors and their
// details, size and pending limits, concurrency, shutdown and keepalive.
#include "core/testing/eventually.h"
#include "server/testing/server_fixture.h"

namespace kingest::server::test {
namespace {

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
  // A store that cannot write (here: closed, as a full disk would fail it): a detail the clients do
  // not map to a marker error, so they keep the message, which names the stream and the cause.
  store_->close();
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &s, kAny, {Ev{}}, true)));
  expect_one_detail(google::rpc::UNAVAILABLE, "google.protobuf.Empty");
  EXPECT_NE(resp.error().message().find("batch append to d-bad: the store could not write it: "), std::string::npos)
      << resp.error().message();
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
  EXPECT_EQ(resp.error().details(0).type_url(), "type.googleapis.com/google.protobuf.Empty");
  EXPECT_NE(resp.error().message().find("too many bytes in unfinished correlation ids"), std::string::npos)
      << resp.error().message();
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
        auto st = append_one(*streams_, ctx, s, &resp);
        if (st.ok() && resp.has_success()) {
          ++answered;
        } else if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
          ++hung;
        }
      }
    });
  }
  // Shut down under load: once appends are being answered, with more on the way.
  EXPECT_TRUE(kingest::testing::eventually([&] { return answered.load() >= 30; }, std::chrono::seconds(30),
                                           "thirty answered appends"));
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
  // A gap in time on purpose: the call must sit idle while the pings go by (~7 of them, no data),
  // and nothing observable marks them.
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  ASSERT_TRUE(stream->Write(batch_chunk(Uuid::v4(), &s, kAny, {Ev{}}, true)));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_TRUE(resp.has_success());
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace kingest::server::test
