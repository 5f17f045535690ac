#include <pthread.h>

#include "store/internal/sqlite_event_store.h"

#include <algorithm>
#include <cstring>
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
// Read-only connections kept open between reads (file mode).
constexpr size_t kMaxIdleReaders = 4;
constexpr int kBusyTimeoutMs = 5000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS streams(
  id            INTEGER PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  last_revision INTEGER,
  deleted       INTEGER NOT NULL DEFAULT 0
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
  created      INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON events(stream_id, revision);
PRAGMA user_version = 1;
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

// A read connection borrowed for one read: a pooled connection (returned on destruction) or, in
// memory mode, the shared connection with db_mutex_ held.
class SqliteEventStore::ReadLease {
 public:
  ReadLease(SqliteEventStore* owner, std::unique_ptr<ReadConnection> pooled)
      : owner_(owner), pooled_(std::move(pooled)), conn_(pooled_.get()) {}
  ReadLease(std::unique_lock<std::mutex> lock, ReadConnection* shared) : lock_(std::move(lock)), conn_(shared) {}
  ReadLease(ReadLease&&) noexcept = default;
  ReadLease& operator=(ReadLease&&) = delete;
  ReadLease(const ReadLease&) = delete;
  ReadLease& operator=(const ReadLease&) = delete;
  ~ReadLease() {
    if (pooled_ != nullptr) owner_->release_reader(std::move(pooled_));
  }
  ReadConnection& conn() { return *conn_; }

 private:
  SqliteEventStore* owner_ = nullptr;
  std::unique_ptr<ReadConnection> pooled_;
  std::unique_lock<std::mutex> lock_;
  ReadConnection* conn_ = nullptr;
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
  store->writer_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), "ki-store-write");
    raw->writer_loop();
  });
  return store;
}

SqliteEventStore::~SqliteEventStore() { close(); }

absl::Status SqliteEventStore::open_database() {
  const std::string path = options_.in_memory ? std::string(":memory:") : options_.path;
  auto db = Connection::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!db.ok()) return db.status();
  db_ = std::move(*db);
  sqlite3_busy_timeout(db_.get(), kBusyTimeoutMs);
  if (!options_.in_memory) {
    auto mode = db_.query_text("PRAGMA journal_mode=WAL");
    if (!mode.ok()) return mode.status();
    if (*mode != "wal") return absl::FailedPreconditionError(absl::StrCat(path, ": cannot use WAL (", *mode, ")"));
    // FULL: a commit is on disk before its callbacks run. The size limit trims the WAL file after
    // a checkpoint, so one large group does not leave it large.
    if (absl::Status s = db_.exec("PRAGMA synchronous=FULL; PRAGMA journal_size_limit=67108864;"); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = db_.exec("PRAGMA temp_store=MEMORY; PRAGMA cache_size=-65536;"); !s.ok()) return s;
  if (absl::Status s = db_.exec(kSchema); !s.ok()) return s;

  struct Prep {
    Statement* target;
    std::string sql;
  };
  const std::vector<Prep> statements = {
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
      {&insert_event_,
       "INSERT INTO events(position, stream_id, revision, event_id, type, content_type, data, metadata, created) "
       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
      {&find_stream_, "SELECT id, last_revision, deleted FROM streams WHERE name = ?1"},
      {&upsert_stream_,
       "INSERT INTO streams(id, name, last_revision, deleted) VALUES(?1, ?2, ?3, ?4) "
       "ON CONFLICT(id) DO UPDATE SET last_revision = excluded.last_revision, deleted = excluded.deleted"},
      {&ids_from_,
       "SELECT event_id, position FROM events WHERE stream_id = ?1 AND revision >= ?2 ORDER BY revision LIMIT ?3"},
      {&position_at_, "SELECT position FROM events WHERE stream_id = ?1 AND revision = ?2"},
  };
  for (const Prep& p : statements) {
    auto st = db_.prepare(p.sql);
    if (!st.ok()) return st.status();
    *p.target = std::move(*st);
  }
  if (absl::Status s = load_counters(); !s.ok()) return s;

  if (options_.in_memory) {
    shared_reader_ = std::make_unique<ReadConnection>();
    return prepare_read_statements(db_, *shared_reader_);
  }
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
  return absl::OkStatus();
}

absl::Status SqliteEventStore::prepare_read_statements(Connection& db, ReadConnection& rc) {
  struct Prep {
    Statement* target;
    std::string sql;
  };
  const std::vector<Prep> statements = {
      {&rc.begin, "BEGIN"},
      {&rc.commit, "COMMIT"},
      {&rc.find_stream, "SELECT id, deleted FROM streams WHERE name = ?1"},
      {&rc.read_forwards, absl::StrCat("SELECT ", kEventColumns,
                                       " FROM events e WHERE e.stream_id = ?1 AND e.revision >= ?2 "
                                       "ORDER BY e.revision ASC LIMIT ?3")},
      {&rc.read_backwards, absl::StrCat("SELECT ", kEventColumns,
                                        " FROM events e WHERE e.stream_id = ?1 AND e.revision <= ?2 "
                                        "ORDER BY e.revision DESC LIMIT ?3")},
      {&rc.read_all, absl::StrCat("SELECT ", kEventColumns,
                                  ", s.name FROM events e JOIN streams s ON s.id = e.stream_id "
                                  "WHERE e.position > ?1 ORDER BY e.position ASC LIMIT ?2")},
  };
  for (const Prep& p : statements) {
    auto st = db.prepare(p.sql);
    if (!st.ok()) return st.status();
    *p.target = std::move(*st);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SqliteEventStore::ReadConnection>> SqliteEventStore::open_read_connection() {
  auto rc = std::make_unique<ReadConnection>();
  auto db = Connection::open(options_.path, SQLITE_OPEN_READONLY);
  if (!db.ok()) return db.status();
  rc->owned = std::move(*db);
  sqlite3_busy_timeout(rc->owned.get(), kBusyTimeoutMs);
  if (absl::Status s = prepare_read_statements(rc->owned, *rc); !s.ok()) return s;
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
  {
    std::lock_guard lk(queue_mutex_);
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
    {
      std::unique_lock lk(queue_mutex_);
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
    }
    process_group(group);
    group.clear();
  }
}

void SqliteEventStore::process_group(std::vector<Op>& ops) {
  std::vector<AppendResult> results;
  results.reserve(ops.size());
  absl::Status failure;
  uint64_t events_in_group = 0;
  bool wrote = false;
  {
    std::lock_guard db_lock(db_mutex_);
    if (streams_.size() > kMaxCachedStreams) streams_.clear();
    const int64_t position_before = next_position_;
    failure = step_done(begin_, "BEGIN");
    for (size_t i = 0; failure.ok() && i < ops.size(); ++i) {
      auto r = ops[i].is_tombstone ? apply_tombstone(ops[i]) : apply_append(ops[i]);
      if (!r.ok()) {
        failure = r.status();
        break;
      }
      results.push_back(std::move(*r));
    }
    wrote = !dirty_.empty();  // every successful write marks its stream dirty
    events_in_group = static_cast<uint64_t>(next_position_ - position_before);
    if (failure.ok()) failure = flush_streams();
    if (failure.ok()) failure = step_done(commit_, "COMMIT");
    if (!failure.ok()) {
      if (sqlite3_get_autocommit(db_.get()) == 0) (void)step_done(rollback_, "ROLLBACK");
      reset_writer_state();
    }
  }
  if (!failure.ok()) {
    results.assign(ops.size(), error_result(std::string(failure.message())));
  } else {
    if (wrote) transactions_.fetch_add(1, std::memory_order_relaxed);
    events_written_.fetch_add(events_in_group, std::memory_order_relaxed);
  }
  const auto appends = static_cast<uint64_t>(
      std::count_if(ops.begin(), ops.end(), [](const Op& op) { return !op.is_tombstone; }));
  appends_.fetch_add(appends, std::memory_order_relaxed);
  for (size_t i = 0; i < ops.size(); ++i) ops[i].done(std::move(results[i]));
}

absl::StatusOr<SqliteEventStore::StreamEntry*> SqliteEventStore::lookup_stream(const std::string& name) {
  if (auto it = streams_.find(name); it != streams_.end()) return &*it;
  StreamState s;
  find_stream_.bind_text(1, name);
  ResetOnExit reset(find_stream_);
  const int rc = find_stream_.step();
  if (rc == SQLITE_ROW) {
    s.id = find_stream_.column_int64(0);
    if (!find_stream_.column_is_null(1)) s.last_revision = static_cast<uint64_t>(find_stream_.column_int64(1));
    s.deleted = find_stream_.column_int64(2) != 0;
  } else if (rc != SQLITE_DONE) {
    return step_error(find_stream_, rc, "find stream");
  }
  return &*streams_.emplace(name, s).first;
}

void SqliteEventStore::mark_dirty(StreamEntry* entry) {
  if (!entry->second.dirty) {
    entry->second.dirty = true;
    dirty_.push_back(entry);
  }
}

absl::StatusOr<AppendResult> SqliteEventStore::apply_append(Op& op) {
  auto entry = lookup_stream(op.stream);
  if (!entry.ok()) return entry.status();
  StreamState& s = (*entry)->second;
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
  if (absl::Status st = insert_events(*entry, op.events, r); !st.ok()) return st;
  return r;
}

absl::StatusOr<AppendResult> SqliteEventStore::apply_tombstone(const Op& op) {
  auto entry = lookup_stream(op.stream);
  if (!entry.ok()) return entry.status();
  StreamState& s = (*entry)->second;
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
  if (s.id == 0) s.id = next_stream_id_++;
  s.deleted = true;
  mark_dirty(*entry);
  AppendResult r;
  r.status = AppendStatus::kSuccess;
  if (current) r.current_revision = StreamRevision{*current};
  r.position = static_cast<uint64_t>(next_position_ - 1);  // the log's end when the stream was deleted
  return r;
}

absl::StatusOr<std::optional<AppendResult>> SqliteEventStore::match_existing(
    const StreamState& s, uint64_t from, const std::vector<ProposedEvent>& events) {
  if (events.empty() || s.id == 0) return std::optional<AppendResult>();
  ids_from_.bind_int64(1, s.id);
  ids_from_.bind_int64(2, clamp_to_int64(from));
  ids_from_.bind_int64(3, static_cast<int64_t>(events.size()));
  ResetOnExit reset(ids_from_);
  size_t matched = 0;
  uint64_t last_position = 0;
  int rc = SQLITE_DONE;
  while ((rc = ids_from_.step()) == SQLITE_ROW) {
    const void* id = sqlite3_column_blob(ids_from_.get(), 0);
    const int n = sqlite3_column_bytes(ids_from_.get(), 0);
    const Uuid::Bytes& want = events[matched].id.bytes();
    if (n != static_cast<int>(want.size()) || std::memcmp(id, want.data(), want.size()) != 0) break;
    last_position = static_cast<uint64_t>(ids_from_.column_int64(1));
    ++matched;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return step_error(ids_from_, rc, "read event ids");
  if (matched != events.size()) return std::optional<AppendResult>();
  AppendResult r;
  r.status = AppendStatus::kSuccess;
  r.idempotent = true;
  r.current_revision = StreamRevision{from + events.size() - 1};
  r.position = last_position;
  return std::optional<AppendResult>(std::move(r));
}

absl::StatusOr<uint64_t> SqliteEventStore::position_of(const StreamState& s, uint64_t revision) {
  position_at_.bind_int64(1, s.id);
  position_at_.bind_int64(2, clamp_to_int64(revision));
  ResetOnExit reset(position_at_);
  const int rc = position_at_.step();
  if (rc == SQLITE_ROW) return static_cast<uint64_t>(position_at_.column_int64(0));
  if (rc == SQLITE_DONE) return uint64_t{0};
  return step_error(position_at_, rc, "read position");
}

absl::Status SqliteEventStore::insert_events(StreamEntry* entry, const std::vector<ProposedEvent>& events,
                                             AppendResult& result) {
  StreamState& s = entry->second;
  if (s.id == 0) s.id = next_stream_id_++;
  uint64_t revision = s.last_revision ? *s.last_revision + 1 : 0;
  const int64_t created = now_ticks();
  for (const ProposedEvent& ev : events) {
    Statement& st = insert_event_;
    st.bind_int64(1, next_position_);
    st.bind_int64(2, s.id);
    st.bind_int64(3, clamp_to_int64(revision));
    st.bind_blob(4, ev.id.bytes().data(), ev.id.bytes().size());
    st.bind_text(5, ev.type);
    st.bind_text(6, ev.content_type);
    st.bind_blob(7, ev.data.data(), ev.data.size());
    st.bind_blob(8, ev.metadata.data(), ev.metadata.size());
    st.bind_int64(9, created);
    if (absl::Status status = step_done(st, "insert event"); !status.ok()) return status;
    remember_id(ev.id, s.id, revision);
    result.position = static_cast<uint64_t>(next_position_);
    ++next_position_;
    ++revision;
  }
  s.last_revision = revision - 1;
  mark_dirty(entry);
  result.current_revision = StreamRevision{revision - 1};
  return absl::OkStatus();
}

absl::Status SqliteEventStore::flush_streams() {
  for (StreamEntry* entry : dirty_) {
    const StreamState& s = entry->second;
    upsert_stream_.bind_int64(1, s.id);
    upsert_stream_.bind_text(2, entry->first);
    if (s.last_revision) {
      upsert_stream_.bind_int64(3, clamp_to_int64(*s.last_revision));
    } else {
      upsert_stream_.bind_null(3);
    }
    upsert_stream_.bind_int64(4, s.deleted ? 1 : 0);
    if (absl::Status st = step_done(upsert_stream_, "write stream"); !st.ok()) return st;
    entry->second.dirty = false;
  }
  dirty_.clear();
  return absl::OkStatus();
}

void SqliteEventStore::remember_id(const Uuid& id, int64_t stream_id, uint64_t revision) {
  if (recent_ids_.empty()) recent_ids_.resize(kRecentIdSlots);
  recent_ids_[recent_slot(id)] = RecentId{id, stream_id, revision};
}

void SqliteEventStore::reset_writer_state() {
  // After a rollback the caches may describe writes that never happened: forget them.
  streams_.clear();
  dirty_.clear();
  recent_ids_.assign(recent_ids_.size(), RecentId{});
  (void)load_counters();  // if this fails too, the next group's inserts fail and are reported
}

// ---------------------------------------------------------------------------------------------
// Reads

absl::StatusOr<SqliteEventStore::ReadLease> SqliteEventStore::acquire_reader() {
  if (options_.in_memory) return ReadLease(std::unique_lock(db_mutex_), shared_reader_.get());
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
  Statement& st = forwards ? c.read_forwards : c.read_backwards;
  st.bind_int64(1, stream_id);
  st.bind_int64(2, bound);
  st.bind_int64(3, clamp_to_int64(max_count));
  ResetOnExit reset(st);
  int rc = SQLITE_DONE;
  while ((rc = st.step()) == SQLITE_ROW) {
    auto e = row_to_event(st);
    if (!e.ok()) return e.status();
    e->stream = stream;
    result.events.push_back(std::move(*e));
  }
  if (rc != SQLITE_DONE) return step_error(st, rc, "read stream");
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
  std::unique_lock life(lifecycle_mutex_);
  if (closed_) return;
  closed_ = true;
  shared_reader_.reset();
  {
    std::lock_guard lk(pool_mutex_);
    idle_readers_.clear();
  }
  for (Statement* st : {&begin_, &commit_, &rollback_, &insert_event_, &find_stream_, &upsert_stream_, &ids_from_,
                        &position_at_}) {
    *st = Statement();
  }
  db_.close();
}

}  // namespace kingest::store::internal
