// The memory VFS under SQLite itself: WAL mode across connections of one process (a reader's
// snapshot beside a writer, one writer at a time, checkpoints that wait for readers), files that
// grow, shrink and go, and the memory limit.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>

#include "store/internal/memory_vfs.h"
#include "store/internal/sqlite.h"

namespace kingest::store::internal {
namespace {

class MemoryVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    prefix_ = "memory-vfs-test-" + std::to_string(n++) + "/";
    path_ = prefix_ + "db";
  }
  void TearDown() override { memory_vfs_remove(prefix_); }

  Connection open(int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    auto c = Connection::open(path_, flags, memory_vfs());
    EXPECT_TRUE(c.ok()) << c.status();
    sqlite3_busy_timeout(c->get(), 0);
    return std::move(*c);
  }
  static int64_t count(Connection& c) { return c.query_int64("SELECT COUNT(*) FROM t").value(); }
  static int exec_rc(Connection& c, const char* sql) { return sqlite3_exec(c.get(), sql, nullptr, nullptr, nullptr); }

  std::string prefix_;
  std::string path_;
};

TEST_F(MemoryVfsTest, WalReadersKeepTheirSnapshotBesideOneWriter) {
  Connection w = open();
  ASSERT_EQ(w.query_text("PRAGMA journal_mode=WAL").value(), "wal");
  ASSERT_TRUE(w.exec("CREATE TABLE t(x); INSERT INTO t VALUES(1);").ok());

  Connection r = open(SQLITE_OPEN_READONLY);
  ASSERT_TRUE(r.exec("BEGIN").ok());
  EXPECT_EQ(count(r), 1);  // the snapshot starts here

  ASSERT_TRUE(w.exec("BEGIN IMMEDIATE; INSERT INTO t VALUES(2);").ok());
  EXPECT_EQ(count(r), 1);  // an open write transaction is not seen
  Connection w2 = open();
  EXPECT_EQ(exec_rc(w2, "BEGIN IMMEDIATE"), SQLITE_BUSY);  // one writer at a time
  ASSERT_TRUE(w.exec("COMMIT").ok());
  EXPECT_EQ(count(r), 1);  // nor a commit after the snapshot

  // A full checkpoint cannot pass the reader's snapshot; once the reader is done it can.
  int log = 0;
  int done = 0;
  EXPECT_EQ(sqlite3_wal_checkpoint_v2(w.get(), nullptr, SQLITE_CHECKPOINT_FULL, &log, &done), SQLITE_BUSY);
  EXPECT_LT(done, log);
  ASSERT_TRUE(r.exec("COMMIT").ok());
  EXPECT_EQ(count(r), 2);
  ASSERT_EQ(sqlite3_wal_checkpoint_v2(w.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done), SQLITE_OK);
  EXPECT_EQ(count(w2), 2);
  ASSERT_TRUE(w2.exec("INSERT INTO t VALUES(3)").ok());
  EXPECT_EQ(count(r), 3);
}

TEST_F(MemoryVfsTest, FilesGrowShrinkAndAreDroppedByPrefix) {
  const size_t files_before = memory_vfs_files();
  const uint64_t bytes_before = memory_vfs_bytes();
  {
    Connection c = open();
    ASSERT_EQ(c.query_text("PRAGMA journal_mode=WAL").value(), "wal");
    ASSERT_TRUE(c.exec("PRAGMA journal_size_limit=0; CREATE TABLE t(x BLOB);").ok());
    // 16 MiB in rows, through the WAL into the database file.
    ASSERT_TRUE(c.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4096) "
                       "INSERT INTO t SELECT zeroblob(4096) FROM n;")
                    .ok());
    ASSERT_EQ(sqlite3_wal_checkpoint_v2(c.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr), SQLITE_OK);
    EXPECT_GE(memory_vfs_bytes(), bytes_before + (uint64_t{16} << 20));
    const uint64_t full = memory_vfs_bytes();
    ASSERT_TRUE(c.exec("DELETE FROM t; VACUUM;").ok());
    ASSERT_EQ(sqlite3_wal_checkpoint_v2(c.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr), SQLITE_OK);
    EXPECT_LT(memory_vfs_bytes(), full);  // the truncated files gave their chunks back
    EXPECT_EQ(count(c), 0);
    ASSERT_TRUE(c.exec("INSERT INTO t VALUES(zeroblob(100))").ok());
    EXPECT_EQ(count(c), 1);
    EXPECT_GT(memory_vfs_files(), files_before);
  }
  memory_vfs_remove(prefix_);
  EXPECT_EQ(memory_vfs_files(), files_before);
  EXPECT_EQ(memory_vfs_bytes(), bytes_before);
  // Gone: opening without CREATE fails, with CREATE starts empty.
  sqlite3* raw = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE, memory_vfs()), SQLITE_CANTOPEN);
  sqlite3_close(raw);
  Connection again = open();
  EXPECT_EQ(again.query_int64("SELECT COUNT(*) FROM sqlite_schema").value(), 0);
}

TEST_F(MemoryVfsTest, PastTheLimitAWriteFailsAsOnAFullDisk) {
  Connection c = open();
  ASSERT_EQ(c.query_text("PRAGMA journal_mode=WAL").value(), "wal");
  ASSERT_TRUE(c.exec("CREATE TABLE t(x BLOB)").ok());
  const uint64_t previous = set_memory_vfs_limit(memory_vfs_bytes() + (uint64_t{4} << 20));
  const int rc = exec_rc(c, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4096) "
                            "INSERT INTO t SELECT zeroblob(4096) FROM n;");
  set_memory_vfs_limit(previous);
  EXPECT_EQ(rc & 0xff, SQLITE_FULL);
  EXPECT_EQ(count(c), 0);  // rolled back
  ASSERT_TRUE(c.exec("INSERT INTO t VALUES(zeroblob(10))").ok());
  EXPECT_EQ(count(c), 1);
}

}  // namespace
}  // namespace kingest::store::internal
