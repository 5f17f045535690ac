// Reads forwards and backwards from any revision across appends of every length, missing streams,
// every field of a recorded event, and tombstones.
#include "store/testing/event_store_fixture.h"

namespace kingest::store::store_testing {
namespace {

TEST_P(EventStoreTest, ReadsForwardsBackwardsFromRevisionWithMaxCount) {
  ASSERT_EQ(store_->append_sync("s", ExpectNoStream{}, make_events(10)).status, AppendStatus::kSuccess);
  using D = ReadDirection;
  EXPECT_EQ(revisions(read_stream("s", ReadFrom::start(), 3, D::kForwards)), (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(revisions(read_stream("s", ReadFrom::at(StreamRevision{7}), 100, D::kForwards)),
            (std::vector<uint64_t>{7, 8, 9}));
  EXPECT_EQ(revisions(read_stream("s", ReadFrom::end(), 3, D::kBackwards)), (std::vector<uint64_t>{9, 8, 7}));
  EXPECT_EQ(revisions(read_stream("s", ReadFrom::at(StreamRevision{2}), 100, D::kBackwards)),
            (std::vector<uint64_t>{2, 1, 0}));
  EXPECT_EQ(revisions(read_stream("s", ReadFrom::start(), 100, D::kBackwards)), (std::vector<uint64_t>{0}));
  auto after_end = read_stream("s", ReadFrom::end(), 100, D::kForwards);
  EXPECT_TRUE(after_end.stream_found);
  EXPECT_TRUE(after_end.events.empty());
  EXPECT_TRUE(read_stream("s", ReadFrom::at(StreamRevision{20}), 100, D::kForwards).events.empty());
  EXPECT_EQ(revisions(read_stream("s", ReadFrom::at(StreamRevision{20}), 2, D::kBackwards)),
            (std::vector<uint64_t>{9, 8}));
  EXPECT_TRUE(read_stream("s", ReadFrom::start(), 0, D::kForwards).events.empty());
  EXPECT_EQ(read_stream("s", ReadFrom::start(), 1000, D::kForwards).events.size(), 10u);
}

// Streams are indexed per append (a run of consecutive positions): reads must stitch runs of
// different lengths, interleaved with other streams' runs, in both directions, from any revision.
TEST_P(EventStoreTest, ReadsAcrossAppendsOfEveryLength) {
  std::vector<Uuid> ids;  // of stream "s", by revision
  for (int i = 0; i < 12; ++i) {
    auto events = make_events(1 + (i * 5) % 7);  // 1..7 events; more than one INSERT statement holds
    const ExpectedRevision expected =
        ids.empty() ? ExpectedRevision{ExpectNoStream{}} : ExpectedRevision{StreamRevision{ids.size() - 1}};
    for (const auto& e : events) ids.push_back(e.id);
    ASSERT_EQ(store_->append_sync("s", expected, events).status, AppendStatus::kSuccess);
    ASSERT_EQ(store_->append_sync("other", ExpectAny{}, make_events(1 + i % 3)).status, AppendStatus::kSuccess);
  }
  const uint64_t n = ids.size();
  auto check = [&](uint64_t from, uint64_t max, ReadDirection dir) {
    auto r = read_stream("s", ReadFrom::at(StreamRevision{from}), max, dir);
    std::vector<uint64_t> want;
    if (dir == ReadDirection::kForwards) {
      for (uint64_t v = from; v < n && want.size() < max; ++v) want.push_back(v);
    } else {
      for (int64_t v = static_cast<int64_t>(std::min(from, n - 1)); v >= 0 && want.size() < max; --v) {
        want.push_back(static_cast<uint64_t>(v));
      }
    }
    ASSERT_EQ(revisions(r), want) << "from " << from << " max " << max;
    for (const auto& e : r.events) {
      EXPECT_EQ(e.id, ids[e.revision.value()]);
      EXPECT_EQ(e.stream, "s");
    }
  };
  for (uint64_t from = 0; from <= n + 1; ++from) {
    for (uint64_t max : {1, 2, 3, 5, 8, 1000}) {
      check(from, max, ReadDirection::kForwards);
      check(from, max, ReadDirection::kBackwards);
    }
  }
  auto tail = read_stream("s", ReadFrom::end(), 1, ReadDirection::kBackwards);
  ASSERT_EQ(tail.events.size(), 1u);
  EXPECT_EQ(tail.events[0].id, ids.back());

  // Positions increase along the stream; idempotency compares across run boundaries.
  auto all = read_stream("s");
  for (size_t i = 1; i < all.events.size(); ++i) EXPECT_GT(all.events[i].position, all.events[i - 1].position);
  std::vector<ProposedEvent> replay;
  for (uint64_t v = 2; v < 9; ++v) replay.push_back(ProposedEvent{ids[v], "Happened", "application/json", "{}", ""});
  auto again = store_->append_sync("s", StreamRevision{1}, replay);
  EXPECT_EQ(again.status, AppendStatus::kSuccess) << again.message;
  EXPECT_TRUE(again.idempotent);
  EXPECT_EQ(rev(again), 8u);
  EXPECT_EQ(again.position, all.events[8].position);
  auto empty = store_->append_sync("s", StreamRevision{n - 1}, {});
  EXPECT_EQ(empty.position, all.events.back().position);
}

TEST_P(EventStoreTest, MissingStreamIsNotFoundWithoutError) {
  auto r = store_->read("missing", ReadFrom::start(), 10, ReadDirection::kForwards);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->stream_found);
  EXPECT_FALSE(r->stream_deleted);
  EXPECT_TRUE(r->events.empty());
  auto b = store_->read("missing", ReadFrom::end(), 10, ReadDirection::kBackwards);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->stream_found);
}

TEST_P(EventStoreTest, RecordedEventRoundTripsEveryField) {
  ProposedEvent e = make_event(std::string("bin\0ary\xff", 8), "Binary");
  e.content_type = "application/octet-stream";
  e.metadata = "";
  const auto before = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count() / 100;
  auto r = store_->append_sync("round-trip", ExpectNoStream{}, {e});
  const auto after = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count() / 100;
  ASSERT_EQ(r.status, AppendStatus::kSuccess);
  auto page = read_stream("round-trip");
  ASSERT_EQ(page.events.size(), 1u);
  const RecordedEvent& got = page.events[0];
  EXPECT_EQ(got.id, e.id);
  EXPECT_EQ(got.stream, "round-trip");
  EXPECT_EQ(got.revision.value(), 0u);
  EXPECT_EQ(got.position, r.position);
  EXPECT_EQ(got.type, "Binary");
  EXPECT_EQ(got.content_type, "application/octet-stream");
  EXPECT_EQ(got.data, std::string("bin\0ary\xff", 8));
  EXPECT_EQ(got.metadata, "");
  EXPECT_GE(got.created_ticks, before);
  EXPECT_LE(got.created_ticks, after);
}

TEST_P(EventStoreTest, TombstoneDeletesTheStream) {
  ASSERT_EQ(store_->append_sync("s", ExpectNoStream{}, make_events(3)).status, AppendStatus::kSuccess);
  auto wrong = store_->tombstone("s", StreamRevision{1});
  EXPECT_EQ(wrong.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(rev(wrong), 2u);
  EXPECT_FALSE(read_stream("s").stream_deleted);

  auto del = store_->tombstone("s", StreamRevision{2});
  EXPECT_EQ(del.status, AppendStatus::kSuccess) << del.message;

  auto append = store_->append_sync("s", ExpectAny{}, make_events(1));
  EXPECT_EQ(append.status, AppendStatus::kStreamDeleted);
  EXPECT_EQ(store_->append_sync("s", ExpectNoStream{}, make_events(1)).status, AppendStatus::kStreamDeleted);
  auto page = read_stream("s");
  EXPECT_TRUE(page.stream_deleted);
  EXPECT_TRUE(page.events.empty());
  EXPECT_EQ(store_->tombstone("s", ExpectAny{}).status, AppendStatus::kStreamDeleted);

  // A stream that never existed can be tombstoned too; it can never be created afterwards.
  EXPECT_EQ(store_->tombstone("never", ExpectStreamExists{}).status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(store_->tombstone("never", ExpectNoStream{}).status, AppendStatus::kSuccess);
  EXPECT_EQ(store_->append_sync("never", ExpectNoStream{}, make_events(1)).status, AppendStatus::kStreamDeleted);
  EXPECT_TRUE(read_stream("never").stream_deleted);

  // Other streams are untouched.
  EXPECT_EQ(store_->append_sync("other", ExpectNoStream{}, make_events(1)).status, AppendStatus::kSuccess);
}

}  // namespace
}  // namespace kingest::store::store_testing
