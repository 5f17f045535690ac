// The SQLite implementation of EventStore: a group-commit writer thread, a checkpointer thread and
// read connections.
//
// Owner: `EventStore::open` hands it out behind the EventStore interface. Threads: `append` and
// `tombstone` enqueue (any thread); one writer thread owned by this object drains the queue in
// groups, runs each group in one transaction and then answers the group's callbacks on that thread;
// a checkpointer thread copies the WAL back into the database file when the writer asks.
// `read` / `read_all` run on the caller's thread on a pooled read-only connection: WAL lets them run
// beside the writer and see only committed groups, in both modes (an in-memory store is a WAL
// database in a private directory on tmpfs, removed on close, its WAL in the process's memory).
// Lifecycle: `create` → use → `close` (drains, answers, joins, closes).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/event_store.h"
#include "store/internal/sqlite.h"
#include "store/internal/stream_map.h"
#include "store/internal/stream_runs.h"

namespace kingest::store::internal {

class SqliteEventStore final : public EventStore {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteEventStore>> create(const StoreOptions& options);
  ~SqliteEventStore() override;

  void append(std::string stream, ExpectedRevision expected, std::vector<ProposedEvent> events,
              AppendCallback done) override;
  void append_multi(MultiAppend request, std::function<void(MultiAppendResult)> done) override;
  absl::StatusOr<ReadResult> read(const std::string& stream, ReadFrom from, uint64_t max_count,
                                  ReadDirection direction) override;
  absl::StatusOr<std::vector<RecordedEvent>> read_all(uint64_t after_position, uint64_t max_count) override;
  AppendResult tombstone(const std::string& stream, ExpectedRevision expected) override;
  [[nodiscard]] StoreStats stats() const override;
  void close() override;

  // Memory mode: where stores put their private directories (/dev/shm when it has room, else the
  // temporary directory), and this store's directory (empty in file mode or once closed).
  static constexpr const char* kMemoryDirPrefix = "kingest-store-";
  static std::string memory_base_dir();
  [[nodiscard]] const std::string& memory_dir() const { return memory_dir_; }
  // Tests only: runs on the writer thread inside each group's transaction, just before COMMIT. Set
  // it before the appends it is meant for.
  void set_before_commit_hook_for_testing(std::function<void()> hook) { before_commit_hook_ = std::move(hook); }

 private:
  // A queued multi-stream append (kept apart so that a plain append's Op stays small).
  struct MultiOp {
    MultiAppend request;
    std::function<void(MultiAppendResult)> done;
  };

  // One queued write request: an append, a tombstone or (multi set) a multi-stream append.
  struct Op {
    bool is_tombstone = false;
    std::string stream;
    ExpectedRevision expected;
    std::vector<ProposedEvent> events;
    AppendCallback done;
    std::unique_ptr<MultiOp> multi;
    std::chrono::steady_clock::time_point enqueued;
    size_t bytes = 0;  // counted against group_commit_max_bytes
  };

  // What an answered op leaves to free: its events (or its multi-stream request).
  struct Payload {
    std::vector<ProposedEvent> events;
    std::unique_ptr<MultiOp> multi;
  };

  // The writer's view of one stream. id == 0: the stream has no row yet.
  struct StreamState {
    int64_t id = 0;
    std::optional<uint64_t> last_revision;  // nullopt: no event yet
    bool deleted = false;
    // Scratch of the multi-stream append being applied (zero otherwise): the stream may appear
    // under several indexes of one request, and these count per stream, not per index.
    bool multi_checked = false;
    uint32_t multi_records = 0;
    // Memory mode: the stream's runs (its index, which the database there lacks), in revision
    // order; appended by the writer under names_mutex_, read by readers under it up to
    // committed_position_.
    std::vector<Run> runs;
  };

  // One row of a multi-row INSERT; the bytes belong to the group's requests.
  struct Row {
    int64_t position;
    int64_t stream_id;
    int64_t revision;
    int64_t run;  // the run's length on its first row, 0 (NULL) on the others
    const Uuid* id;
    std::string_view type;
    std::string_view content_type;
    std::string_view data;
    std::string_view metadata;
  };

  // Statements of a pooled read-only connection.
  struct ReadConnection {
    Connection db;
    Statement begin;
    Statement commit;
    Statement find_stream;   // by name
    Statement stream_by_id;  // memory mode: the stream row of an id from ids_by_name_
    Statement read_all;
    std::unique_ptr<RunStatements> runs;
    ReadConnection();
    ~ReadConnection();
  };

  // One slot of the recent-id cache: direct-mapped by the id's hash, a newer id evicts an older
  // one. Lossy on purpose: `any` deduplication is best effort, and one store per event is all it
  // may cost on the write path. stream_id == 0: empty slot.
  struct RecentId {
    Uuid id;
    int64_t stream_id = 0;
    uint64_t revision = 0;
  };
  static size_t recent_slot(const Uuid& id);
  const RecentId* find_recent(const Uuid& id) const;

  // Rows per prepared multi-row INSERT. The rows of a whole group are buffered and inserted
  // kMaxInsertRows at a time, across appends and streams: a statement's fixed cost (step, halt,
  // reset) is paid per kMaxInsertRows events rather than per append.
  static constexpr size_t kMaxInsertRows = 16;
  static constexpr size_t kInsertColumns = 10;

  explicit SqliteEventStore(const StoreOptions& options);

  absl::Status open_database();
  absl::Status make_memory_dir();
  absl::Status load_counters();
  absl::StatusOr<std::unique_ptr<ReadConnection>> open_read_connection();

  // Writer thread.
  void writer_loop();
  void process_group(std::vector<Op>& ops);
  // Applies one op inside the open transaction. An error status is a storage failure (the group
  // is rolled back); a failed expectation is an AppendResult and writes nothing.
  absl::StatusOr<AppendResult> apply_append(Op& op);
  absl::StatusOr<AppendResult> apply_tombstone(const Op& op);
  absl::StatusOr<MultiAppendResult> apply_multi(MultiAppend& request);
  // Gives `s` (cached under `name`) the next stream id and buffers its row.
  // `hash`: the name's StreamMap::hash. The name must stay valid until the stream rows are flushed.
  absl::Status create_stream_row(std::string_view name, uint64_t hash, StreamState& s);
  absl::Status insert_rows(const Row* rows, size_t n);
  absl::Status insert_stream_rows(size_t n);
  // Buffers one row of the open transaction; inserts the buffer when it is full.
  absl::Status add_row(const Row& row) {
    pending_rows_[pending_count_++] = row;
    return pending_count_ == kMaxInsertRows ? flush_rows() : absl::OkStatus();
  }
  // Inserts the buffered rows: before COMMIT and before the writer reads events it may have
  // buffered (idempotency checks).
  absl::Status flush_rows() {
    const size_t n = pending_count_;
    pending_count_ = 0;
    return n == 0 ? absl::OkStatus() : insert_rows(pending_rows_, n);
  }
  // The same for new streams' rows: before COMMIT and before a tombstone updates a row.
  absl::Status flush_stream_rows() {
    const size_t n = pending_stream_count_;
    pending_stream_count_ = 0;
    return n == 0 ? absl::OkStatus() : insert_stream_rows(n);
  }
  absl::StatusOr<StreamState*> lookup_stream(const std::string& name);
  // The same with the name's hash already taken (StreamMap::hash).
  absl::StatusOr<StreamState*> lookup_stream(std::string_view name, uint64_t hash);
  // Compares `events` ids with the stream's events from revision `from`.
  absl::StatusOr<std::optional<AppendResult>> match_existing(const StreamState& s, uint64_t from,
                                                             const std::vector<ProposedEvent>& events);
  absl::StatusOr<uint64_t> position_of(const StreamState& s, uint64_t revision);
  absl::Status insert_events(const std::string& name, StreamState& s, const std::vector<ProposedEvent>& events,
                             AppendResult& result);
  void remember_id(const Uuid& id, int64_t stream_id, uint64_t revision);
  void reset_writer_state();
  // Memory mode: every stream of the database into streams_ and ids_by_name_ (after a rollback).
  absl::Status load_all_streams();
  // Memory mode: the committed group's new streams into ids_by_name_, its runs to readers.
  void publish_commit();
  // Memory mode: a new run of `s` (written by the open transaction).
  void add_run(StreamState& s, const Run& run) {
    if (!options_.in_memory) return;
    std::unique_lock names(names_mutex_);
    s.runs.push_back(run);
  }
  // Memory mode: the runs of a multi-stream append, added under one hold of names_mutex_ once the
  // request is written (a run per stream group: one lock per event on wide data otherwise).
  void add_runs(const std::vector<std::pair<StreamState*, Run>>& runs) {
    if (!options_.in_memory || runs.empty()) return;
    std::unique_lock names(names_mutex_);
    // On wide data each state and its runs were last touched many requests ago: a state is loaded
    // eight runs ahead, its runs (copied when they grow) four ahead.
    const size_t n = runs.size();
    for (size_t k = 0; k < n; ++k) {
      if (k + 8 < n) __builtin_prefetch(&runs[k + 8].first->runs);
      if (k + 4 < n && !runs[k + 4].first->runs.empty()) __builtin_prefetch(runs[k + 4].first->runs.data());
      runs[k].first->runs.push_back(runs[k].second);
    }
  }
  // Memory mode, its maps complete: runs from the streams' states, not the database.
  [[nodiscard]] bool memory_runs() const { return options_.in_memory && ids_complete_.load(); }
  // The writer's visit of a stream's events from revision `from` upwards (as visit_stream), its
  // open transaction's included.
  template <typename Visit>
  absl::Status visit_written(const StreamState& s, int64_t from, uint64_t max_count, Visit&& visit) {
    if (!memory_runs()) return visit_stream(*writer_runs_, s.id, from, /*forwards=*/true, max_count, visit);
    std::vector<Run> selected;
    select_runs(s.runs.data(), s.runs.size(), from, /*forwards=*/true, max_count, selected);
    return visit_selected(*writer_runs_, s.id, from, /*forwards=*/true, max_count, selected, visit);
  }
  // Records the WAL's size after each commit (sqlite3_wal_hook).
  static int on_wal_commit(void* self, sqlite3* db, const char* name, int frames);

  // Checkpoints (copying the WAL back into the database file, then restarting it) run on their own
  // thread and connection, so neither a group's callbacks nor the next group wait for them. Only a
  // WAL grown past kWalFramesCap (the checkpointer never caught up) makes the writer checkpoint.
  void checkpointer_loop();
  void request_checkpoint();
  void stop_checkpointer();

  void enqueue(Op op);

  // Reads.
  class ReadLease;
  absl::StatusOr<ReadLease> acquire_reader();
  void release_reader(std::unique_ptr<ReadConnection> rc);
  static absl::StatusOr<RecordedEvent> row_to_event(const Statement& st);

  const StoreOptions options_;
  std::string db_path_;        // the database file (in memory mode: inside memory_dir_)
  const char* vfs_ = nullptr;  // memory mode: memory_vfs.h's (the WAL in memory); else SQLite's default
  std::string memory_dir_;     // memory mode: private directory removed on close
  int memory_dir_lock_ = -1;   // memory mode: flock on memory_dir_ (marks it live)

  // Writer connection and its statements; used only by the writer thread once started (and by
  // open / close around it).
  Connection db_;
  Statement begin_;
  Statement commit_;
  Statement rollback_;
  Statement insert_events_[kMaxInsertRows];  // [k]: k + 1 rows
  Statement find_stream_;
  Statement insert_stream_;
  Statement insert_streams_[kMaxInsertRows];  // [k]: k + 1 new streams' rows
  Statement delete_stream_;
  std::unique_ptr<RunStatements> writer_runs_;

  // Writer-thread state (only touched by the writer thread once started).
  StreamMap<StreamState> streams_;
  std::vector<RecentId> recent_ids_;
  std::vector<StreamState*> multi_states_;    // apply_multi: the request's streams, by index
  std::vector<uint8_t> multi_index_written_;  // apply_multi: the indexes with records
  std::vector<std::pair<StreamState*, Run>> multi_runs_;  // apply_multi: the request's new runs
  int64_t next_position_ = 1;
  int64_t next_stream_id_ = 1;
  bool wrote_ = false;                     // the open transaction has written something
  Row pending_rows_[kMaxInsertRows] = {};  // rows of the open transaction not inserted yet
  size_t pending_count_ = 0;
  // New streams' rows not inserted yet: (id, name); the names live in the group's ops.
  std::pair<int64_t, std::string_view> pending_streams_[kMaxInsertRows] = {};
  size_t pending_stream_count_ = 0;
  int64_t group_created_ = 0;  // `created` of the open transaction's events
  // Every stream with a row is in streams_ (the table was empty at open and nothing was evicted),
  // so a miss means a new stream and needs no query. Always, in memory mode.
  bool streams_complete_ = false;
  // Memory mode: the streams created by the open transaction (each state and its name as the map
  // stores it, taken while the entry is at hand), for ids_by_name_ once it commits.
  std::vector<std::pair<std::string_view, StreamState*>> created_streams_;
  int wal_frames_ = 0;                        // frames in the WAL after the last commit
  std::function<void()> before_commit_hook_;  // tests only

  // Checkpointer.
  Connection ckpt_db_;
  std::thread checkpointer_;
  std::mutex ckpt_mutex_;
  std::condition_variable ckpt_cv_;
  bool ckpt_requested_ = false;  // guarded by ckpt_mutex_
  bool ckpt_stopping_ = false;   // guarded by ckpt_mutex_
  std::mutex ckpt_run_mutex_;    // held while a checkpoint runs (the checkpointer's or the writer's)

  // Queue between appenders and the writer.
  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<Op> queue_;
  size_t queue_bytes_ = 0;
  // Events of answered appends, freed by the next appends (one batch each, outside the lock) or by
  // the writer when it has nothing else to do: the payloads were allocated by the appending
  // threads, and freeing them is no work for the writer's critical path.
  std::deque<Payload> graveyard_;  // a deque: growing it moves nothing
  bool stopping_ = false;
  std::thread writer_;

  // Memory mode's indexes. The database there is new and private, so the writer's streams_ holds
  // every stream, and the database has no index on stream names or runs (each new stream's name
  // and each append's run would dirty a page at a random place of one in every commit). Readers
  // find a name's state here: the writer adds a group's new streams after its commit, before its
  // answers. Keys view the names stored in streams_; they are cleared together, under the lock.
  std::shared_mutex names_mutex_;
  absl::flat_hash_map<std::string_view, StreamState*> ids_by_name_;  // guarded by names_mutex_
  int64_t committed_position_ = 0;  // guarded by names_mutex_: the last committed event's position
  // False while streams_ is being rebuilt after a failed group, or when that failed: readers then
  // look names up in the table (without an index: a scan, but right).
  std::atomic<bool> ids_complete_{true};

  // Pooled read-only connections.
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<ReadConnection>> idle_readers_;

  // Held shared by reads, exclusively by close() while it tears the connections down.
  std::shared_mutex lifecycle_mutex_;
  bool closed_ = false;
  std::mutex close_mutex_;

  std::atomic<uint64_t> transactions_{0};
  std::atomic<uint64_t> appends_{0};
  std::atomic<uint64_t> events_written_{0};
};

}  // namespace kingest::store::internal
