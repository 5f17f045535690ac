#include "store/event_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/internal/sqlite_event_store.h"

namespace kingest::store {
namespace {

using namespace std::chrono_literals;

enum class Mode { kFile, kMemory };

std::string mode_name(const ::testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::kFile ? "File" : "Memory";
}

ProposedEvent make_event(const std::string& data, const std::string& type = "Happened") {
  ProposedEvent e;
  e.id = Uuid::v4();
  e.type = type;
  e.content_type = "application/json";
  e.data = data;
  e.metadata = R"({"m":1})";
  return e;
}

std::vector<ProposedEvent> make_events(int n, const std::string& prefix = "e") {
  std::vector<ProposedEvent> v;
  for (int i = 0; i < n; ++i) v.push_back(make_event(R"({"v":")" + prefix + std::to_string(i) + R"("})"));
  return v;
}

std::optional<uint64_t> rev(const AppendResult& r) {
  if (!r.current_revision) return std::nullopt;
  return r.current_revision->value();
}

std::vector<uint64_t> revisions(const ReadResult& r) {
  std::vector<uint64_t> out;
  for (const auto& e : r.events) out.push_back(e.revision.value());
  return out;
}

class EventStoreTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ki-store-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = open_store(options());
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  StoreOptions options(std::chrono::microseconds window = 2000us, size_t max = 4096) const {
    StoreOptions o;
    o.in_memory = GetParam() == Mode::kMemory;
    o.path = (dir_ / "events.db").string();
    o.group_commit_window = window;
    o.group_commit_max = max;
    return o;
  }

  // Replaces the fixture's store (closing the old one first: both would use the same file).
  void reopen(const StoreOptions& o) {
    store_.reset();
    store_ = open_store(o);
  }

  static std::unique_ptr<EventStore> open_store(const StoreOptions& o) {
    auto s = EventStore::open(o);
    if (!s.ok()) {
      ADD_FAILURE() << s.status();
      return nullptr;
    }
    return std::move(*s);
  }

  ReadResult read_stream(const std::string& stream, ReadFrom from = ReadFrom::start(), uint64_t max = 10000,
                         ReadDirection dir = ReadDirection::kForwards) {
    auto r = store_->read(stream, from, max, dir);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ReadResult{};
  }

  std::filesystem::path dir_;
  std::unique_ptr<EventStore> store_;
};

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

// Tests that need a database file: an in-memory store has nothing to reopen, and faults are
// injected through a second connection to the file.
class FileEventStoreTest : public EventStoreTest {};

TEST_P(FileEventStoreTest, ReopenAfterCloseKeepsData) {
  auto batch = make_events(3);
  auto r1 = store_->append_sync("s", ExpectNoStream{}, batch);
  ASSERT_EQ(r1.status, AppendStatus::kSuccess);
  ASSERT_EQ(store_->append_sync("t", ExpectNoStream{}, make_events(1)).status, AppendStatus::kSuccess);
  ASSERT_EQ(store_->tombstone("t", ExpectAny{}).status, AppendStatus::kSuccess);
  store_->close();
  reopen(options());
  ASSERT_NE(store_, nullptr);

  auto page = read_stream("s");
  ASSERT_EQ(page.events.size(), 3u);
  EXPECT_EQ(page.events[2].id, batch[2].id);
  EXPECT_EQ(page.events[2].position, r1.position);
  EXPECT_TRUE(read_stream("t").stream_deleted);
  EXPECT_EQ(store_->append_sync("t", ExpectAny{}, make_events(1)).status, AppendStatus::kStreamDeleted);

  auto retry = store_->append_sync("s", ExpectNoStream{}, batch);
  EXPECT_EQ(retry.status, AppendStatus::kSuccess);
  EXPECT_TRUE(retry.idempotent);
  EXPECT_EQ(retry.position, r1.position);

  auto next = store_->append_sync("s", StreamRevision{2}, make_events(1));
  ASSERT_EQ(next.status, AppendStatus::kSuccess);
  EXPECT_EQ(rev(next), 3u);
  EXPECT_GT(next.position, r1.position);
  auto all = store_->read_all(0, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 5u);
  EXPECT_EQ(all->back().position, next.position);
}

// Schema version 1 (every event indexed, last revisions in `streams`) is converted on open.
TEST_P(FileEventStoreTest, OpensAVersion1Database) {
  store_.reset();
  const std::string path = (dir_ / "v1.db").string();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  const char* v1 = R"sql(
    PRAGMA journal_mode=WAL;
    CREATE TABLE streams(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, last_revision INTEGER,
                         deleted INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE events(position INTEGER PRIMARY KEY, stream_id INTEGER NOT NULL, revision INTEGER NOT NULL,
                        event_id BLOB NOT NULL, type TEXT NOT NULL, content_type TEXT NOT NULL, data BLOB NOT NULL,
                        metadata BLOB NOT NULL, created INTEGER NOT NULL);
    CREATE UNIQUE INDEX events_by_stream ON events(stream_id, revision);
    INSERT INTO streams VALUES(1, 'a', 2, 0), (2, 'b', 0, 0), (3, 'gone', 0, 1);
    INSERT INTO events VALUES
      (1, 1, 0, x'00000000000000000000000000000001', 'T', 'application/json', '{}', '', 1),
      (2, 2, 0, x'00000000000000000000000000000002', 'T', 'application/json', '{}', '', 1),
      (3, 1, 1, x'00000000000000000000000000000003', 'T', 'application/json', '{}', '', 1),
      (4, 1, 2, x'00000000000000000000000000000004', 'T', 'application/json', '{}', '', 1),
      (5, 3, 0, x'00000000000000000000000000000005', 'T', 'application/json', '{}', '', 1);
    PRAGMA user_version = 1;
  )sql";
  ASSERT_EQ(sqlite3_exec(raw, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  sqlite3_close(raw);

  StoreOptions o = options();
  o.path = path;
  reopen(o);
  ASSERT_NE(store_, nullptr);
  auto a = read_stream("a");
  EXPECT_EQ(revisions(a), (std::vector<uint64_t>{0, 1, 2}));
  ASSERT_EQ(a.events.size(), 3u);
  EXPECT_EQ(a.events[1].position, 3u);
  auto tail = read_stream("a", ReadFrom::end(), 1, ReadDirection::kBackwards);
  ASSERT_EQ(tail.events.size(), 1u);
  EXPECT_EQ(tail.events[0].position, 4u);
  EXPECT_TRUE(read_stream("gone").stream_deleted);

  auto next = store_->append_sync("a", StreamRevision{2}, make_events(2));
  ASSERT_EQ(next.status, AppendStatus::kSuccess) << next.message;
  EXPECT_EQ(rev(next), 4u);
  EXPECT_EQ(next.position, 7u);
  EXPECT_EQ(store_->append_sync("b", ExpectNoStream{}, make_events(1)).status, AppendStatus::kWrongExpectedVersion);
  const Uuid old_id(Uuid::Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3});
  ProposedEvent old{old_id, "T", "application/json", "{}", ""};
  auto replay = store_->append_sync("a", StreamRevision{0}, {old});
  EXPECT_EQ(replay.status, AppendStatus::kSuccess) << replay.message;
  EXPECT_TRUE(replay.idempotent);
  EXPECT_EQ(replay.position, 3u);
  EXPECT_EQ(store_->append_sync("gone", ExpectAny{}, make_events(1)).status, AppendStatus::kStreamDeleted);
  EXPECT_EQ(store_->append_sync("c", ExpectNoStream{}, make_events(1)).status, AppendStatus::kSuccess);
  auto all = store_->read_all(0, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 8u);

  // Reopened as version 2, it stays readable.
  reopen(o);
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(revisions(read_stream("a")), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
}

TEST_P(FileEventStoreTest, NewerSchemaVersionIsRefused) {
  store_.reset();
  const std::string path = (dir_ / "future.db").string();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  StoreOptions o = options();
  o.path = path;
  auto s = EventStore::open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("schema version 99"), std::string_view::npos) << s.status();
}

TEST_P(EventStoreTest, ThousandConcurrentSingleEventAppendsUseFewTransactions) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 125;
  const auto before = store_->stats();
  std::latch done(kThreads * kPerThread);
  std::atomic<int> successes{0};
  std::mutex mu;
  std::vector<uint64_t> positions;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Half to a stream of their own, half to one shared stream.
        std::string stream = i % 2 == 0 ? "own-" + std::to_string(t) + "-" + std::to_string(i) : "shared";
        ExpectedRevision expected = i % 2 == 0 ? ExpectedRevision{ExpectNoStream{}} : ExpectedRevision{ExpectAny{}};
        store_->append(std::move(stream), expected, {make_event("{}")}, [&](AppendResult r) {
          if (r.status == AppendStatus::kSuccess) successes.fetch_add(1);
          {
            std::lock_guard lk(mu);
            positions.push_back(r.position);
          }
          done.count_down();
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  done.wait();

  const auto after = store_->stats();
  EXPECT_EQ(successes.load(), kThreads * kPerThread);
  EXPECT_EQ(after.appends - before.appends, 1000u);
  EXPECT_EQ(after.events_written - before.events_written, 1000u);
  EXPECT_LE(after.transactions - before.transactions, 50u);
  EXPECT_GE(after.transactions - before.transactions, 1u);
  std::sort(positions.begin(), positions.end());
  EXPECT_EQ(std::adjacent_find(positions.begin(), positions.end()), positions.end()) << "duplicate position";

  auto all = store_->read_all(0, 5000);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1000u);
  auto shared = read_stream("shared");
  EXPECT_EQ(revisions(shared).size(), 496u);  // 62 odd indices per thread (1..123) x 8
  EXPECT_EQ(shared.events.back().revision.value(), 495u);
}

TEST_P(EventStoreTest, FailedCheckInAGroupDoesNotAffectTheOthers) {
  reopen(options(300ms));
  ASSERT_NE(store_, nullptr);
  const auto before = store_->stats();
  auto a_events = make_events(1, "a");
  auto c_events = make_events(1, "c");
  std::vector<std::promise<AppendResult>> promises(5);
  auto answer = [&](int i) { return [&promises, i](AppendResult r) { promises[i].set_value(std::move(r)); }; };
  store_->append("g1", ExpectNoStream{}, a_events, answer(0));          // ok: creates g1 at 0
  store_->append("g1", StreamRevision{5}, make_events(1), answer(1));  // fails
  store_->append("g1", StreamRevision{0}, c_events, answer(2));         // ok: sees the first append
  store_->append("g2", ExpectStreamExists{}, make_events(1), answer(3));  // fails: no g2
  store_->append("g2", ExpectNoStream{}, make_events(2), answer(4));    // ok
  std::vector<AppendResult> r;
  for (auto& p : promises) r.push_back(p.get_future().get());

  EXPECT_EQ(r[0].status, AppendStatus::kSuccess);
  EXPECT_EQ(r[1].status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(rev(r[1]), 0u);
  EXPECT_EQ(r[2].status, AppendStatus::kSuccess);
  EXPECT_EQ(rev(r[2]), 1u);
  EXPECT_EQ(r[3].status, AppendStatus::kWrongExpectedVersion);
  EXPECT_FALSE(r[3].current_revision.has_value());
  EXPECT_EQ(r[4].status, AppendStatus::kSuccess);
  EXPECT_EQ(rev(r[4]), 1u);
  EXPECT_EQ(store_->stats().transactions - before.transactions, 1u);
  EXPECT_EQ(store_->stats().events_written - before.events_written, 4u);

  auto g1 = read_stream("g1");
  ASSERT_EQ(g1.events.size(), 2u);
  EXPECT_EQ(g1.events[0].id, a_events[0].id);
  EXPECT_EQ(g1.events[1].id, c_events[0].id);
  EXPECT_EQ(read_stream("g2").events.size(), 2u);
}

// The writer buffers a group's rows and inserts them many at a time; what it reads back within the
// same group (idempotency checks, an empty append's position) must still see them.
TEST_P(EventStoreTest, RetriesWithinOneGroupSeeTheGroupsEarlierAppends) {
  reopen(options(300ms));
  ASSERT_NE(store_, nullptr);
  auto batch = make_events(3, "a");
  auto any_batch = make_events(2, "y");
  std::vector<std::promise<AppendResult>> promises(6);
  auto answer = [&](int i) { return [&promises, i](AppendResult r) { promises[i].set_value(std::move(r)); }; };
  store_->append("s", ExpectNoStream{}, batch, answer(0));
  store_->append("s", ExpectNoStream{}, batch, answer(1));          // retry: idempotent
  store_->append("s", StreamRevision{0}, {batch[1], batch[2]}, answer(2));  // retry of a suffix
  store_->append("s", ExpectAny{}, any_batch, answer(3));
  store_->append("s", ExpectAny{}, any_batch, answer(4));  // retry through the recent-id cache
  store_->append("s", StreamRevision{4}, {}, answer(5));   // empty: reports the last event's position
  std::vector<AppendResult> r;
  for (auto& p : promises) r.push_back(p.get_future().get());
  for (size_t i = 0; i < r.size(); ++i) ASSERT_EQ(r[i].status, AppendStatus::kSuccess) << i << ": " << r[i].message;
  EXPECT_FALSE(r[0].idempotent);
  EXPECT_TRUE(r[1].idempotent);
  EXPECT_EQ(r[1].position, r[0].position);
  EXPECT_TRUE(r[2].idempotent);
  EXPECT_EQ(rev(r[2]), 2u);
  EXPECT_FALSE(r[3].idempotent);
  EXPECT_TRUE(r[4].idempotent);
  EXPECT_EQ(r[4].position, r[3].position);
  EXPECT_EQ(rev(r[5]), 4u);
  EXPECT_EQ(r[5].position, r[3].position);
  EXPECT_EQ(store_->stats().transactions, 1u);
  EXPECT_EQ(store_->stats().events_written, 5u);
  EXPECT_EQ(read_stream("s").events.size(), 5u);
}

// New streams' rows are buffered too: a tombstone in the same group must find the row it updates.
TEST_P(EventStoreTest, StreamCreatedAndTombstonedInOneGroup) {
  reopen(options(300ms));
  ASSERT_NE(store_, nullptr);
  std::promise<AppendResult> created;
  store_->append("t", ExpectNoStream{}, make_events(1), [&](AppendResult r) { created.set_value(std::move(r)); });
  auto deleted = std::async(std::launch::async, [&] { return store_->tombstone("t", StreamRevision{0}); });
  EXPECT_EQ(created.get_future().get().status, AppendStatus::kSuccess);
  EXPECT_EQ(deleted.get().status, AppendStatus::kSuccess);
  EXPECT_EQ(store_->stats().transactions, 1u);
  EXPECT_TRUE(read_stream("t").stream_deleted);
  reopen(options());
  ASSERT_NE(store_, nullptr);
  if (GetParam() == Mode::kFile) {
    EXPECT_TRUE(read_stream("t").stream_deleted);
  }
  EXPECT_EQ(store_->append_sync("t", ExpectAny{}, make_events(1)).status,
            GetParam() == Mode::kFile ? AppendStatus::kStreamDeleted : AppendStatus::kSuccess);
}

TEST_P(EventStoreTest, WindowGathersAppendsThatArriveWithinIt) {
  reopen(options(1s));
  ASSERT_NE(store_, nullptr);
  std::latch done(5);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    store_->append("w" + std::to_string(i), ExpectNoStream{}, make_events(1), [&](AppendResult r) {
      EXPECT_EQ(r.status, AppendStatus::kSuccess);
      done.count_down();
    });
    std::this_thread::sleep_for(20ms);
  }
  const auto enqueued_in = std::chrono::steady_clock::now() - start;
  done.wait();
  if (enqueued_in < 900ms) {  // all five arrived within one window (not so on a badly stalled machine)
    EXPECT_EQ(store_->stats().transactions, 1u);
  }
}

TEST_P(EventStoreTest, GroupCommitMaxBoundsAGroup) {
  reopen(options(200ms, 10));
  ASSERT_NE(store_, nullptr);
  std::latch done(35);
  for (int i = 0; i < 35; ++i) {
    store_->append("s" + std::to_string(i), ExpectNoStream{}, make_events(1), [&](AppendResult) { done.count_down(); });
  }
  done.wait();
  EXPECT_EQ(store_->stats().transactions, 4u);
}

TEST_P(EventStoreTest, GroupCommitMaxBytesBoundsAGroup) {
  StoreOptions o = options(200ms);
  o.group_commit_max_bytes = 1000;
  reopen(o);
  ASSERT_NE(store_, nullptr);
  std::latch done(11);
  for (int i = 0; i < 10; ++i) {
    // 2 (stream) + 300 (data) + 1 (type) + 16 (id) = 319 bytes: three fit in 1000, four do not.
    ProposedEvent e{Uuid::v4(), "T", "", std::string(300, 'd'), ""};
    store_->append("b" + std::to_string(i), ExpectNoStream{}, {e}, [&](AppendResult r) {
      EXPECT_EQ(r.status, AppendStatus::kSuccess);
      done.count_down();
    });
  }
  // An append larger than the limit still goes through, alone.
  ProposedEvent big{Uuid::v4(), "T", "", std::string(5000, 'd'), ""};
  store_->append("big", ExpectNoStream{}, {big}, [&](AppendResult r) {
    EXPECT_EQ(r.status, AppendStatus::kSuccess);
    done.count_down();
  });
  done.wait();
  EXPECT_EQ(store_->stats().transactions, 5u);  // 3 + 3 + 3 + 1 + the big one
  EXPECT_EQ(store_->stats().events_written, 11u);
}

TEST_P(FileEventStoreTest, StorageFailureFailsTheWholeGroupAndTheStoreRecovers) {
  reopen(options(100ms));
  ASSERT_NE(store_, nullptr);
  auto first = store_->append_sync("a", ExpectNoStream{}, make_events(1));
  ASSERT_EQ(first.status, AppendStatus::kSuccess);

  // Take the position the writer will use next, behind its back: its next insert must fail.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "events.db").string().c_str(), &raw), SQLITE_OK);
  const std::string sql = "INSERT INTO events(position, stream_id, revision, event_id, type, content_type, data, "
                          "metadata, created) VALUES(" + std::to_string(first.position + 1) +
                          ", 999, 0, zeroblob(16), 't', '', x'', x'', 0)";
  ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  sqlite3_close(raw);

  const auto before = store_->stats();
  std::promise<AppendResult> pa;
  std::promise<AppendResult> pb;
  store_->append("b", ExpectNoStream{}, make_events(1), [&](AppendResult r) { pa.set_value(std::move(r)); });
  store_->append("a", StreamRevision{0}, make_events(1), [&](AppendResult r) { pb.set_value(std::move(r)); });
  const AppendResult ra = pa.get_future().get();
  const AppendResult rb = pb.get_future().get();
  EXPECT_EQ(ra.status, AppendStatus::kError);
  EXPECT_EQ(rb.status, AppendStatus::kError);
  EXPECT_NE(ra.message.find("constraint"), std::string::npos) << ra.message;
  EXPECT_EQ(store_->stats().transactions, before.transactions);
  EXPECT_EQ(store_->stats().events_written, before.events_written);
  EXPECT_FALSE(read_stream("b").stream_found);

  // Nothing of the failed group stuck, in the database or in the writer's caches.
  auto again = store_->append_sync("a", StreamRevision{0}, make_events(1));
  ASSERT_EQ(again.status, AppendStatus::kSuccess) << again.message;
  EXPECT_EQ(rev(again), 1u);
  EXPECT_EQ(again.position, first.position + 2);
  auto b = store_->append_sync("b", ExpectNoStream{}, make_events(1));
  EXPECT_EQ(b.status, AppendStatus::kSuccess) << b.message;
  EXPECT_EQ(rev(b), 0u);
}

TEST_P(EventStoreTest, CloseDrainsQueuedAppendsThenRejects) {
  reopen(options(std::chrono::seconds(5)));
  ASSERT_NE(store_, nullptr);
  std::vector<std::future<AppendResult>> futures;
  std::vector<std::shared_ptr<std::promise<AppendResult>>> promises;
  for (int i = 0; i < 10; ++i) {
    auto p = std::make_shared<std::promise<AppendResult>>();
    futures.push_back(p->get_future());
    store_->append("s", ExpectAny{}, make_events(1), [p](AppendResult r) { p->set_value(std::move(r)); });
  }
  const auto start = std::chrono::steady_clock::now();
  store_->close();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4)) << "close waited for the window";
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(f.get().status, AppendStatus::kSuccess);
  }
  auto late = store_->append_sync("s", ExpectAny{}, make_events(1));
  EXPECT_EQ(late.status, AppendStatus::kError);
  EXPECT_EQ(late.message, "store closed");
  EXPECT_EQ(store_->tombstone("s", ExpectAny{}).status, AppendStatus::kError);
  EXPECT_FALSE(store_->read("s", ReadFrom::start(), 10, ReadDirection::kForwards).ok());
  store_->close();  // idempotent
}

TEST_P(EventStoreTest, ReadsRunConcurrentlyWithAppends) {
  constexpr int kAppends = 300;
  std::atomic<bool> writing{true};
  std::atomic<int> read_errors{0};
  std::atomic<int> order_errors{0};
  auto reader = [&] {
    size_t last = 0;
    while (writing.load()) {
      auto r = store_->read("s", ReadFrom::start(), 100000, ReadDirection::kForwards);
      auto all = store_->read_all(0, 100000);
      if (!r.ok() || !all.ok()) {
        read_errors.fetch_add(1);
        continue;
      }
      // Appends are never seen half-written: every read sees whole appends of 4 events.
      if (r->events.size() % 4 != 0 || r->events.size() < last) order_errors.fetch_add(1);
      last = r->events.size();
    }
  };
  std::thread r1(reader);
  std::thread r2(reader);
  std::latch done(kAppends);
  for (int i = 0; i < kAppends; ++i) {
    store_->append("s", ExpectAny{}, make_events(4), [&](AppendResult r) {
      EXPECT_EQ(r.status, AppendStatus::kSuccess);
      done.count_down();
    });
    if (i % 50 == 0) std::this_thread::sleep_for(1ms);
  }
  done.wait();
  writing = false;
  r1.join();
  r2.join();
  EXPECT_EQ(read_errors.load(), 0);
  EXPECT_EQ(order_errors.load(), 0);
  EXPECT_EQ(read_stream("s").events.size(), 4u * kAppends);
}

// A read never waits for the group the writer is in the middle of, and sees none of it (in memory
// mode too: the in-memory database is a WAL database on tmpfs with its own read connections).
TEST_P(EventStoreTest, ReadsDoNotWaitForAnOpenGroupAndSeeOnlyCommittedData) {
  store_.reset();
  auto created = internal::SqliteEventStore::create(options());
  ASSERT_TRUE(created.ok()) << created.status();
  internal::SqliteEventStore& store = **created;
  auto first = store.append_sync("s", ExpectNoStream{}, make_events(1));
  ASSERT_EQ(first.status, AppendStatus::kSuccess);

  std::promise<void> inside;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> armed{true};
  store.set_before_commit_hook_for_testing([&] {
    if (!armed.exchange(false)) return;
    inside.set_value();
    released.wait();
  });
  std::promise<AppendResult> second;
  store.append("s", StreamRevision{0}, make_events(2), [&](AppendResult r) { second.set_value(std::move(r)); });
  store.append("new", ExpectNoStream{}, make_events(1), [](AppendResult) {});
  inside.get_future().wait();  // the writer now holds the group's transaction open

  auto tail = std::async(std::launch::async,
                         [&] { return store.read("s", ReadFrom::end(), 1, ReadDirection::kBackwards); });
  auto all = std::async(std::launch::async, [&] { return store.read_all(0, 100); });
  auto fresh = std::async(std::launch::async,
                          [&] { return store.read("new", ReadFrom::start(), 10, ReadDirection::kForwards); });
  const bool answered = tail.wait_for(10s) == std::future_status::ready &&
                        all.wait_for(10s) == std::future_status::ready &&
                        fresh.wait_for(10s) == std::future_status::ready;
  release.set_value();
  ASSERT_TRUE(answered) << "a read waited for the open group";
  auto t = tail.get();
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->events.size(), 1u);
  EXPECT_EQ(t->events[0].revision.value(), 0u);
  auto a = all.get();
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size(), 1u);
  auto f = fresh.get();
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->stream_found);

  auto r = second.get_future().get();
  ASSERT_EQ(r.status, AppendStatus::kSuccess);
  EXPECT_EQ(rev(r), 2u);
  auto after = store.read("s", ReadFrom::end(), 1, ReadDirection::kBackwards);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->events.size(), 1u);
  EXPECT_EQ(after->events[0].revision.value(), 2u);
  store.close();
}

TEST(MemoryEventStore, PrivateDirectoryIsRemovedOnCloseAndNothingPersists) {
  StoreOptions o;
  o.in_memory = true;
  auto created = internal::SqliteEventStore::create(o);
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string dir = (*created)->memory_dir();
  ASSERT_FALSE(dir.empty());
  EXPECT_EQ(dir.rfind(internal::SqliteEventStore::memory_base_dir(), 0), 0u) << dir;
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(dir) / "events.db"));
  ASSERT_EQ((*created)->append_sync("s", ExpectNoStream{}, make_events(3)).status, AppendStatus::kSuccess);
  (*created)->close();
  EXPECT_FALSE(std::filesystem::exists(dir));

  auto again = EventStore::open(o);
  ASSERT_TRUE(again.ok());
  auto r = (*again)->read("s", ReadFrom::start(), 10, ReadDirection::kForwards);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->stream_found);
}

TEST(MemoryEventStore, OpenRemovesDirectoriesLeftByDeadStores) {
  namespace fs = std::filesystem;
  const fs::path base = internal::SqliteEventStore::memory_base_dir();
  const std::string prefix = std::string(internal::SqliteEventStore::kMemoryDirPrefix) + "test-" +
                             std::to_string(::getpid()) + "-";
  const fs::path stale = base / (prefix + "stale");
  const fs::path live = base / (prefix + "live");
  const fs::path young = base / (prefix + "young");
  for (const auto& d : {stale, live, young}) {
    fs::create_directories(d);
    std::ofstream(d / "events.db") << "x";
  }
  const auto old = fs::file_time_type::clock::now() - std::chrono::minutes(10);
  fs::last_write_time(stale, old);
  fs::last_write_time(live, old);
  const int live_fd = ::open(live.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(live_fd, 0);
  ASSERT_EQ(::flock(live_fd, LOCK_EX | LOCK_NB), 0);  // as a running store holds its directory

  StoreOptions o;
  o.in_memory = true;
  auto store = EventStore::open(o);
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live / "events.db"));
  EXPECT_TRUE(fs::exists(young / "events.db"));  // might be a store being created right now
  (*store)->close();
  ::close(live_fd);
  std::error_code ec;
  fs::remove_all(live, ec);
  fs::remove_all(young, ec);
}

INSTANTIATE_TEST_SUITE_P(Modes, EventStoreTest, ::testing::Values(Mode::kFile, Mode::kMemory), mode_name);
INSTANTIATE_TEST_SUITE_P(File, FileEventStoreTest, ::testing::Values(Mode::kFile), mode_name);

TEST(EventStoreOpen, FileModeNeedsAPath) {
  StoreOptions o;
  o.in_memory = false;
  auto s = EventStore::open(o);
  EXPECT_FALSE(s.ok());
}

TEST(EventStoreOpen, UnusablePathFails) {
  StoreOptions o;
  o.path = "/nonexistent-dir/for/sure/events.db";
  auto s = EventStore::open(o);
  EXPECT_FALSE(s.ok());
}

}  // namespace
}  // namespace kingest::store
