// v2 AppendRecords: many streams interleaved in one unary request, checks apart from the records,
// all or nothing, every failing check reported at once.
#include "server/testing/server_fixture.h"

namespace kingest::server::test {
namespace {

namespace v2err = ::kurrentdb::protocol::v2::streams::errors;

struct Rec {
  std::string stream;
  Ev ev{};
};
struct Check {
  std::string stream;
  int64_t expected;
};

struct RecordsCall {
  grpc::Status status;
  v2::AppendRecordsResponse resp;
  google::rpc::Status detail;  // parsed grpc-status-details-bin
  std::multimap<std::string, std::string> trailers;

  [[nodiscard]] std::string reason() const {
    for (const auto& any : detail.details()) {
      google::rpc::ErrorInfo info;
      if (any.UnpackTo(&info)) return info.reason() + "/" + info.domain();
    }
    return {};
  }
  template <typename D>
  [[nodiscard]] std::optional<D> details() const {
    for (const auto& any : detail.details()) {
      D d;
      if (any.Is<D>() && any.UnpackTo(&d)) return d;
    }
    return std::nullopt;
  }
};

class AppendRecordsTest : public ServerTest {
 protected:
  RecordsCall records(const std::vector<Rec>& recs, const std::vector<Check>& checks = {}) {
    v2::AppendRecordsRequest req;
    for (const auto& r : recs) {
      auto* rec = req.add_records();
      rec->set_stream(r.stream);
      rec->set_record_id(r.ev.id.to_string());
      rec->mutable_schema()->set_name(r.ev.type);
      rec->mutable_schema()->set_format(v2::SCHEMA_FORMAT_JSON);
      rec->set_data(r.ev.data);
    }
    for (const auto& c : checks) {
      auto* s = req.add_checks()->mutable_stream_state();
      s->set_stream(c.stream);
      s->set_expected_state(c.expected);
    }
    RecordsCall out;
    grpc::ClientContext ctx;
    out.status = v2_->AppendRecords(&ctx, req, &out.resp);
    if (!out.status.error_details().empty()) {
      EXPECT_TRUE(out.detail.ParseFromString(out.status.error_details()));
    }
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
      out.trailers.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
    return out;
  }

  bool not_found(const std::string& stream) {
    auto msgs = read(stream, false, std::nullopt, 10);
    return msgs.size() == 1 && msgs[0].has_stream_not_found();
  }
};

TEST_F(AppendRecordsTest, ServerFeaturesListsAppendRecords) {
  auto listed = [&] {
    grpc::ClientContext ctx;
    features::SupportedMethods resp;
    EXPECT_TRUE(features_->GetSupportedMethods(&ctx, pb::Empty{}, &resp).ok());
    for (const auto& m : resp.methods()) {
      if (m.method_name() == "appendrecords" && m.service_name() == "kurrentdb.protocol.v2.streams.streamsservice") {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(listed());
  start({.hide_append_records = true});
  EXPECT_FALSE(listed());
}

TEST_F(AppendRecordsTest, InterleavedStreamsKeepTheRequestOrder) {
  ASSERT_TRUE(append("r-b", kNoStream, {Ev{}}).resp.has_success());  // r-b at revision 0
  std::vector<Rec> recs{{"r-a"}, {"r-b"}, {"r-a"}, {"r-c"}, {"r-b"}, {"r-a"}};
  auto r = records(recs, {{"r-b", 0}, {"r-a", -1}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  // One revision per stream written, its last one; in the order of the streams' first records.
  ASSERT_EQ(r.resp.revisions_size(), 3);
  EXPECT_EQ(r.resp.revisions(0).stream(), "r-a");
  EXPECT_EQ(r.resp.revisions(0).revision(), 2);
  EXPECT_EQ(r.resp.revisions(1).stream(), "r-b");
  EXPECT_EQ(r.resp.revisions(1).revision(), 2);
  EXPECT_EQ(r.resp.revisions(2).stream(), "r-c");
  EXPECT_EQ(r.resp.revisions(2).revision(), 0);

  // The log holds the records in the request's order; the response's position is the last one's.
  auto all = store_->read_all(0, 100);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 7u);
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ((*all)[i + 1].id, recs[i].ev.id) << i;
    EXPECT_EQ((*all)[i + 1].stream, recs[i].stream) << i;
  }
  EXPECT_EQ(r.resp.position(), int64_t(all->back().position));
  EXPECT_EQ(revisions(read("r-a", false, std::nullopt, 10)), (std::vector<uint64_t>{0, 1, 2}));
}

TEST_F(AppendRecordsTest, ChecksMayNameStreamsWithoutRecords) {
  ASSERT_TRUE(append("r-guard", kNoStream, {Ev{}, Ev{}}).resp.has_success());  // revision 1
  auto r = records({{"r-w"}}, {{"r-guard", 1}, {"r-none", -1}, {"r-guard", -4}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.resp.revisions_size(), 1);  // only the stream written
  EXPECT_EQ(r.resp.revisions(0).stream(), "r-w");
  EXPECT_EQ(r.resp.revisions(0).revision(), 0);
  EXPECT_TRUE(not_found("r-none"));
}

TEST_F(AppendRecordsTest, EveryFailingCheckIsReportedAndNothingIsWritten) {
  ASSERT_TRUE(append("r-x", kNoStream, {Ev{}, Ev{}}).resp.has_success());  // revision 1
  ASSERT_TRUE(append("r-y", kNoStream, {Ev{}}).resp.has_success());        // revision 0
  auto r = records({{"r-new"}, {"r-x"}, {"r-y"}, {"r-ok"}},
                   {{"r-new", -1}, {"r-x", 5}, {"r-y", -1}, {"r-missing", -4}, {"r-ok", -2}});
  ASSERT_EQ(r.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(r.reason(), "APPEND_CONSISTENCY_VIOLATION/streams");
  auto d = r.details<v2err::AppendConsistencyViolationErrorDetails>();
  ASSERT_TRUE(d);
  ASSERT_EQ(d->violations_size(), 3);
  struct Want {
    int32_t index;
    std::string stream;
    int64_t expected, actual;
  };
  std::vector<Want> want{{1, "r-x", 5, 1}, {2, "r-y", -1, 0}, {3, "r-missing", -4, -1}};
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& v = d->violations(int(i));
    EXPECT_EQ(v.check_index(), want[i].index);
    EXPECT_EQ(v.stream_state().stream(), want[i].stream);
    EXPECT_EQ(v.stream_state().expected_state(), want[i].expected);
    EXPECT_EQ(v.stream_state().actual_state(), want[i].actual);
  }
  // All or nothing: the records whose checks held were not written either.
  EXPECT_TRUE(not_found("r-new"));
  EXPECT_TRUE(not_found("r-ok"));
  EXPECT_EQ(revisions(read("r-x", false, std::nullopt, 10)), (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(revisions(read("r-y", false, std::nullopt, 10)), (std::vector<uint64_t>{0}));
}

TEST_F(AppendRecordsTest, ChecksAreExactNoIdempotentReappend) {
  std::vector<Rec> recs{{"r-i"}, {"r-i"}};
  ASSERT_TRUE(records(recs, {{"r-i", -1}}).status.ok());
  auto again = records(recs, {{"r-i", -1}});
  ASSERT_EQ(again.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  auto d = again.details<v2err::AppendConsistencyViolationErrorDetails>();
  ASSERT_TRUE(d);
  ASSERT_EQ(d->violations_size(), 1);
  EXPECT_EQ(d->violations(0).stream_state().actual_state(), 1);
  // Without a check the same records are written again (expected ANY).
  auto any = records(recs);
  ASSERT_TRUE(any.status.ok());
  EXPECT_EQ(any.resp.revisions(0).revision(), 3);
}

TEST_F(AppendRecordsTest, TombstonedStreams) {
  ASSERT_TRUE(append("r-dead", kNoStream, {Ev{}}).resp.has_success());
  ASSERT_EQ(store_->tombstone("r-dead", ExpectAny{}).status, store::AppendStatus::kSuccess);
  // A record to it, no check: a violation with expected ANY.
  auto r = records({{"r-live"}, {"r-dead"}});
  ASSERT_EQ(r.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  auto d = r.details<v2err::AppendConsistencyViolationErrorDetails>();
  ASSERT_TRUE(d);
  ASSERT_EQ(d->violations_size(), 1);
  EXPECT_EQ(d->violations(0).check_index(), -1);
  EXPECT_EQ(d->violations(0).stream_state().stream(), "r-dead");
  EXPECT_EQ(d->violations(0).stream_state().expected_state(), -2);
  EXPECT_EQ(d->violations(0).stream_state().actual_state(), -100);
  EXPECT_TRUE(not_found("r-live"));
  // A check on it fails whatever it expects.
  for (int64_t expected : {int64_t{0}, int64_t{-1}, int64_t{-4}}) {
    r = records({{"r-live"}}, {{"r-dead", expected}});
    ASSERT_EQ(r.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << expected;
    d = r.details<v2err::AppendConsistencyViolationErrorDetails>();
    ASSERT_TRUE(d);
    ASSERT_EQ(d->violations_size(), 1);
    EXPECT_EQ(d->violations(0).check_index(), 0);
    EXPECT_EQ(d->violations(0).stream_state().expected_state(), expected);
    EXPECT_EQ(d->violations(0).stream_state().actual_state(), -100);
  }
}

TEST_F(AppendRecordsTest, BadRequests) {
  auto r = records({});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  r = records({{""}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  r = records({{"r-1"}}, {{"r-1", -3}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r.status.error_message().find("-3"), std::string::npos) << r.status.error_message();
  EXPECT_TRUE(not_found("r-1"));
}

TEST_F(AppendRecordsTest, SizeLimits) {
  start({.max_append_size = 4096, .max_event_size = 2048});
  Rec big{"r-big"};
  big.ev.data = std::string(3000, 'x');
  auto r = records({{"r-small"}, big});
  ASSERT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.reason(), "APPEND_RECORD_SIZE_EXCEEDED/streams");
  auto rd = r.details<v2err::AppendRecordSizeExceededErrorDetails>();
  ASSERT_TRUE(rd);
  EXPECT_EQ(rd->stream(), "r-big");
  EXPECT_EQ(rd->record_id(), big.ev.id.to_string());
  EXPECT_GT(rd->size(), 3000);
  EXPECT_EQ(rd->max_size(), 2048);

  std::vector<Rec> many;
  for (int i = 0; i < 4; ++i) {
    Rec x{"r-many-" + std::to_string(i)};
    x.ev.data = std::string(1500, 'y');
    many.push_back(x);
  }
  r = records(many);
  ASSERT_EQ(r.status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(r.reason(), "APPEND_TRANSACTION_SIZE_EXCEEDED/streams");
  auto td = r.details<v2err::AppendTransactionSizeExceededErrorDetails>();
  ASSERT_TRUE(td);
  EXPECT_GT(td->size(), 6000);
  EXPECT_EQ(td->max_size(), 4096);
  EXPECT_TRUE(not_found("r-small"));
  EXPECT_TRUE(not_found("r-many-0"));
}

TEST_F(AppendRecordsTest, FollowerAnswersNotLeader) {
  start({.follower_of = "10.0.0.1:2113"});
  auto r = records({{"r-f"}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(r.trailers.find("exception")->second, "not-leader");
  EXPECT_EQ(r.trailers.find("leader-endpoint-host")->second, "10.0.0.1");
}

}  // namespace
}  // namespace kingest::server::test
