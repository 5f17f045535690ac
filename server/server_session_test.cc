// v2 AppendSession: several streams, all or nothing.
#include "server/testing/server_fixture.h"

namespace kingest::server::test {
namespace {

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

}  // namespace
}  // namespace kingest::server::test
