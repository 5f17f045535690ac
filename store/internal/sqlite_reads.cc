// The read path: reads of a stream (through the run index) and of $all, each in one read
// transaction on a pooled read-only connection, beside the writer.
#include "absl/strings/str_cat.h"
#include "store/internal/sqlite_event_store.h"
#include "store/internal/stream_runs.h"

namespace kingest::store::internal {
namespace {

// Read-only connections kept open between reads.
constexpr size_t kMaxIdleReaders = 4;

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

  const bool forwards = direction == ReadDirection::kForwards;
  int64_t bound = 0;
  bool past_end = false;  // nothing to read, whatever the stream holds
  switch (from.kind) {
    case ReadFrom::Kind::kStart:
      bound = 0;
      break;
    case ReadFrom::Kind::kEnd:
      past_end = forwards;  // nothing after the end
      bound = std::numeric_limits<int64_t>::max();
      break;
    case ReadFrom::Kind::kRevision:
      past_end = forwards && from.revision > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
      bound = clamp_to_int64(from.revision);
      break;
  }

  ReadResult result;
  int64_t stream_id = 0;
  // Memory mode: the stream's state from the writer's index, and the runs this read needs of those
  // committed, taken before the snapshot starts (its first statement, below), so the snapshot
  // holds their rows; a stream row the snapshot lacks is a stream created after it: not found.
  // Elsewhere, and while that index is rebuilt, the database's indexes.
  bool from_memory = false;
  std::vector<Run> selected;
  {
    Statement* find = &c.find_stream;
    if (options_.in_memory && ids_complete_.load()) {
      std::shared_lock names(names_mutex_);
      const auto it = ids_by_name_.find(stream);
      if (it != ids_by_name_.end()) {
        const StreamState& s = *it->second;
        find = &c.stream_by_id;
        find->bind_int64(1, s.id);
        size_t n = s.runs.size();
        while (n > 0 && s.runs[n - 1].position > committed_position_) --n;
        if (!past_end) select_runs(s.runs.data(), n, bound, forwards, max_count, selected);
        from_memory = true;
      } else if (ids_complete_.load()) {
        return result;  // not found
      }
    }
    if (find == &c.find_stream) find->bind_text(1, stream);
    ResetOnExit reset(*find);
    const int rc = find->step();
    if (rc == SQLITE_DONE) return result;  // not found
    if (rc != SQLITE_ROW) return step_error(*find, rc, "find stream");
    stream_id = find->column_int64(0);
    result.stream_found = true;
    result.stream_deleted = find->column_int64(1) != 0;
  }
  if (result.stream_deleted || max_count == 0 || past_end) return result;

  absl::Status status = absl::OkStatus();
  auto take = [&](const Statement& row) {
    auto e = row_to_event(row);
    if (!e.ok()) {
      status = e.status();
      return false;
    }
    e->stream = stream;
    result.events.push_back(std::move(*e));
    return true;
  };
  absl::Status visited = from_memory ? visit_selected(*c.runs, stream_id, bound, forwards, max_count, selected, take)
                                     : visit_stream(*c.runs, stream_id, bound, forwards, max_count, take);
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

}  // namespace kingest::store::internal
