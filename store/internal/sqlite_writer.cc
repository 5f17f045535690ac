// The write path's threads: appends and tombstones queued to one writer thread, which runs them in
// groups (one transaction each; sqlite_appends.cc applies each request inside it), answers them,
// and keeps the WAL short with the checkpointer thread.
#include <algorithm>
#include <chrono>
#include <future>

#include "absl/strings/str_cat.h"
#include "store/internal/sqlite_event_store.h"

namespace kingest::store::internal {
namespace {

// The writer forgets its stream cache when it grows past this (rows are re-read on demand).
constexpr size_t kMaxCachedStreams = 1 << 20;
// WAL frames after which a commit asks the checkpointer to run (SQLite's own default is 1000), and
// past which the writer checkpoints itself before the next group.
constexpr int kCheckpointFrames = 1000;
constexpr int kWalFramesCap = 4 * kCheckpointFrames;  // 64 MiB of 16 KiB pages
// The writer frees answered appends' events itself after this long without new appends.
constexpr auto kGraveyardIdle = std::chrono::milliseconds(20);

int64_t now_ticks() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count() / 100;
}

AppendResult error_result(std::string message) {
  AppendResult r;
  r.status = AppendStatus::kError;
  r.message = std::move(message);
  return r;
}

MultiAppendResult multi_error(std::string message) {
  MultiAppendResult r;
  r.status = AppendStatus::kError;
  r.message = std::move(message);
  return r;
}

// What is wrong with a multi-stream request, or "" when nothing is.
std::string invalid_multi(const MultiAppend& request) {
  if (!request.streams.empty() && !request.stream_views.empty()) {
    return "invalid request: both stream names and stream name views given";
  }
  const size_t n = request.stream_count();
  for (size_t i = 0; i < n; ++i) {
    const size_t size = request.streams.empty() ? request.stream_views[i].size() : request.streams[i].size();
    if (size == 0) return absl::StrCat("invalid request: stream ", i, " has an empty name");
  }
  if (!request.stream_hashes.empty() && request.stream_hashes.size() != n) {
    return absl::StrCat("invalid request: ", request.stream_hashes.size(), " stream hashes for ", n, " streams");
  }
  if (!request.records.empty() && !request.record_views.empty()) {
    return "invalid request: both records and record views given";
  }
  for (size_t i = 0; i < request.records.size(); ++i) {
    if (request.records[i].stream >= n) {
      return absl::StrCat("invalid request: record ", i, " names stream ", request.records[i].stream, " of ", n);
    }
  }
  for (size_t i = 0; i < request.record_views.size(); ++i) {
    if (request.record_views[i].stream >= n) {
      return absl::StrCat("invalid request: record ", i, " names stream ", request.record_views[i].stream, " of ", n);
    }
  }
  for (size_t i = 0; i < request.checks.size(); ++i) {
    if (request.checks[i].stream >= n) {
      return absl::StrCat("invalid request: check ", i, " names stream ", request.checks[i].stream, " of ", n);
    }
  }
  return {};
}

}  // namespace

void SqliteEventStore::append(std::string stream, ExpectedRevision expected, std::vector<ProposedEvent> events,
                              AppendCallback done) {
  Op op;
  op.stream = std::move(stream);
  op.expected = expected;
  op.events = std::move(events);
  op.done = std::move(done);
  enqueue(std::move(op));
}

void SqliteEventStore::append_multi(MultiAppend request, std::function<void(MultiAppendResult)> done) {
  if (std::string invalid = invalid_multi(request); !invalid.empty()) {
    done(multi_error(std::move(invalid)));
    return;
  }
  Op op;
  op.multi = std::make_unique<MultiOp>();
  op.multi->request = std::move(request);
  op.multi->done = std::move(done);
  // The writer reads names and records through views only: owned ones get views into themselves
  // (they stay where they are, in the queued request, until it is answered). The names are hashed
  // here, on the caller's thread, unless the caller did.
  MultiAppend& queued = op.multi->request;
  if (!queued.streams.empty()) queued.stream_views.assign(queued.streams.begin(), queued.streams.end());
  if (queued.stream_hashes.empty()) {
    queued.stream_hashes.reserve(queued.stream_views.size());
    for (std::string_view name : queued.stream_views) queued.stream_hashes.push_back(EventStore::stream_hash(name));
  }
  if (!queued.records.empty()) {
    queued.record_views.reserve(queued.records.size());
    for (const RecordWrite& w : queued.records) {
      queued.record_views.push_back(
          {w.stream, w.event.id, w.event.type, w.event.content_type, w.event.data, w.event.metadata});
    }
  }
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
  auto event_bytes = [](const auto& e) {
    return e.data.size() + e.metadata.size() + e.type.size() + e.content_type.size() + sizeof(Uuid);
  };
  op.bytes = op.stream.size();
  for (const ProposedEvent& e : op.events) op.bytes += event_bytes(e);
  if (op.multi) {
    for (std::string_view name : op.multi->request.stream_views) op.bytes += name.size();
    for (const RecordView& w : op.multi->request.record_views) op.bytes += event_bytes(w);
  }
  const size_t max = std::max<size_t>(options_.group_commit_max, 1);
  Payload dead;  // freed on return, outside the lock
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
  if (op.multi) {
    op.multi->done(multi_error("store closed"));
  } else {
    op.done(error_result("store closed"));
  }
}

void SqliteEventStore::writer_loop() {
  const size_t max = std::max<size_t>(options_.group_commit_max, 1);
  std::vector<Op> group;
  for (;;) {
    if (!group.empty()) {
      // Hand the answered group's events to the appenders to free; drop the rest here.
      std::lock_guard lk(queue_mutex_);
      for (Op& op : group) {
        if (!op.events.empty() || op.multi) graveyard_.push_back(Payload{std::move(op.events), std::move(op.multi)});
      }
    }
    group.clear();
    std::unique_lock lk(queue_mutex_);
    if (queue_.empty() && !graveyard_.empty() &&
        !queue_cv_.wait_for(lk, kGraveyardIdle, [&] { return stopping_ || !queue_.empty(); })) {
      // No appends for a while: free the leftovers here.
      std::deque<Payload> dead;
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
  std::vector<AppendResult> results;  // one per op; a multi op's is a placeholder
  results.reserve(ops.size());
  std::vector<MultiAppendResult> multi_results;  // one per multi op, in order
  if (options_.in_memory) {
    // streams_ is memory mode's index of names: never evicted, rebuilt after a failed group.
    if (!ids_complete_.load() && load_all_streams().ok()) {
      streams_complete_ = true;
      ids_complete_.store(true);
    }
  } else if (streams_.size() > kMaxCachedStreams) {
    streams_.clear();
    streams_complete_ = false;
  }
  const int64_t position_before = next_position_;
  wrote_ = false;
  pending_count_ = 0;
  pending_stream_count_ = 0;
  group_created_ = now_ticks();
  absl::Status failure = step_done(begin_, "BEGIN");
  for (size_t i = 0; failure.ok() && i < ops.size(); ++i) {
    if (ops[i].multi) {
      auto m = apply_multi(ops[i].multi->request);
      if (!m.ok()) {
        failure = m.status();
        break;
      }
      multi_results.push_back(std::move(*m));
      results.emplace_back();
      continue;
    }
    auto r = ops[i].is_tombstone ? apply_tombstone(ops[i]) : apply_append(ops[i]);
    if (!r.ok()) {
      failure = r.status();
      break;
    }
    results.push_back(std::move(*r));
  }
  if (failure.ok()) failure = flush_rows();
  if (failure.ok()) failure = flush_stream_rows();
  if (failure.ok() && before_commit_hook_) before_commit_hook_();
  const bool wrote = wrote_;
  const auto events_in_group = static_cast<uint64_t>(next_position_ - position_before);
  if (failure.ok()) failure = step_done(commit_, "COMMIT");
  if (!failure.ok()) {
    if (sqlite3_get_autocommit(db_.get()) == 0) (void)step_done(rollback_, "ROLLBACK");
    reset_writer_state();
    results.assign(ops.size(), error_result(std::string(failure.message())));
    multi_results.assign(ops.size(), multi_error(std::string(failure.message())));
  } else {
    publish_commit();
    if (wrote) transactions_.fetch_add(1, std::memory_order_relaxed);
    events_written_.fetch_add(events_in_group, std::memory_order_relaxed);
    if (wal_frames_ >= kCheckpointFrames) request_checkpoint();
  }
  const auto appends =
      static_cast<uint64_t>(std::count_if(ops.begin(), ops.end(), [](const Op& op) { return !op.is_tombstone; }));
  appends_.fetch_add(appends, std::memory_order_relaxed);
  size_t next_multi = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].multi) {
      ops[i].multi->done(std::move(multi_results[next_multi++]));
    } else {
      ops[i].done(std::move(results[i]));
    }
  }
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

void SqliteEventStore::reset_writer_state() {
  // After a rollback the caches may describe writes that never happened: forget them.
  created_streams_.clear();
  {
    // In memory mode streams_ is the index of names, rebuilt from the table by the next group;
    // until then lookups, the readers' too, query the table (a scan without the index, but right).
    std::unique_lock names(names_mutex_);
    ids_complete_.store(false);
    ids_by_name_.clear();
    streams_.clear();
  }
  recent_ids_.assign(recent_ids_.size(), RecentId{});
  (void)load_counters();  // if this fails too, the next group's inserts fail and are reported
}

void SqliteEventStore::publish_commit() {
  if (!options_.in_memory) return;
  std::unique_lock names(names_mutex_);
  for (const auto& [stored, state] : created_streams_) ids_by_name_.emplace(stored, state);
  created_streams_.clear();
  committed_position_ = next_position_ - 1;
}

}  // namespace kingest::store::internal
