// The store's life: the schema and its migration, opening the database (file or a private
// memory-mode directory, the WAL then in the process's memory), the writer's and readers'
// connections, statistics and close. The write path is in sqlite_writer.cc (queue, writer and
// checkpointer threads) and sqlite_appends.cc (each request inside the transaction), the read path
// in sqlite_reads.cc, the run index in stream_runs.h.
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/internal/memory_vfs.h"
#include "store/internal/sqlite_event_store.h"
#include "store/internal/stream_runs.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"

namespace kingest::store::internal {
namespace {

constexpr int kBusyTimeoutMs = 5000;
// Page size of new databases. Events are ~1 KiB rows: larger pages mean fewer WAL frames (and
// syscalls) per commit and a shallower index; 16 KiB measured best for both modes.
constexpr int kPageSize = 16384;
// Memory mode: where the private database directory goes, if that file system has this much room
// (a container's /dev/shm is often 64 MiB); otherwise the temporary directory.
constexpr const char* kShmDir = "/dev/shm";
constexpr uint64_t kMinShmBytes = uint64_t{1} << 30;
// A memory-mode directory nobody holds locked is removed by the next `open` once it is this old
// (left behind by a crashed process; the age check spares one being created right now).
constexpr int kStaleMemoryDirSeconds = 60;

// Schema version 2. Every event is a row keyed by its global position. The events of one append
// have consecutive positions and revisions (a "run"), so the stream index only needs one entry per
// append: its first event carries `run` = the append's event count, the others NULL, and the
// partial index `events_runs` holds the run starts. Revision r of a stream is at
// position + (r - revision) of the run starting at or below r. (Version 1 indexed every event and
// kept each stream's last revision in `streams`; `migrate_v1` converts it.)
// Memory mode leaves out the index on stream names (UNIQUE) and the run index: see ids_by_name_.
constexpr int kSchemaVersion = 2;
constexpr const char* kSchemaStreams = R"sql(
CREATE TABLE IF NOT EXISTS streams(
  id      INTEGER PRIMARY KEY,
  name    TEXT NOT NULL)sql";
constexpr const char* kSchemaRest = R"sql(,
  deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events(
  position     INTEGER PRIMARY KEY,
  stream_id    INTEGER NOT NULL,
  revision     INTEGER NOT NULL,
  event_id     BLOB NOT NULL,
  type         TEXT NOT NULL,
  content_type TEXT NOT NULL,
  data         BLOB NOT NULL,
  metadata     BLOB NOT NULL,
  created      INTEGER NOT NULL,
  run          INTEGER
);)sql";
constexpr const char* kSchemaRunIndex = R"sql(
CREATE INDEX IF NOT EXISTS events_runs ON events(stream_id, revision, run) WHERE run IS NOT NULL;)sql";
constexpr const char* kSchemaVersionPragma = R"sql(
PRAGMA user_version = 2;
)sql";

// Version 1 → 2: every existing event becomes a run of one.
constexpr const char* kMigrateV1 = R"sql(
BEGIN IMMEDIATE;
ALTER TABLE events ADD COLUMN run INTEGER;
UPDATE events SET run = 1;
CREATE INDEX events_runs ON events(stream_id, revision, run) WHERE run IS NOT NULL;
DROP INDEX IF EXISTS events_by_stream;
PRAGMA user_version = 2;
COMMIT;
)sql";

// A stream's id, deleted flag and last revision (from the run index: the streams table does not
// keep it, so an append to an existing stream writes no stream row).
constexpr const char* kStreamStateColumns =
    "s.id, s.deleted, (SELECT e.revision + e.run - 1 FROM events e WHERE e.stream_id = s.id "
    "AND e.run IS NOT NULL ORDER BY e.revision DESC LIMIT 1)";

constexpr const char* kEventColumns =
    "e.position, e.revision, e.event_id, e.type, e.content_type, e.data, e.metadata, e.created";

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteEventStore>> SqliteEventStore::create(const StoreOptions& options) {
  if (!options.in_memory && options.path.empty()) {
    return absl::InvalidArgumentError("event store: a database path is required unless in_memory");
  }
  std::unique_ptr<SqliteEventStore> store(new SqliteEventStore(options));
  if (absl::Status s = store->open_database(); !s.ok()) return s;
  SqliteEventStore* raw = store.get();
  store->checkpointer_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), "ki-store-ckpt");
    raw->checkpointer_loop();
  });
  store->writer_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), "ki-store-write");
    raw->writer_loop();
  });
  return store;
}

SqliteEventStore::SqliteEventStore(const StoreOptions& options) : options_(options) {}
SqliteEventStore::~SqliteEventStore() { close(); }
SqliteEventStore::ReadConnection::ReadConnection() = default;
SqliteEventStore::ReadConnection::~ReadConnection() = default;

namespace {

// Removes memory-mode directories left behind by processes that died without closing their store:
// a live store holds an flock on its directory.
void remove_stale_memory_dirs(const std::filesystem::path& base) {
  constexpr const char* kMemoryDirPrefix = SqliteEventStore::kMemoryDirPrefix;
  std::error_code ec;
  std::filesystem::directory_iterator it(base, ec);
  if (ec) return;
  const time_t now = std::time(nullptr);
  for (const auto& entry : it) {
    if (entry.path().filename().string().rfind(kMemoryDirPrefix, 0) != 0) continue;
    const int fd = ::open(entry.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_uid == ::geteuid() && now - st.st_mtime >= kStaleMemoryDirSeconds &&
        ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      std::filesystem::remove_all(entry.path(), ec);
    }
    ::close(fd);
  }
}

}  // namespace

std::string SqliteEventStore::memory_base_dir() {
  struct statvfs sv {};
  if (::statvfs(kShmDir, &sv) == 0 && ::access(kShmDir, W_OK | X_OK) == 0 &&
      static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize >= kMinShmBytes) {
    return kShmDir;
  }
  std::error_code ec;
  std::filesystem::path tmp = std::filesystem::temp_directory_path(ec);
  return ec ? std::string("/tmp") : tmp.string();
}

absl::Status SqliteEventStore::make_memory_dir() {
  const std::filesystem::path base = memory_base_dir();
  remove_stale_memory_dirs(base);
  std::string tmpl = (base / absl::StrCat(kMemoryDirPrefix, ::getpid(), "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("in-memory store: mkdtemp ", tmpl, ": ", std::strerror(errno)));
  }
  memory_dir_ = tmpl;
  memory_dir_lock_ = ::open(memory_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (memory_dir_lock_ < 0 || ::flock(memory_dir_lock_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("in-memory store: lock ", memory_dir_, ": ", std::strerror(errno)));
  }
  db_path_ = memory_dir_ + "/events.db";
  return absl::OkStatus();
}

absl::Status SqliteEventStore::open_database() {
  if (options_.in_memory) {
    if (absl::Status s = make_memory_dir(); !s.ok()) return s;
    // The WAL in the process's memory, the database file in the directory.
    vfs_ = memory_vfs();
    if (vfs_ == nullptr) return absl::InternalError("in-memory store: cannot register the memory VFS");
  } else {
    db_path_ = options_.path;
  }
  auto db = Connection::open(db_path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs_);
  if (!db.ok()) return db.status();
  db_ = std::move(*db);
  sqlite3_busy_timeout(db_.get(), kBusyTimeoutMs);
  // Memory mode: the files are deleted on close, so the last connection need not checkpoint.
  if (options_.in_memory) sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  // Takes effect only on a new database (before its first table).
  if (absl::Status s = db_.exec(absl::StrCat("PRAGMA page_size=", kPageSize).c_str()); !s.ok()) return s;
  auto mode = db_.query_text("PRAGMA journal_mode=WAL");
  if (!mode.ok()) return mode.status();
  if (*mode != "wal") return absl::FailedPreconditionError(absl::StrCat(db_path_, ": cannot use WAL (", *mode, ")"));
  // File mode, FULL: a commit is on disk before its callbacks run. Memory mode, OFF: nothing is
  // meant to survive. The size limit trims the WAL file after a checkpoint, so one large group
  // does not leave it large.
  const char* synchronous = options_.in_memory ? "PRAGMA synchronous=OFF" : "PRAGMA synchronous=FULL";
  if (absl::Status s = db_.exec(synchronous); !s.ok()) return s;
  if (absl::Status s = db_.exec("PRAGMA journal_size_limit=67108864; PRAGMA temp_store=MEMORY; "
                                "PRAGMA cache_size=-65536;");
      !s.ok()) {
    return s;
  }
  auto version = db_.query_int64("PRAGMA user_version");
  if (!version.ok()) return version.status();
  if (*version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(db_path_, ": schema version ", *version, " is newer than this build's (", kSchemaVersion, ")"));
  }
  if (*version == 1) {
    if (absl::Status s = db_.exec(kMigrateV1); !s.ok()) {
      (void)db_.exec("ROLLBACK");
      return s;
    }
  }
  const bool indexes = !options_.in_memory;
  const std::string schema = absl::StrCat(kSchemaStreams, indexes ? " UNIQUE" : "", kSchemaRest,
                                          indexes ? kSchemaRunIndex : "", kSchemaVersionPragma);
  if (absl::Status s = db_.exec(schema.c_str()); !s.ok()) return s;

  struct Prep {
    Statement* target;
    std::string sql;
  };
  std::vector<Prep> statements = {
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
      {&find_stream_, absl::StrCat("SELECT ", kStreamStateColumns, " FROM streams s WHERE s.name = ?1")},
      {&insert_stream_, "INSERT OR ROLLBACK INTO streams(id, name, deleted) VALUES(?1, ?2, ?3)"},
      {&delete_stream_, "UPDATE streams SET deleted = 1 WHERE id = ?1"},
  };
  for (size_t k = 0; k < kMaxInsertRows; ++k) {
    std::string sql =
        "INSERT OR ROLLBACK INTO events(position, stream_id, revision, event_id, type, content_type, data, metadata, "
        "created, run) VALUES";
    for (size_t row = 0; row <= k; ++row) {
      absl::StrAppend(&sql, row == 0 ? "(" : ",(");
      for (size_t col = 1; col <= kInsertColumns; ++col) {
        absl::StrAppend(&sql, col == 1 ? "?" : ",?", row * kInsertColumns + col);
      }
      absl::StrAppend(&sql, ")");
    }
    statements.push_back({&insert_events_[k], std::move(sql)});
  }
  for (size_t k = 0; k < kMaxInsertRows; ++k) {
    std::string sql = "INSERT OR ROLLBACK INTO streams(id, name, deleted) VALUES";
    for (size_t row = 0; row <= k; ++row)
      absl::StrAppend(&sql, row == 0 ? "" : ",", "(?", 2 * row + 1, ",?", 2 * row + 2, ",0)");
    statements.push_back({&insert_streams_[k], std::move(sql)});
  }
  for (const Prep& p : statements) {
    auto st = db_.prepare(p.sql);
    if (!st.ok()) return st.status();
    *p.target = std::move(*st);
  }
  writer_runs_ = std::make_unique<RunStatements>();
  if (absl::Status s = prepare_run_statements(db_, "e.position, e.revision, e.event_id", *writer_runs_); !s.ok()) {
    return s;
  }
  if (absl::Status s = load_counters(); !s.ok()) return s;

  // Checkpoints run on the checkpointer's connection (same synchronous setting: in file mode the
  // database file is synced before the WAL restarts).
  sqlite3_wal_autocheckpoint(db_.get(), 0);
  sqlite3_wal_hook(db_.get(), &SqliteEventStore::on_wal_commit, this);
  auto ckpt = Connection::open(db_path_, SQLITE_OPEN_READWRITE, vfs_);
  if (!ckpt.ok()) return ckpt.status();
  ckpt_db_ = std::move(*ckpt);
  sqlite3_busy_timeout(ckpt_db_.get(), kBusyTimeoutMs);
  if (options_.in_memory) sqlite3_db_config(ckpt_db_.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  if (absl::Status s = ckpt_db_.exec(synchronous); !s.ok()) return s;

  // Open one reader now so that a database the readers cannot use fails `open`, not the first read.
  auto reader = open_read_connection();
  if (!reader.ok()) return reader.status();
  idle_readers_.push_back(std::move(*reader));
  return absl::OkStatus();
}

absl::Status SqliteEventStore::load_counters() {
  auto pos = db_.query_int64("SELECT COALESCE(MAX(position), 0) FROM events");
  if (!pos.ok()) return pos.status();
  auto sid = db_.query_int64("SELECT COALESCE(MAX(id), 0) FROM streams");
  if (!sid.ok()) return sid.status();
  next_position_ = *pos + 1;
  next_stream_id_ = *sid + 1;
  streams_complete_ = streams_.size() == 0 && *sid == 0;
  return absl::OkStatus();
}

absl::Status SqliteEventStore::load_all_streams() {
  auto streams = db_.prepare("SELECT id, deleted, name FROM streams");
  if (!streams.ok()) return streams.status();
  auto runs =
      db_.prepare("SELECT stream_id, revision, run, position FROM events WHERE run IS NOT NULL ORDER BY position");
  if (!runs.ok()) return runs.status();
  std::unique_lock names(names_mutex_);
  ids_by_name_.clear();
  streams_.clear();
  absl::Status failed = absl::OkStatus();
  absl::flat_hash_map<int64_t, StreamState*> by_id;
  for (int rc = streams->step(); failed.ok() && rc != SQLITE_DONE; rc = streams->step()) {
    if (rc != SQLITE_ROW) {
      failed = step_error(*streams, rc, "load streams");
      break;
    }
    StreamState s;
    s.id = streams->column_int64(0);
    s.deleted = streams->column_int64(1) != 0;
    const std::string name = streams->column_string(2);
    StreamState* state = streams_.insert(name, std::move(s));
    ids_by_name_.emplace(streams_.stored_name(name), state);
    by_id.emplace(state->id, state);
  }
  for (int rc = failed.ok() ? runs->step() : SQLITE_DONE; rc != SQLITE_DONE; rc = runs->step()) {
    if (rc != SQLITE_ROW) {
      failed = step_error(*runs, rc, "load runs");
      break;
    }
    const auto it = by_id.find(runs->column_int64(0));
    if (it == by_id.end()) continue;  // events of no stream row: not readable by name either
    StreamState& s = *it->second;
    const Run run{runs->column_int64(1), runs->column_int64(2), runs->column_int64(3)};
    s.runs.push_back(run);
    s.last_revision = static_cast<uint64_t>(run.revision + run.count - 1);
  }
  if (!failed.ok()) {
    ids_by_name_.clear();
    streams_.clear();
    return failed;
  }
  committed_position_ = next_position_ - 1;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SqliteEventStore::ReadConnection>> SqliteEventStore::open_read_connection() {
  auto rc = std::make_unique<ReadConnection>();
  auto db = Connection::open(db_path_, SQLITE_OPEN_READONLY, vfs_);
  if (!db.ok()) return db.status();
  rc->db = std::move(*db);
  sqlite3_busy_timeout(rc->db.get(), kBusyTimeoutMs);
  struct Prep {
    Statement* target;
    std::string sql;
  };
  const std::vector<Prep> statements = {
      {&rc->begin, "BEGIN"},
      {&rc->commit, "COMMIT"},
      {&rc->find_stream, "SELECT id, deleted FROM streams WHERE name = ?1"},
      {&rc->stream_by_id, "SELECT id, deleted FROM streams WHERE id = ?1"},
      {&rc->read_all, absl::StrCat("SELECT ", kEventColumns,
                                   ", s.name FROM events e JOIN streams s ON s.id = e.stream_id "
                                   "WHERE e.position > ?1 ORDER BY e.position ASC LIMIT ?2")},
  };
  for (const Prep& p : statements) {
    auto st = rc->db.prepare(p.sql);
    if (!st.ok()) return st.status();
    *p.target = std::move(*st);
  }
  rc->runs = std::make_unique<RunStatements>();
  if (absl::Status s = prepare_run_statements(rc->db, kEventColumns, *rc->runs); !s.ok()) return s;
  return rc;
}

StoreStats SqliteEventStore::stats() const {
  StoreStats s;
  s.transactions = transactions_.load(std::memory_order_relaxed);
  s.appends = appends_.load(std::memory_order_relaxed);
  s.events_written = events_written_.load(std::memory_order_relaxed);
  return s;
}

void SqliteEventStore::close() {
  std::lock_guard close_lock(close_mutex_);
  {
    std::lock_guard lk(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) {
    // Called from an append callback: the writer drains and exits by itself; the destructor,
    // run on another thread, joins it.
    if (writer_.get_id() == std::this_thread::get_id()) return;
    writer_.join();
  }
  stop_checkpointer();
  std::unique_lock life(lifecycle_mutex_);
  if (closed_) return;
  closed_ = true;
  {
    std::lock_guard lk(pool_mutex_);
    idle_readers_.clear();
  }
  ckpt_db_.close();
  for (Statement* st : {&begin_, &commit_, &rollback_, &find_stream_, &insert_stream_, &delete_stream_}) {
    *st = Statement();
  }
  writer_runs_.reset();
  for (Statement& st : insert_events_) st = Statement();
  for (Statement& st : insert_streams_) st = Statement();
  db_.close();
  if (!memory_dir_.empty()) {
    memory_vfs_remove(memory_dir_ + "/");  // the WAL (a reader still open keeps it until it closes)
    std::error_code ec;
    std::filesystem::remove_all(memory_dir_, ec);
    memory_dir_.clear();
  }
  if (memory_dir_lock_ >= 0) {
    ::close(memory_dir_lock_);
    memory_dir_lock_ = -1;
  }
}

}  // namespace kingest::store::internal
