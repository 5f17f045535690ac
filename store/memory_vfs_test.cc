// The memory VFS under SQLite itself: WAL mode across connections of one process with the WAL in
// memory and the database a file (a reader's snapshot beside a writer, one writer at a time,
// checkpoints that wait for readers), a WAL that grows, shrinks and goes, and the memory limit.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>

#include "store/internal/memory_vfs.h"
#include "store/internal/sqlite.h"

namespace kingest::store::internal {
namespace {

class MemoryVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "memory-vfs-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    prefix_ = tmpl + "/";
    path_ = prefix_ + "db";
  }
  void TearDown() override {
    memory_vfs_remove(prefix_);
    std::filesystem::remove_all(prefix_);
  }

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

TEST_F(MemoryVfsTest, TheWalGrowsShrinksAndIsDroppedByPrefix) {
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
    EXPECT_GE(memory_vfs_bytes(), bytes_before + (uint64_t{16} << 20));  // 16 MiB of rows in the WAL
    EXPECT_FALSE(std::filesystem::exists(path_ + "-wal"));
    EXPECT_TRUE(std::filesystem::exists(path_));
    ASSERT_EQ(sqlite3_wal_checkpoint_v2(c.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr), SQLITE_OK);
    EXPECT_EQ(memory_vfs_bytes(), bytes_before);  // the truncated WAL gave its chunks back
    EXPECT_GE(std::filesystem::file_size(path_), uint64_t{16} << 20);  // the rows are in the database file
    EXPECT_EQ(count(c), 4096);
    ASSERT_TRUE(c.exec("INSERT INTO t VALUES(zeroblob(100))").ok());
    EXPECT_EQ(count(c), 4097);
    EXPECT_EQ(memory_vfs_files(), files_before + 1);
  }
  // The last connection checkpointed and deleted the WAL on close; a new one finds every row.
  EXPECT_EQ(memory_vfs_files(), files_before);
  EXPECT_EQ(memory_vfs_bytes(), bytes_before);
  {
    Connection c = open();
    EXPECT_EQ(count(c), 4097);
    // Closed without a checkpoint, a WAL stays in memory until its name is removed.
    sqlite3_db_config(c.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    ASSERT_TRUE(c.exec("INSERT INTO t VALUES(zeroblob(100))").ok());
  }
  EXPECT_EQ(memory_vfs_files(), files_before + 1);
  {
    Connection c = open();
    EXPECT_EQ(count(c), 4098);
    sqlite3_db_config(c.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  }
  memory_vfs_remove(prefix_);
  EXPECT_EQ(memory_vfs_files(), files_before);
  EXPECT_EQ(memory_vfs_bytes(), bytes_before);
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
