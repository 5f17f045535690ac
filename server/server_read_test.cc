// Streams.Read of a stream and of $all.
#include "server/testing/server_fixture.h"

namespace kingest::server::test {
namespace {

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
    return read_request(req, status);
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

}  // namespace
}  // namespace kingest::server::test
