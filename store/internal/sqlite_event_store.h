// The SQLite implementation of EventStore: a group-commit writer thread plus read connections.
//
// Owner: `EventStore::open` hands it out behind the EventStore interface. Threads: `append` and
// `tombstone` enqueue (any thread); one writer thread owned by this object drains the queue in
// groups, runs each group in one transaction and then answers the group's callbacks on that thread.
// `read` / `read_all` run on the caller's thread: in file mode on a pooled read-only connection
// (WAL lets them run beside the writer), in memory mode on the writer's connection under
// `db_mutex_`, which the writer holds for the whole of a transaction, so a read never sees a
// half-written group. Lifecycle: `start` → use → `close` (drains, answers, joins, closes).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/event_store.h"
#include "store/internal/sqlite.h"

namespace kingest::store::internal {

class SqliteEventStore final : public EventStore {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteEventStore>> create(const StoreOptions& options);
  ~SqliteEventStore() override;

  void append(std::string stream, ExpectedRevision expected, std::vector<ProposedEvent> events,
              AppendCallback done) override;
  absl::StatusOr<ReadResult> read(const std::string& stream, ReadFrom from, uint64_t max_count,
                                  ReadDirection direction) override;
  absl::StatusOr<std::vector<RecordedEvent>> read_all(uint64_t after_position, uint64_t max_count) override;
  AppendResult tombstone(const std::string& stream, ExpectedRevision expected) override;
  [[nodiscard]] StoreStats stats() const override;
  void close() override;

 private:
  // One queued write request.
  struct Op {
    bool is_tombstone = false;
    std::string stream;
    ExpectedRevision expected;
    std::vector<ProposedEvent> events;
    AppendCallback done;
    std::chrono::steady_clock::time_point enqueued;
    size_t bytes = 0;  // counted against group_commit_max_bytes
  };

  // The writer's view of one stream. id == 0: the stream has no row yet.
  struct StreamState {
    int64_t id = 0;
    std::optional<uint64_t> last_revision;  // nullopt: no event yet
    bool deleted = false;
    bool dirty = false;  // changed in the open transaction; written to `streams` before commit
  };

  // Statements of a connection used for reads (a pooled read-only connection, or the writer's
  // connection in memory mode).
  struct ReadConnection {
    Connection owned;     // empty when the statements are prepared on the writer's connection
    Statement begin;
    Statement commit;
    Statement find_stream;
    Statement read_forwards;
    Statement read_backwards;
    Statement read_all;
  };

  using StreamEntry = std::pair<const std::string, StreamState>;

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

  explicit SqliteEventStore(const StoreOptions& options) : options_(options) {}

  absl::Status open_database();
  absl::Status load_counters();
  static absl::Status prepare_read_statements(Connection& db, ReadConnection& rc);
  absl::StatusOr<std::unique_ptr<ReadConnection>> open_read_connection();

  // Writer thread.
  void writer_loop();
  void process_group(std::vector<Op>& ops);
  // Applies one op inside the open transaction. An error status is a storage failure (the group
  // is rolled back); a failed expectation is an AppendResult and writes nothing.
  absl::StatusOr<AppendResult> apply_append(Op& op);
  absl::StatusOr<AppendResult> apply_tombstone(const Op& op);
  absl::StatusOr<StreamEntry*> lookup_stream(const std::string& name);
  void mark_dirty(StreamEntry* entry);
  // Compares `events` ids with the stream's events from revision `from`.
  absl::StatusOr<std::optional<AppendResult>> match_existing(const StreamState& s, uint64_t from,
                                                             const std::vector<ProposedEvent>& events);
  absl::StatusOr<uint64_t> position_of(const StreamState& s, uint64_t revision);
  absl::Status insert_events(StreamEntry* entry, const std::vector<ProposedEvent>& events, AppendResult& result);
  absl::Status flush_streams();
  void remember_id(const Uuid& id, int64_t stream_id, uint64_t revision);
  void reset_writer_state();

  void enqueue(Op op);

  // Reads.
  class ReadLease;
  absl::StatusOr<ReadLease> acquire_reader();
  void release_reader(std::unique_ptr<ReadConnection> rc);
  static absl::StatusOr<RecordedEvent> row_to_event(const Statement& st);

  const StoreOptions options_;

  // Writer connection and its statements; used by the writer thread (and, in memory mode, by
  // readers) under db_mutex_.
  std::mutex db_mutex_;
  Connection db_;
  Statement begin_;
  Statement commit_;
  Statement rollback_;
  Statement insert_event_;
  Statement find_stream_;
  Statement upsert_stream_;
  Statement ids_from_;
  Statement position_at_;

  // Writer-thread state (only touched by the writer thread once started).
  std::unordered_map<std::string, StreamState> streams_;
  std::vector<StreamEntry*> dirty_;  // streams written by the open transaction
  std::vector<RecentId> recent_ids_;
  int64_t next_position_ = 1;
  int64_t next_stream_id_ = 1;

  // Queue between appenders and the writer.
  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<Op> queue_;
  size_t queue_bytes_ = 0;
  bool stopping_ = false;
  std::thread writer_;

  // Reads: memory mode shares the writer connection; file mode pools read-only connections.
  std::unique_ptr<ReadConnection> shared_reader_;
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
