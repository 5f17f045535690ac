// The store's files: reopening, converting an old schema and refusing a newer one, storage failures
// the store recovers from (one a full disk), the in-memory store's private directory and its WAL in
// memory (its own, gone on close, bounded), and paths that cannot be opened.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "store/internal/memory_vfs.h"
#include "store/testing/event_store_fixture.h"

namespace kingest::store::store_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(File, FileEventStoreTest, ::testing::Values(Mode::kFile), mode_name);

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

// A write past a file size limit fails the way a full disk does (EFBIG instead of ENOSPC): the
// message says which, not only SQLite's "disk I/O error", and the store writes again once it can.
TEST_P(FileEventStoreTest, AFullDiskIsNamedInTheMessageAndTheStoreRecovers) {
  ASSERT_EQ(store_->append_sync("kept", ExpectNoStream{}, make_events(1)).status, AppendStatus::kSuccess);
  uintmax_t largest = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) largest = std::max(largest, entry.file_size());
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGXFSZ, &ignore, &old);
  rlimit saved{};
  getrlimit(RLIMIT_FSIZE, &saved);
  rlimit limited = saved;
  limited.rlim_cur = largest + 256 * 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  AppendResult failed;
  int appended = 0;
  for (; appended < 40; ++appended) {
    std::vector<ProposedEvent> big{make_event(R"({"pad":")" + std::string(64 * 1024, 'x') + R"("})")};
    failed = store_->append_sync("filler", ExpectAny{}, big);
    if (failed.status != AppendStatus::kSuccess) break;
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  sigaction(SIGXFSZ, &old, nullptr);
  ASSERT_EQ(failed.status, AppendStatus::kError) << "40 appends of 64 KiB fit in 256 KiB more";
  EXPECT_NE(failed.message.find("disk I/O error"), std::string::npos) << failed.message;
  EXPECT_NE(failed.message.find("errno " + std::to_string(EFBIG) + ": " + std::strerror(EFBIG)), std::string::npos)
      << failed.message;

  EXPECT_EQ(read_stream("filler").events.size(), static_cast<size_t>(appended));
  EXPECT_EQ(read_stream("kept").events.size(), 1u);
  auto again = store_->append_sync("filler", ExpectAny{}, make_events(1));
  ASSERT_EQ(again.status, AppendStatus::kSuccess) << again.message;
  EXPECT_EQ(rev(again), static_cast<uint64_t>(appended));
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

// The WAL of a memory-mode store is in the process's memory, its own, and gone on close.
TEST(MemoryEventStore, TheWalIsInProcessMemoryAndGoesOnClose) {
  const size_t files_before = internal::memory_vfs_files();
  const uint64_t bytes_before = internal::memory_vfs_bytes();
  StoreOptions o;
  o.in_memory = true;
  auto a = internal::SqliteEventStore::create(o);
  auto b = internal::SqliteEventStore::create(o);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ((*a)->append_sync("s", ExpectNoStream{}, make_events(3)).status, AppendStatus::kSuccess);
  EXPECT_EQ(internal::memory_vfs_files(), files_before + 2);  // one WAL each
  EXPECT_GT(internal::memory_vfs_bytes(), bytes_before);
  EXPECT_FALSE(std::filesystem::exists((*a)->memory_dir() + "/events.db-wal"));
  auto in_b = (*b)->read("s", ReadFrom::start(), 10, ReadDirection::kForwards);
  ASSERT_TRUE(in_b.ok());
  EXPECT_FALSE(in_b->stream_found);
  (*a)->close();
  (*b)->close();
  EXPECT_EQ(internal::memory_vfs_files(), files_before);
  EXPECT_EQ(internal::memory_vfs_bytes(), bytes_before);
}

// Past the memory limit a group fails as on a full disk, what was written stays readable, and the
// store writes again once there is room.
TEST(MemoryEventStore, AFullMemoryFailsTheGroupAndTheStoreRecovers) {
  StoreOptions o;
  o.in_memory = true;
  auto store = EventStore::open(o);
  ASSERT_TRUE(store.ok());
  ASSERT_EQ((*store)->append_sync("kept", ExpectNoStream{}, make_events(1)).status, AppendStatus::kSuccess);
  struct LimitBack {
    uint64_t previous;
    ~LimitBack() { internal::set_memory_vfs_limit(previous); }
  } back{internal::set_memory_vfs_limit(internal::memory_vfs_bytes() + (uint64_t{8} << 20))};

  std::vector<ProposedEvent> big = make_events(1);
  big[0].data.assign(size_t{256} << 10, 'x');
  AppendResult failed;
  int appended = 0;
  for (; appended < 200; ++appended) {
    big[0].id = Uuid::v4();
    failed = (*store)->append_sync("filler", ExpectAny{}, big);
    if (failed.status != AppendStatus::kSuccess) break;
  }
  ASSERT_LT(appended, 200) << "the limit was never reached";
  EXPECT_EQ(failed.status, AppendStatus::kError);
  EXPECT_NE(failed.message.find("full"), std::string::npos) << failed.message;

  auto kept = (*store)->read("kept", ReadFrom::start(), 10, ReadDirection::kForwards);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->events.size(), 1u);
  auto filler = (*store)->read("filler", ReadFrom::start(), 1000, ReadDirection::kForwards);
  ASSERT_TRUE(filler.ok());
  EXPECT_EQ(filler->events.size(), static_cast<size_t>(appended));

  internal::set_memory_vfs_limit(back.previous);
  big[0].id = Uuid::v4();
  auto again = (*store)->append_sync("filler", ExpectAny{}, big);
  ASSERT_EQ(again.status, AppendStatus::kSuccess) << again.message;
  EXPECT_EQ(rev(again), static_cast<uint64_t>(appended));
}

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
}  // namespace kingest::store::store_testing
