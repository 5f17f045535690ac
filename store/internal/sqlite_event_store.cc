#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/internal/sqlite_event_store.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <future>
#include <limits>

#include "absl/strings/str_cat.h"

namespace kingest::store::internal {
namespace {

// The writer forgets its stream cache when it grows past this (rows are re-read on demand).
constexpr size_t kMaxCachedStreams = 1 << 20;
// Slots of the recent-id cache used for best-effort deduplication of `any` appends (KurrentDB
// keeps a similar cache). A power of two; 32 bytes each.
constexpr size_t kRecentIdSlots = 1 << 17;
// Read-only connections kept open between reads.
constexpr size_t kMaxIdleReaders = 4;
constexpr int kBusyTimeoutMs = 5000;
// Page size of new databases. Events are ~1 KiB rows: larger pages mean fewer WAL frames (and
// syscalls) per commit and a shallower index; 16 KiB measured best for both modes.
constexpr int kPageSize = 16384;
// WAL frames after which a commit asks the checkpointer to run (SQLite's own default is 1000), and
// past which the writer checkpoints itself before the next group.
constexpr int kCheckpointFrames = 1000;
constexpr int kWalFramesCap = 4 * kCheckpointFrames;  // 64 MiB of 16 KiB pages
// The writer frees answered appends' events itself after this long without new appends.
constexpr auto kGraveyardIdle = std::chrono::milliseconds(20);
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
constexpr int kSchemaVersion = 2;
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS streams(
  id      INTEGER PRIMARY KEY,
  name    TEXT NOT NULL UNIQUE,
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
);
CREATE INDEX IF NOT EXISTS events_runs ON events(stream_id, revision, run) WHERE run IS NOT NULL;
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

constexpr const char* kEventColumns =
    "e.position, e.revision, e.event_id, e.type, e.content_type, e.data, e.metadata, e.created";

int64_t clamp_to_int64(uint64_t v) {
  return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                          : static_cast<int64_t>(v);
}

int64_t now_ticks() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count() / 100;
}

// Steps a statement that returns no rows, then resets it.
absl::Status step_done(Statement& st, std::string_view what) {
  const int rc = st.step();
  absl::Status status = rc == SQLITE_DONE ? absl::OkStatus() : sqlite_status(rc, what, sqlite3_db_handle(st.get()));
  st.reset();
  return status;
}

absl::Status step_error(Statement& st, int rc, std::string_view what) {
  return sqlite_status(rc, what, sqlite3_db_handle(st.get()));
}

}  // namespace

// Statements that find a stream's events through the run index. The row statements select
// `position, revision` first, then whatever the caller needs.
struct RunStatements {
  Statement runs_down;  // runs of stream ?1 starting at or below revision ?2, newest first
  Statement runs_up;    // runs of stream ?1 starting at or above revision ?2, oldest first
  Statement rows_up;    // events at positions ?1..?2, ascending
  Statement rows_down;  // events at positions ?1..?2, descending
};

namespace {

absl::Status prepare_run_statements(Connection& db, std::string_view columns, RunStatements& rs) {
  const std::string rows = absl::StrCat("SELECT ", absl::string_view(columns.data(), columns.size()),
                                        " FROM events e WHERE e.position BETWEEN ?1 AND ?2 ORDER BY e.position ");
  const std::pair<Statement*, std::string> statements[] = {
      {&rs.runs_down,
       "SELECT revision, run, position FROM events WHERE stream_id = ?1 AND run IS NOT NULL AND revision <= ?2 "
       "ORDER BY revision DESC"},
      {&rs.runs_up,
       "SELECT revision, run, position FROM events WHERE stream_id = ?1 AND run IS NOT NULL AND revision >= ?2 "
       "ORDER BY revision ASC"},
      {&rs.rows_up, rows + "ASC"},
      {&rs.rows_down, rows + "DESC"},
  };
  for (const auto& [target, sql] : statements) {
    auto st = db.prepare(sql);
    if (!st.ok()) return st.status();
    *target = std::move(*st);
  }
  return absl::OkStatus();
}

// Calls visit(rows) for each event of stream `stream_id` from revision `from` on (inclusive),
// upwards or downwards, at most `max_count` of them; `rows` is positioned on the event's row.
// visit returns false to stop early.
template <typename Visit>
absl::Status visit_stream(RunStatements& rs, int64_t stream_id, int64_t from, bool forwards, uint64_t max_count,
                          Visit&& visit) {
  if (max_count == 0) return absl::OkStatus();
  int64_t first_run = from;
  if (forwards) {
    // The run holding `from` starts at or below it.
    rs.runs_down.bind_int64(1, stream_id);
    rs.runs_down.bind_int64(2, from);
    ResetOnExit reset(rs.runs_down);
    const int rc = rs.runs_down.step();
    if (rc == SQLITE_ROW) {
      first_run = rs.runs_down.column_int64(0);
    } else if (rc != SQLITE_DONE) {
      return step_error(rs.runs_down, rc, "read stream runs");
    }
  }
  Statement& runs = forwards ? rs.runs_up : rs.runs_down;
  Statement& rows = forwards ? rs.rows_up : rs.rows_down;
  runs.bind_int64(1, stream_id);
  runs.bind_int64(2, first_run);
  ResetOnExit reset_runs(runs);
  uint64_t left = max_count;
  int rc = SQLITE_DONE;
  while (left > 0 && (rc = runs.step()) == SQLITE_ROW) {
    const int64_t start = runs.column_int64(0);
    const int64_t count = runs.column_int64(1);
    const int64_t position = runs.column_int64(2);
    int64_t lo = forwards ? std::max(start, from) : start;
    int64_t hi = forwards ? start + count - 1 : std::min(start + count - 1, from);
    if (count <= 0 || lo > hi) continue;
    if (static_cast<uint64_t>(hi - lo) >= left) {
      if (forwards) {
        hi = lo + static_cast<int64_t>(left - 1);
      } else {
        lo = hi - static_cast<int64_t>(left - 1);
      }
    }
    rows.bind_int64(1, position + (lo - start));
    rows.bind_int64(2, position + (hi - start));
    ResetOnExit reset_rows(rows);
    int64_t expect = forwards ? lo : hi;
    int row_rc = SQLITE_DONE;
    while ((row_rc = rows.step()) == SQLITE_ROW) {
      if (rows.column_int64(1) != expect) {
        return absl::DataLossError(absl::StrCat("stream ", stream_id, ": event at position ", rows.column_int64(0),
                                                " has revision ", rows.column_int64(1), ", expected ", expect));
      }
      expect += forwards ? 1 : -1;
      --left;
      if (!visit(rows)) return absl::OkStatus();
    }
    if (row_rc != SQLITE_DONE) return step_error(rows, row_rc, "read stream");
    if (expect != (forwards ? hi + 1 : lo - 1)) {
      return absl::DataLossError(absl::StrCat("stream ", stream_id, ": events ", lo, "..", hi, " missing"));
    }
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return step_error(runs, rc, "read stream runs");
  return absl::OkStatus();
}

AppendResult wrong_expected(const std::optional<uint64_t>& current, const ExpectedRevision& expected) {
  AppendResult r;
  r.status = AppendStatus::kWrongExpectedVersion;
  if (current) r.current_revision = StreamRevision{*current};
  r.message = absl::StrCat("wrong expected version: expected ", to_string(expected), ", current ",
                           current ? std::to_string(*current) : std::string("no_stream"));
  return r;
}

AppendResult stream_deleted(const std::string& stream) {
  AppendResult r;
  r.status = AppendStatus::kStreamDeleted;
  r.message = absl::StrCat("stream deleted: ", stream);
  return r;
}

AppendResult error_result(std::string message) {
  AppendResult r;
  r.status = AppendStatus::kError;
  r.message = std::move(message);
  return r;
}

}  // namespace

// A pooled read connection borrowed for one read, returned on destruction.
class SqliteEventStore::ReadLease {
 public:
  ReadLease(SqliteEventStore* owner, std::unique_ptr<ReadConnection> conn) : owner_(owner), conn_(std::move(conn)) {}
  ReadLease(ReadLease&&) noexcept = default;
  ReadLease& operator=(ReadLease&&) = delete;
  ReadLease(const ReadLease&) = delete;
  ReadLease& operator=(const ReadLease&) = delete;
  ~ReadLease() {
    if (conn_ != nullptr) owner_->release_reader(std::move(conn_));
  }
  ReadConnection& conn() { return *conn_; }

 private:
  SqliteEventStore* owner_ = nullptr;
  std::unique_ptr<ReadConnection> conn_;
};

size_t SqliteEventStore::recent_slot(const Uuid& id) {
  uint64_t a = 0;
  uint64_t b = 0;
  std::memcpy(&a, id.bytes().data(), 8);
  std::memcpy(&b, id.bytes().data() + 8, 8);
  // Ids may be name-based (v5) or random (v4); mix both halves and take the high bits.
  const uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL;
  return static_cast<size_t>(h >> 32) & (kRecentIdSlots - 1);
}

const SqliteEventStore::RecentId* SqliteEventStore::find_recent(const Uuid& id) const {
  if (recent_ids_.empty()) return nullptr;
  const RecentId& slot = recent_ids_[recent_slot(id)];
  return slot.stream_id != 0 && slot.id == id ? &slot : nullptr;
}

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
  } else {
    db_path_ = options_.path;
  }
  auto db = Connection::open(db_path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
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
    return absl::FailedPreconditionError(absl::StrCat(db_path_, ": schema version ", *version,
                                                      " is newer than this build's (", kSchemaVersion, ")"));
  }
  if (*version == 1) {
    if (absl::Status s = db_.exec(kMigrateV1); !s.ok()) {
      (void)db_.exec("ROLLBACK");
      return s;
    }
  }
  if (absl::Status s = db_.exec(kSchema); !s.ok()) return s;

  struct Prep {
    Statement* target;
    std::string sql;
  };
  std::vector<Prep> statements = {
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
      // The last revision comes from the run index (the streams table does not keep it, so an
      // append to an existing stream writes no stream row).
      {&find_stream_,
       "SELECT s.id, s.deleted, (SELECT e.revision + e.run - 1 FROM events e WHERE e.stream_id = s.id "
       "AND e.run IS NOT NULL ORDER BY e.revision DESC LIMIT 1) FROM streams s WHERE s.name = ?1"},
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
  auto ckpt = Connection::open(db_path_, SQLITE_OPEN_READWRITE);
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

absl::StatusOr<std::unique_ptr<SqliteEventStore::ReadConnection>> SqliteEventStore::open_read_connection() {
  auto rc = std::make_unique<ReadConnection>();
  auto db = Connection::open(db_path_, SQLITE_OPEN_READONLY);
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

// ---------------------------------------------------------------------------------------------
// Appends

void SqliteEventStore::append(std::string stream, ExpectedRevision expected, std::vector<ProposedEvent> events,
                              AppendCallback done) {
  Op op;
  op.stream = std::move(stream);
  op.expected = expected;
  op.events = std::move(events);
  op.done = std::move(done);
  enqueue(std::move(op));
}

AppendResult SqliteEventStore::tombstone(const std::string& stream, ExpectedRevision expected) {
  auto promise = std::make_shared<std::promise<AppendResult>>();
  std::future<AppendResult> future = promise->get_future();
  Op op;
  op.is_tombstone = true;
  op.stream = stream;
  op.expected = expected;
  op.done = [promise](AppendResult r) { promise->set_value(std::move(r)); };
  enqueue(std::move(op));
  return future.get();
}

void SqliteEventStore::enqueue(Op op) {
  op.enqueued = std::chrono::steady_clock::now();
  op.bytes = op.stream.size();
  for (const ProposedEvent& e : op.events) {
    op.bytes += e.data.size() + e.metadata.size() + e.type.size() + e.content_type.size() + sizeof(Uuid);
  }
  const size_t max = std::max<size_t>(options_.group_commit_max, 1);
  std::vector<ProposedEvent> dead;  // freed on return, outside the lock
  {
    std::lock_guard lk(queue_mutex_);
    if (!graveyard_.empty()) {
      dead = std::move(graveyard_.back());
      graveyard_.pop_back();
    }
    if (!stopping_) {
      const bool had_enough_bytes = queue_bytes_ >= options_.group_commit_max_bytes;
      queue_bytes_ += op.bytes;
      queue_.push_back(std::move(op));
      // The writer sleeps either for a first op or until a group is full or its window ends; wake
      // it only when that changes, so a burst of appends costs one wake-up rather than one each.
      if (queue_.size() == 1 || queue_.size() == max ||
          (!had_enough_bytes && queue_bytes_ >= options_.group_commit_max_bytes)) {
        queue_cv_.notify_one();
      }
      return;
    }
  }
  if (!op.is_tombstone) appends_.fetch_add(1, std::memory_order_relaxed);
  op.done(error_result("store closed"));
}

void SqliteEventStore::writer_loop() {
  const size_t max = std::max<size_t>(options_.group_commit_max, 1);
  std::vector<Op> group;
  for (;;) {
    if (!group.empty()) {
      // Hand the answered group's events to the appenders to free; drop the rest here.
      std::lock_guard lk(queue_mutex_);
      for (Op& op : group) {
        if (!op.events.empty()) graveyard_.push_back(std::move(op.events));
      }
    }
    group.clear();
    std::unique_lock lk(queue_mutex_);
    if (queue_.empty() && !graveyard_.empty() &&
        !queue_cv_.wait_for(lk, kGraveyardIdle, [&] { return stopping_ || !queue_.empty(); })) {
      // No appends for a while: free the leftovers here.
      std::vector<std::vector<ProposedEvent>> dead;
      dead.swap(graveyard_);
      lk.unlock();
      continue;
    }
    queue_cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued has been answered
    // Gather for up to one window, counted from the oldest queued op: ops that waited while the
    // previous group committed do not wait again.
    const auto deadline = queue_.front().enqueued + options_.group_commit_window;
    while (!stopping_ && queue_.size() < max && queue_bytes_ < options_.group_commit_max_bytes) {
      if (queue_cv_.wait_until(lk, deadline) == std::cv_status::timeout) break;
    }
    size_t bytes = 0;
    while (!queue_.empty() && group.size() < max &&
           (group.empty() || bytes + queue_.front().bytes <= options_.group_commit_max_bytes)) {
      bytes += queue_.front().bytes;
      group.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    queue_bytes_ -= bytes;
    lk.unlock();
    process_group(group);
  }
}

void SqliteEventStore::process_group(std::vector<Op>& ops) {
  std::vector<AppendResult> results;
  results.reserve(ops.size());
  if (streams_.size() > kMaxCachedStreams) {
    streams_.clear();
    streams_complete_ = false;
  }
  const int64_t position_before = next_position_;
  wrote_ = false;
  absl::Status failure = step_done(begin_, "BEGIN");
  for (size_t i = 0; failure.ok() && i < ops.size(); ++i) {
    auto r = ops[i].is_tombstone ? apply_tombstone(ops[i]) : apply_append(ops[i]);
    if (!r.ok()) {
      failure = r.status();
      break;
    }
    results.push_back(std::move(*r));
  }
  if (failure.ok() && before_commit_hook_) before_commit_hook_();
  const bool wrote = wrote_;
  const auto events_in_group = static_cast<uint64_t>(next_position_ - position_before);
  if (failure.ok()) failure = step_done(commit_, "COMMIT");
  if (!failure.ok()) {
    if (sqlite3_get_autocommit(db_.get()) == 0) (void)step_done(rollback_, "ROLLBACK");
    reset_writer_state();
    results.assign(ops.size(), error_result(std::string(failure.message())));
  } else {
    if (wrote) transactions_.fetch_add(1, std::memory_order_relaxed);
    events_written_.fetch_add(events_in_group, std::memory_order_relaxed);
    if (wal_frames_ >= kCheckpointFrames) request_checkpoint();
  }
  const auto appends = static_cast<uint64_t>(
      std::count_if(ops.begin(), ops.end(), [](const Op& op) { return !op.is_tombstone; }));
  appends_.fetch_add(appends, std::memory_order_relaxed);
  for (size_t i = 0; i < ops.size(); ++i) ops[i].done(std::move(results[i]));
  if (wal_frames_ >= kWalFramesCap) {
    // The checkpointer has not caught up with the writer for a long while: catch up here, so the
    // next transaction restarts the WAL instead of growing it further.
    std::lock_guard run(ckpt_run_mutex_);
    (void)sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    wal_frames_ = 0;
  }
}

int SqliteEventStore::on_wal_commit(void* self, sqlite3* /*db*/, const char* /*name*/, int frames) {
  static_cast<SqliteEventStore*>(self)->wal_frames_ = frames;
  return SQLITE_OK;
}

void SqliteEventStore::request_checkpoint() {
  {
    std::lock_guard lk(ckpt_mutex_);
    if (ckpt_requested_) return;
    ckpt_requested_ = true;
  }
  ckpt_cv_.notify_one();
}

void SqliteEventStore::checkpointer_loop() {
  for (;;) {
    {
      std::unique_lock lk(ckpt_mutex_);
      ckpt_cv_.wait(lk, [&] { return ckpt_stopping_ || ckpt_requested_; });
      if (ckpt_stopping_) return;
      ckpt_requested_ = false;
    }
    // PASSIVE: copies what no reader still needs, never waits for readers or the writer. A
    // failure (busy, I/O) leaves the frames in the WAL for the next round.
    std::lock_guard run(ckpt_run_mutex_);
    (void)sqlite3_wal_checkpoint_v2(ckpt_db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
}

void SqliteEventStore::stop_checkpointer() {
  {
    std::lock_guard lk(ckpt_mutex_);
    ckpt_stopping_ = true;
  }
  ckpt_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
}

absl::StatusOr<SqliteEventStore::StreamState*> SqliteEventStore::lookup_stream(const std::string& name) {
  if (StreamState* cached = streams_.find(name); cached != nullptr) return cached;
  if (streams_complete_) return streams_.insert(name, StreamState{});
  StreamState s;
  find_stream_.bind_text(1, name);
  ResetOnExit reset(find_stream_);
  const int rc = find_stream_.step();
  if (rc == SQLITE_ROW) {
    s.id = find_stream_.column_int64(0);
    s.deleted = find_stream_.column_int64(1) != 0;
    if (!find_stream_.column_is_null(2)) s.last_revision = static_cast<uint64_t>(find_stream_.column_int64(2));
  } else if (rc != SQLITE_DONE) {
    return step_error(find_stream_, rc, "find stream");
  }
  return streams_.insert(name, s);
}

absl::StatusOr<AppendResult> SqliteEventStore::apply_append(Op& op) {
  auto entry = lookup_stream(op.stream);
  if (!entry.ok()) return entry.status();
  StreamState& s = **entry;
  if (s.deleted) return stream_deleted(op.stream);
  const std::optional<uint64_t> current = s.last_revision;

  // Either append at the end, or (a retry?) compare the proposed ids with events from `compare_from`.
  std::optional<uint64_t> compare_from;
  if (const auto* n = std::get_if<StreamRevision>(&op.expected)) {
    if (!current || n->value() > *current) return wrong_expected(current, op.expected);
    if (n->value() < *current) compare_from = n->value() + 1;
  } else if (std::holds_alternative<ExpectNoStream>(op.expected)) {
    if (current) compare_from = 0;
  } else if (std::holds_alternative<ExpectStreamExists>(op.expected)) {
    if (!current) return wrong_expected(current, op.expected);
  } else if (current && !op.events.empty()) {  // any: best effort, from the recent-id cache
    if (const RecentId* seen = find_recent(op.events.front().id); seen != nullptr && seen->stream_id == s.id) {
      auto match = match_existing(s, seen->revision, op.events);
      if (!match.ok()) return match.status();
      if (*match) return std::move(**match);
    }
  }
  if (compare_from) {
    auto match = match_existing(s, *compare_from, op.events);
    if (!match.ok()) return match.status();
    if (*match) return std::move(**match);
    return wrong_expected(current, op.expected);
  }

  AppendResult r;
  r.status = AppendStatus::kSuccess;
  if (op.events.empty()) {
    if (current) {
      r.current_revision = StreamRevision{*current};
      auto pos = position_of(s, *current);
      if (!pos.ok()) return pos.status();
      r.position = *pos;
    }
    return r;
  }
  if (absl::Status st = insert_events(op.stream, s, op.events, r); !st.ok()) return st;
  return r;
}

absl::StatusOr<AppendResult> SqliteEventStore::apply_tombstone(const Op& op) {
  auto entry = lookup_stream(op.stream);
  if (!entry.ok()) return entry.status();
  StreamState& s = **entry;
  if (s.deleted) return stream_deleted(op.stream);
  const std::optional<uint64_t> current = s.last_revision;
  bool ok = true;
  if (const auto* n = std::get_if<StreamRevision>(&op.expected)) {
    ok = current && n->value() == *current;
  } else if (std::holds_alternative<ExpectNoStream>(op.expected)) {
    ok = !current;
  } else if (std::holds_alternative<ExpectStreamExists>(op.expected)) {
    ok = current.has_value();
  }
  if (!ok) return wrong_expected(current, op.expected);
  Statement& st = s.id == 0 ? insert_stream_ : delete_stream_;
  if (s.id == 0) {
    st.bind_int64(1, next_stream_id_);
    st.bind_text(2, op.stream);
    st.bind_int64(3, 1);
  } else {
    st.bind_int64(1, s.id);
  }
  if (absl::Status status = step_done(st, "delete stream"); !status.ok()) return status;
  if (s.id == 0) s.id = next_stream_id_++;
  s.deleted = true;
  wrote_ = true;
  AppendResult r;
  r.status = AppendStatus::kSuccess;
  if (current) r.current_revision = StreamRevision{*current};
  r.position = static_cast<uint64_t>(next_position_ - 1);  // the log's end when the stream was deleted
  return r;
}

absl::StatusOr<std::optional<AppendResult>> SqliteEventStore::match_existing(
    const StreamState& s, uint64_t from, const std::vector<ProposedEvent>& events) {
  if (events.empty() || s.id == 0) return std::optional<AppendResult>();
  size_t matched = 0;
  uint64_t last_position = 0;
  absl::Status st = visit_stream(*writer_runs_, s.id, clamp_to_int64(from), /*forwards=*/true, events.size(),
                                 [&](const Statement& row) {
                                   const void* id = sqlite3_column_blob(row.get(), 2);
                                   const int n = sqlite3_column_bytes(row.get(), 2);
                                   const Uuid::Bytes& want = events[matched].id.bytes();
                                   if (n != static_cast<int>(want.size()) ||
                                       std::memcmp(id, want.data(), want.size()) != 0) {
                                     return false;
                                   }
                                   last_position = static_cast<uint64_t>(row.column_int64(0));
                                   ++matched;
                                   return true;
                                 });
  if (!st.ok()) return st;
  if (matched != events.size()) return std::optional<AppendResult>();
  AppendResult r;
  r.status = AppendStatus::kSuccess;
  r.idempotent = true;
  r.current_revision = StreamRevision{from + events.size() - 1};
  r.position = last_position;
  return std::optional<AppendResult>(std::move(r));
}

absl::StatusOr<uint64_t> SqliteEventStore::position_of(const StreamState& s, uint64_t revision) {
  uint64_t position = 0;
  absl::Status st = visit_stream(*writer_runs_, s.id, clamp_to_int64(revision), /*forwards=*/true, 1,
                                 [&](const Statement& row) {
                                   position = static_cast<uint64_t>(row.column_int64(0));
                                   return false;
                                 });
  if (!st.ok()) return st;
  return position;
}

absl::Status SqliteEventStore::insert_events(const std::string& name, StreamState& s,
                                             const std::vector<ProposedEvent>& events, AppendResult& result) {
  if (s.id == 0) {
    insert_stream_.bind_int64(1, next_stream_id_);
    insert_stream_.bind_text(2, name);
    insert_stream_.bind_int64(3, 0);
    if (absl::Status status = step_done(insert_stream_, "create stream"); !status.ok()) return status;
    s.id = next_stream_id_++;
  }
  const uint64_t first_revision = s.last_revision ? *s.last_revision + 1 : 0;
  const int64_t created = now_ticks();
  for (size_t done = 0; done < events.size();) {
    const size_t rows = std::min(events.size() - done, kMaxInsertRows);
    Statement& st = insert_events_[rows - 1];
    for (size_t row = 0; row < rows; ++row) {
      const ProposedEvent& ev = events[done + row];
      const int b = static_cast<int>(row * kInsertColumns);
      st.bind_int64(b + 1, next_position_ + static_cast<int64_t>(done + row));
      st.bind_int64(b + 2, s.id);
      st.bind_int64(b + 3, clamp_to_int64(first_revision + done + row));
      st.bind_blob(b + 4, ev.id.bytes().data(), ev.id.bytes().size());
      st.bind_text(b + 5, ev.type);
      st.bind_text(b + 6, ev.content_type);
      st.bind_blob(b + 7, ev.data.data(), ev.data.size());
      st.bind_blob(b + 8, ev.metadata.data(), ev.metadata.size());
      st.bind_int64(b + 9, created);
      if (done + row == 0) {
        st.bind_int64(b + 10, static_cast<int64_t>(events.size()));
      } else {
        st.bind_null(b + 10);
      }
    }
    if (absl::Status status = step_done(st, "insert event"); !status.ok()) return status;
    done += rows;
  }
  for (size_t i = 0; i < events.size(); ++i) remember_id(events[i].id, s.id, first_revision + i);
  next_position_ += static_cast<int64_t>(events.size());
  result.position = static_cast<uint64_t>(next_position_ - 1);
  s.last_revision = first_revision + events.size() - 1;
  result.current_revision = StreamRevision{*s.last_revision};
  wrote_ = true;
  return absl::OkStatus();
}

void SqliteEventStore::remember_id(const Uuid& id, int64_t stream_id, uint64_t revision) {
  if (recent_ids_.empty()) recent_ids_.resize(kRecentIdSlots);
  recent_ids_[recent_slot(id)] = RecentId{id, stream_id, revision};
}

void SqliteEventStore::reset_writer_state() {
  // After a rollback the caches may describe writes that never happened: forget them.
  streams_.clear();
  recent_ids_.assign(recent_ids_.size(), RecentId{});
  (void)load_counters();  // if this fails too, the next group's inserts fail and are reported
}

// ---------------------------------------------------------------------------------------------
// Reads

absl::StatusOr<SqliteEventStore::ReadLease> SqliteEventStore::acquire_reader() {
  {
    std::lock_guard lk(pool_mutex_);
    if (!idle_readers_.empty()) {
      auto rc = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return ReadLease(this, std::move(rc));
    }
  }
  auto rc = open_read_connection();
  if (!rc.ok()) return rc.status();
  return ReadLease(this, std::move(*rc));
}

void SqliteEventStore::release_reader(std::unique_ptr<ReadConnection> rc) {
  std::lock_guard lk(pool_mutex_);
  if (idle_readers_.size() < kMaxIdleReaders) idle_readers_.push_back(std::move(rc));
}

absl::StatusOr<RecordedEvent> SqliteEventStore::row_to_event(const Statement& st) {
  RecordedEvent e;
  e.position = static_cast<uint64_t>(st.column_int64(0));
  e.revision = StreamRevision{static_cast<uint64_t>(st.column_int64(1))};
  const void* id = sqlite3_column_blob(st.get(), 2);
  Uuid::Bytes bytes{};
  if (sqlite3_column_bytes(st.get(), 2) != static_cast<int>(bytes.size()) || id == nullptr) {
    return absl::DataLossError(absl::StrCat("event at position ", e.position, " has a malformed id"));
  }
  std::memcpy(bytes.data(), id, bytes.size());
  e.id = Uuid(bytes);
  e.type = st.column_string(3);
  e.content_type = st.column_string(4);
  e.data = st.column_string(5);
  e.metadata = st.column_string(6);
  e.created_ticks = st.column_int64(7);
  return e;
}

namespace {

// Ends a read transaction when leaving the scope.
class ReadTransaction {
 public:
  explicit ReadTransaction(Statement& commit) : commit_(commit) {}
  ~ReadTransaction() { (void)step_done(commit_, "COMMIT"); }
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;

 private:
  Statement& commit_;
};

}  // namespace

absl::StatusOr<ReadResult> SqliteEventStore::read(const std::string& stream, ReadFrom from, uint64_t max_count,
                                                  ReadDirection direction) {
  std::shared_lock life(lifecycle_mutex_);
  if (closed_) return absl::FailedPreconditionError("store closed");
  auto lease = acquire_reader();
  if (!lease.ok()) return lease.status();
  ReadConnection& c = lease->conn();
  // One read transaction: the stream row and its events come from the same snapshot.
  if (absl::Status s = step_done(c.begin, "BEGIN"); !s.ok()) return s;
  ReadTransaction tx(c.commit);

  ReadResult result;
  int64_t stream_id = 0;
  {
    c.find_stream.bind_text(1, stream);
    ResetOnExit reset(c.find_stream);
    const int rc = c.find_stream.step();
    if (rc == SQLITE_DONE) return result;  // not found
    if (rc != SQLITE_ROW) return step_error(c.find_stream, rc, "find stream");
    stream_id = c.find_stream.column_int64(0);
    result.stream_found = true;
    result.stream_deleted = c.find_stream.column_int64(1) != 0;
  }
  if (result.stream_deleted || max_count == 0) return result;

  const bool forwards = direction == ReadDirection::kForwards;
  int64_t bound = 0;
  switch (from.kind) {
    case ReadFrom::Kind::kStart:
      bound = 0;
      break;
    case ReadFrom::Kind::kEnd:
      if (forwards) return result;  // nothing after the end
      bound = std::numeric_limits<int64_t>::max();
      break;
    case ReadFrom::Kind::kRevision:
      if (forwards && from.revision > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return result;
      bound = clamp_to_int64(from.revision);
      break;
  }
  absl::Status status = absl::OkStatus();
  absl::Status visited = visit_stream(*c.runs, stream_id, bound, forwards, max_count, [&](const Statement& row) {
    auto e = row_to_event(row);
    if (!e.ok()) {
      status = e.status();
      return false;
    }
    e->stream = stream;
    result.events.push_back(std::move(*e));
    return true;
  });
  if (!visited.ok()) return visited;
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<RecordedEvent>> SqliteEventStore::read_all(uint64_t after_position, uint64_t max_count) {
  std::shared_lock life(lifecycle_mutex_);
  if (closed_) return absl::FailedPreconditionError("store closed");
  std::vector<RecordedEvent> events;
  if (max_count == 0) return events;
  auto lease = acquire_reader();
  if (!lease.ok()) return lease.status();
  Statement& st = lease->conn().read_all;
  st.bind_int64(1, clamp_to_int64(after_position));
  st.bind_int64(2, clamp_to_int64(max_count));
  ResetOnExit reset(st);
  int rc = SQLITE_DONE;
  while ((rc = st.step()) == SQLITE_ROW) {
    auto e = row_to_event(st);
    if (!e.ok()) return e.status();
    e->stream = st.column_string(8);
    events.push_back(std::move(*e));
  }
  if (rc != SQLITE_DONE) return step_error(st, rc, "read all");
  return events;
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
  db_.close();
  if (!memory_dir_.empty()) {
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
