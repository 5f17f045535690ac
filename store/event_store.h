// Embedded event store with KurrentDB's append/read semantics, over SQLite (WAL) or in memory.
//
// Owner: whoever opens it (the demo, `serve-store`, tests). Threads: `append` and `append_multi`
// may be called from any thread; a single writer thread (owned by the store) runs group commits and
// invokes the callbacks on that thread, so callbacks must be short, must not block or throw, and
// must not call `append_sync`, `append_multi_sync`, `tombstone` or `close` (they wait for that
// thread). `read` may be called from any thread concurrently with appends (it uses its own
// connection). Lifecycle: `open` → use → `close` (or destruction) drains queued appends, answers
// each, then closes the database.
//
//   auto store = EventStore::open({.path = "/tmp/events.db"}).value();
//   store->append("System-1", ExpectNoStream{}, {ev}, [](AppendResult r) { ... });
//   auto page = store->read("System-1", ReadFrom::start(), 100, ReadDirection::kForwards);
//
// Semantics (KurrentDB): revisions are 0-based. Expected revision: exact n, no_stream, any,
// stream_exists. Idempotency: with an exact revision (or no_stream on an existing stream) the
// proposed ids are compared with the ids at revisions expected+1...; all equal → success reporting
// the original last revision and position, nothing written; otherwise wrong expected version.
// Every event gets a global position (strictly increasing across all streams).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/types.h"
#include "core/uuid.h"

namespace kingest::store {

struct ProposedEvent {
  Uuid id;
  std::string type;
  std::string content_type;  // "application/json" or "application/octet-stream"
  std::string data;
  std::string metadata;      // user metadata bytes (by convention a JSON object)
};

struct RecordedEvent {
  Uuid id;
  std::string stream;
  StreamRevision revision{0};
  uint64_t position = 0;      // global commit/prepare position
  std::string type;
  std::string content_type;
  std::string data;
  std::string metadata;
  int64_t created_ticks = 0;  // 100 ns ticks since the Unix epoch (KurrentDB's `created`)
};

enum class AppendStatus {
  kSuccess,
  kWrongExpectedVersion,
  kStreamDeleted,
  kError,  // storage failure; `message` says what
};

struct AppendResult {
  AppendStatus status = AppendStatus::kError;
  // Success: revision of the stream's last event after the append (for an idempotent re-append,
  // the revision of the last matching event). Wrong expected version: the stream's current
  // revision; nullopt when the stream does not exist.
  std::optional<StreamRevision> current_revision;
  uint64_t position = 0;  // success: global position of the last event of this append
  bool idempotent = false;  // success without writing: every id was already there
  std::string message;
};

enum class ReadDirection { kForwards, kBackwards };

struct ReadFrom {
  enum class Kind { kStart, kEnd, kRevision } kind = Kind::kStart;
  uint64_t revision = 0;
  static ReadFrom start() { return {Kind::kStart, 0}; }
  static ReadFrom end() { return {Kind::kEnd, 0}; }
  static ReadFrom at(StreamRevision r) { return {Kind::kRevision, r.value()}; }
};

struct ReadResult {
  bool stream_found = false;  // false: the stream does not exist ("not found"; callers map to empty)
  bool stream_deleted = false;
  std::vector<RecordedEvent> events;
};

// Atomic multi-stream append (KurrentDB 26.1 AppendRecords): records of many streams, interleaved
// in any order, written in the request's order (positions increase in record order; each stream's
// revisions continue from its last), together with consistency checks evaluated inside the same
// transaction. Any failing check: nothing of the request is written and every failing check is
// reported. There is no idempotent re-append here: the checks are exact.
struct StreamCheck {
  uint32_t stream;  // index into the MultiAppend's streams
  ExpectedRevision expected;  // exact n, no_stream, stream_exists; any checks nothing
};
struct RecordWrite {
  uint32_t stream;  // index into the MultiAppend's streams
  ProposedEvent event;
};
// A record whose bytes belong to the caller: they must stay valid until the request's callback has
// run (e.g. owned by the callback). Saves a copy of every string when the caller already holds the
// bytes, as a server does in the request it received.
struct RecordView {
  uint32_t stream;  // index into the MultiAppend's streams
  Uuid id;
  std::string_view type;
  std::string_view content_type;
  std::string_view data;
  std::string_view metadata;
};
struct MultiAppend {
  // The streams' names, indexed by the records and checks: either `streams` (owned) or
  // `stream_views` (borrowed like `record_views`: valid until the callback has run), not both.
  std::vector<std::string> streams;
  std::vector<std::string_view> stream_views;
  // Optional: each name's `EventStore::stream_hash`, from a caller that has hashed the names
  // already (a server indexing its request's streams); empty: the store hashes them when the
  // request is queued, on the caller's thread.
  std::vector<uint64_t> stream_hashes;
  // The records, in log order: either `records` (owned) or `record_views` (borrowed), not both.
  std::vector<RecordWrite> records;
  std::vector<RecordView> record_views;
  std::vector<StreamCheck> checks;
  [[nodiscard]] size_t record_count() const { return records.size() + record_views.size(); }
  [[nodiscard]] size_t stream_count() const { return streams.size() + stream_views.size(); }
};
struct CheckViolation {
  static constexpr uint32_t kNoCheck = UINT32_MAX;  // check_index of a record to a tombstoned stream
  static constexpr int64_t kNoStream = -1;
  static constexpr int64_t kTombstoned = -100;
  uint32_t check_index;  // index into MultiAppend::checks, or kNoCheck
  uint32_t stream;       // index into the MultiAppend's streams
  ExpectedRevision expected;
  int64_t actual;  // the stream's revision, kNoStream or kTombstoned
};
struct MultiAppendResult {
  // kSuccess; kWrongExpectedVersion (violations); kStreamDeleted (a record to a tombstoned stream,
  // in violations too, with any other failing check); kError (storage failure or an invalid
  // request: a stream index out of range, an empty stream name, or both `records` and
  // `record_views` given; `message` says which).
  AppendStatus status = AppendStatus::kError;
  std::vector<CheckViolation> violations;  // every failing check; nothing written
  // Success: (stream index, revision of its last record) for every stream index with records.
  std::vector<std::pair<uint32_t, StreamRevision>> revisions;
  uint64_t position = 0;  // success: global position of the request's last record (0: no records)
  std::string message;
};

struct StoreOptions {
  std::string path;        // database file; ignored when in_memory
  bool in_memory = false;  // same SQLite code on an in-memory database
  std::chrono::microseconds group_commit_window{2000};  // how long the writer gathers appends
  size_t group_commit_max = 4096;                       // appends per transaction at most
  // Bytes (event data + metadata + type names) per transaction at most; a single larger append
  // still goes through, alone. Bounds how long one transaction holds the database.
  size_t group_commit_max_bytes = size_t{8} << 20;
};

struct StoreStats {
  uint64_t transactions = 0;  // committed write transactions
  uint64_t appends = 0;       // append requests answered
  uint64_t events_written = 0;
};

class EventStore {
 public:
  using AppendCallback = std::function<void(AppendResult)>;

  static absl::StatusOr<std::unique_ptr<EventStore>> open(const StoreOptions& options);
  // The hash the store keys its streams by (MultiAppend::stream_hashes).
  static uint64_t stream_hash(std::string_view name) { return std::hash<std::string_view>{}(name); }
  virtual ~EventStore() = default;

  virtual void append(std::string stream, ExpectedRevision expected, std::vector<ProposedEvent> events,
                      AppendCallback done) = 0;
  // Convenience: blocks until the append is answered.
  AppendResult append_sync(std::string stream, ExpectedRevision expected, std::vector<ProposedEvent> events);

  // One request is one unit of the writer's group commit (never split across transactions). An
  // invalid request is answered at once, on the caller's thread; otherwise `done` runs on the
  // writer thread after the commit, like `append`'s callback.
  virtual void append_multi(MultiAppend request, std::function<void(MultiAppendResult)> done) = 0;
  // Convenience: blocks until the request is answered.
  MultiAppendResult append_multi_sync(MultiAppend request);

  virtual absl::StatusOr<ReadResult> read(const std::string& stream, ReadFrom from, uint64_t max_count,
                                          ReadDirection direction) = 0;
  // Events of every stream in global position order, starting after `after_position` (0 = start).
  virtual absl::StatusOr<std::vector<RecordedEvent>> read_all(uint64_t after_position, uint64_t max_count) = 0;
  // Hard delete (tombstone): later appends and reads answer "stream deleted". Checks `expected` like
  // an append with no events. Blocks until the writer has committed it. On success `position` is
  // the log's last position at that time (no tombstone record is written); the stream's events stay
  // in `read_all`, as in KurrentDB before a scavenge.
  virtual AppendResult tombstone(const std::string& stream, ExpectedRevision expected) = 0;

  [[nodiscard]] virtual StoreStats stats() const = 0;
  // Drains and answers queued appends, then closes. Idempotent.
  virtual void close() = 0;
};

}  // namespace kingest::store
