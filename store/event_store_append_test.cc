// Appends against expected revisions (exact, no stream, any, stream exists), idempotent retries, and
// positions across streams.
#include "store/testing/event_store_fixture.h"

namespace kingest::store::store_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Modes, EventStoreTest, ::testing::Values(Mode::kFile, Mode::kMemory), mode_name);

TEST_P(EventStoreTest, ExactRevisionAppendsAtTheEnd) {
  auto first = store_->append_sync("s", ExpectNoStream{}, make_events(2));
  ASSERT_EQ(first.status, AppendStatus::kSuccess) << first.message;
  EXPECT_EQ(rev(first), 1u);
  EXPECT_FALSE(first.idempotent);

  auto second = store_->append_sync("s", StreamRevision{1}, make_events(3, "x"));
  ASSERT_EQ(second.status, AppendStatus::kSuccess) << second.message;
  EXPECT_EQ(rev(second), 4u);
  EXPECT_GT(second.position, first.position);

  auto page = read_stream("s");
  EXPECT_TRUE(page.stream_found);
  EXPECT_EQ(revisions(page), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(page.events[4].data, R"({"v":"x2"})");
  EXPECT_EQ(page.events[4].position, second.position);
  EXPECT_EQ(store_->stats().events_written, 5u);
}

TEST_P(EventStoreTest, WrongExactRevisionReportsCurrentAndWritesNothing) {
  ASSERT_EQ(store_->append_sync("s", ExpectNoStream{}, make_events(2)).status, AppendStatus::kSuccess);

  auto ahead = store_->append_sync("s", StreamRevision{3}, make_events(1));
  EXPECT_EQ(ahead.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(rev(ahead), 1u);

  auto behind = store_->append_sync("s", StreamRevision{0}, make_events(1));  // new id at revision 1
  EXPECT_EQ(behind.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(rev(behind), 1u);

  auto missing = store_->append_sync("nope", StreamRevision{0}, make_events(1));
  EXPECT_EQ(missing.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_FALSE(missing.current_revision.has_value());

  EXPECT_EQ(read_stream("s").events.size(), 2u);
  EXPECT_FALSE(read_stream("nope").stream_found);
}

TEST_P(EventStoreTest, NoStreamOnNewStreamCreatesIt) {
  auto r = store_->append_sync("new", ExpectNoStream{}, make_events(1));
  ASSERT_EQ(r.status, AppendStatus::kSuccess) << r.message;
  EXPECT_EQ(rev(r), 0u);
  EXPECT_GT(r.position, 0u);
  EXPECT_FALSE(r.idempotent);
}

TEST_P(EventStoreTest, NoStreamOnExistingStreamWithNewIdsIsWrongExpectedVersion) {
  ASSERT_EQ(store_->append_sync("s", ExpectNoStream{}, make_events(3)).status, AppendStatus::kSuccess);
  auto r = store_->append_sync("s", ExpectNoStream{}, make_events(1, "other"));
  EXPECT_EQ(r.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(rev(r), 2u);
  EXPECT_EQ(read_stream("s").events.size(), 3u);
}

TEST_P(EventStoreTest, AnyAppendsToNewAndExistingStreams) {
  auto a = store_->append_sync("s", ExpectAny{}, make_events(2));
  ASSERT_EQ(a.status, AppendStatus::kSuccess) << a.message;
  EXPECT_EQ(rev(a), 1u);
  auto b = store_->append_sync("s", ExpectAny{}, make_events(2, "b"));
  ASSERT_EQ(b.status, AppendStatus::kSuccess) << b.message;
  EXPECT_EQ(rev(b), 3u);
  EXPECT_FALSE(b.idempotent);
  EXPECT_EQ(read_stream("s").events.size(), 4u);
}

TEST_P(EventStoreTest, StreamExistsFailsOnMissingAndSucceedsOnExisting) {
  auto missing = store_->append_sync("s", ExpectStreamExists{}, make_events(1));
  EXPECT_EQ(missing.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_FALSE(missing.current_revision.has_value());
  EXPECT_FALSE(read_stream("s").stream_found);

  ASSERT_EQ(store_->append_sync("s", ExpectNoStream{}, make_events(1)).status, AppendStatus::kSuccess);
  auto existing = store_->append_sync("s", ExpectStreamExists{}, make_events(2));
  ASSERT_EQ(existing.status, AppendStatus::kSuccess) << existing.message;
  EXPECT_EQ(rev(existing), 2u);
}

TEST_P(EventStoreTest, IdempotentReappendAtExactRevision) {
  auto batch1 = make_events(3, "a");
  auto batch2 = make_events(2, "b");
  auto r1 = store_->append_sync("s", ExpectNoStream{}, batch1);
  ASSERT_EQ(r1.status, AppendStatus::kSuccess);
  auto r2 = store_->append_sync("s", StreamRevision{2}, batch2);
  ASSERT_EQ(r2.status, AppendStatus::kSuccess);
  ASSERT_EQ(rev(r2), 4u);
  const auto written = store_->stats().events_written;

  // Replay of the second append: same ids at revisions 3..4.
  auto again2 = store_->append_sync("s", StreamRevision{2}, batch2);
  EXPECT_EQ(again2.status, AppendStatus::kSuccess) << again2.message;
  EXPECT_TRUE(again2.idempotent);
  EXPECT_EQ(rev(again2), 4u);
  EXPECT_EQ(again2.position, r2.position);

  // Replay of the first append (no_stream on an existing stream compares from revision 0).
  auto again1 = store_->append_sync("s", ExpectNoStream{}, batch1);
  EXPECT_EQ(again1.status, AppendStatus::kSuccess) << again1.message;
  EXPECT_TRUE(again1.idempotent);
  EXPECT_EQ(rev(again1), 2u);
  EXPECT_EQ(again1.position, r1.position);

  // A replay of only a prefix of the first append also matches.
  auto prefix = store_->append_sync("s", ExpectNoStream{}, {batch1[0], batch1[1]});
  EXPECT_EQ(prefix.status, AppendStatus::kSuccess);
  EXPECT_TRUE(prefix.idempotent);
  EXPECT_EQ(rev(prefix), 1u);

  EXPECT_EQ(store_->stats().events_written, written);
  EXPECT_EQ(read_stream("s").events.size(), 5u);
}

TEST_P(EventStoreTest, PartialOverlapWithADifferentIdIsWrongExpectedVersion) {
  auto batch1 = make_events(3, "a");
  auto batch2 = make_events(2, "b");
  ASSERT_EQ(store_->append_sync("s", ExpectNoStream{}, batch1).status, AppendStatus::kSuccess);
  ASSERT_EQ(store_->append_sync("s", StreamRevision{2}, batch2).status, AppendStatus::kSuccess);

  // First id matches, a later one differs.
  auto later = store_->append_sync("s", StreamRevision{2}, {batch2[0], make_event("different")});
  EXPECT_EQ(later.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(rev(later), 4u);
  // First id differs.
  auto first = store_->append_sync("s", StreamRevision{2}, {make_event("different"), batch2[1]});
  EXPECT_EQ(first.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(rev(first), 4u);
  // Every proposed id matches as far as the stream goes, but the stream ends part-way.
  auto beyond = store_->append_sync("s", StreamRevision{2}, {batch2[0], batch2[1], make_event("new")});
  EXPECT_EQ(beyond.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(rev(beyond), 4u);
  // no_stream replay whose second id differs.
  auto ns = store_->append_sync("s", ExpectNoStream{}, {batch1[0], make_event("x")});
  EXPECT_EQ(ns.status, AppendStatus::kWrongExpectedVersion);

  EXPECT_EQ(read_stream("s").events.size(), 5u);
}

TEST_P(EventStoreTest, AnyRetryOfARecentAppendIsIdempotent) {
  auto batch = make_events(2, "a");
  auto r1 = store_->append_sync("s", ExpectAny{}, batch);
  ASSERT_EQ(r1.status, AppendStatus::kSuccess);
  ASSERT_EQ(store_->append_sync("s", ExpectAny{}, make_events(1, "b")).status, AppendStatus::kSuccess);

  auto retry = store_->append_sync("s", ExpectAny{}, batch);
  EXPECT_EQ(retry.status, AppendStatus::kSuccess);
  EXPECT_TRUE(retry.idempotent);
  EXPECT_EQ(rev(retry), 1u);
  EXPECT_EQ(retry.position, r1.position);

  // Same first id but a different second one: not a retry, appended at the end.
  auto mixed = store_->append_sync("s", ExpectAny{}, {batch[0], make_event("c")});
  EXPECT_EQ(mixed.status, AppendStatus::kSuccess);
  EXPECT_FALSE(mixed.idempotent);
  EXPECT_EQ(rev(mixed), 4u);

  // The same id in another stream is a different event.
  auto other = store_->append_sync("t", ExpectAny{}, batch);
  EXPECT_EQ(other.status, AppendStatus::kSuccess);
  EXPECT_FALSE(other.idempotent);
  EXPECT_EQ(rev(other), 1u);
}

TEST_P(EventStoreTest, EmptyAppendReportsCurrentRevision) {
  auto none = store_->append_sync("s", ExpectNoStream{}, {});
  EXPECT_EQ(none.status, AppendStatus::kSuccess);
  EXPECT_FALSE(none.current_revision.has_value());
  EXPECT_FALSE(read_stream("s").stream_found);

  auto w = store_->append_sync("s", ExpectNoStream{}, make_events(2));
  ASSERT_EQ(w.status, AppendStatus::kSuccess);
  auto exact = store_->append_sync("s", StreamRevision{1}, {});
  EXPECT_EQ(exact.status, AppendStatus::kSuccess);
  EXPECT_EQ(rev(exact), 1u);
  EXPECT_EQ(exact.position, w.position);
  auto any = store_->append_sync("s", ExpectAny{}, {});
  EXPECT_EQ(any.status, AppendStatus::kSuccess);
  EXPECT_EQ(rev(any), 1u);
  auto wrong = store_->append_sync("s", StreamRevision{5}, {});
  EXPECT_EQ(wrong.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(rev(wrong), 1u);
  EXPECT_EQ(read_stream("s").events.size(), 2u);
}

TEST_P(EventStoreTest, PositionsStrictlyIncreaseAcrossStreams) {
  std::vector<uint64_t> append_positions;
  for (int i = 0; i < 10; ++i) {
    for (const char* s : {"a", "b", "c"}) {
      auto r = store_->append_sync(s, ExpectAny{}, make_events(2));
      ASSERT_EQ(r.status, AppendStatus::kSuccess);
      if (!append_positions.empty()) {
        EXPECT_GT(r.position, append_positions.back());
      }
      append_positions.push_back(r.position);
    }
  }
  auto all = store_->read_all(0, 1000);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 60u);
  for (size_t i = 1; i < all->size(); ++i) {
    EXPECT_GT((*all)[i].position, (*all)[i - 1].position);
  }
  EXPECT_GT((*all)[0].position, 0u);
  EXPECT_EQ((*all)[1].stream, "a");
  EXPECT_EQ((*all)[1].position, append_positions[0]);
  EXPECT_EQ((*all)[2].stream, "b");
  EXPECT_EQ((*all)[59].stream, "c");
  EXPECT_EQ((*all)[59].revision.value(), 19u);

  auto page = store_->read_all((*all)[9].position, 5);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 5u);
  EXPECT_EQ((*page)[0].position, (*all)[10].position);
  EXPECT_EQ((*page)[4].position, (*all)[14].position);
  auto tail = store_->read_all((*all)[59].position, 10);
  ASSERT_TRUE(tail.ok());
  EXPECT_TRUE(tail->empty());
}

}  // namespace
}  // namespace kingest::store::store_testing
