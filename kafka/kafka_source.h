// The Kafka source: a consumer-group member whose dedicated polling thread (outside the TBB arena)
// takes messages from librdkafka's consumer queue many at a time (at most what the open batch can
// still hold), closes batches on count / bytes / age, pauses and resumes partitions against the
// pipeline's in-flight budget, and commits offsets the OffsetTracker says are done.
//
// Owner: the ingest engine. Threads: `start`, `stop_fetching`, `close` from the owner's thread;
// every callback runs on the polling thread (so rebalances, commits and batching never race).
// Lifecycle: create → start → ... → stop_fetching (flushes the open batch, fetches nothing more,
// keeps committing) → close (final synchronous commit, leaves the group, joins the thread).
//
// Offsets (docs/design.md "Offsets"): auto-commit and auto offset store are off; the position
// committed per partition is after the last done message in delivery order; a partition with no
// committed offset starts at the beginning (auto.offset.reset=error makes every other start an
// explicit decision); the assignor is cooperative-sticky and each assignment gets a new epoch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "core/domain_event.h"
#include "kafka/batcher.h"
#include "kafka/fetch_waker.h"
#include "kafka/offset_tracker.h"

struct rd_kafka_s;
struct rd_kafka_message_s;
struct rd_kafka_topic_s;
struct rd_kafka_topic_partition_list_s;
struct rd_kafka_queue_s;

namespace kingest::kafka {

inline const std::vector<std::string> kDefaultTopics = {"system-events", "vulnerability-events", "task-events",
                                                        "relationship-events"};

struct SourceOptions {
  std::string brokers;
  std::string group_id = "kurrent-ingest";
  std::vector<std::string> topics = kDefaultTopics;
  std::map<std::string, std::string> properties;  // librdkafka properties; override the defaults
  BatchLimits batch;
  std::chrono::milliseconds commit_interval{250};
  // Every position of the assignment is committed again this often (a failed asynchronous commit
  // is otherwise never repeated).
  std::chrono::milliseconds recommit_interval{2000};
  // While the pipeline is full, messages wait in librdkafka's queue; only a stall longer than this
  // pauses the partitions (pausing drops librdkafka's prefetched messages, which are then fetched
  // again, so pausing at every short stall would cost a fetch round trip each time).
  std::chrono::milliseconds pause_after{500};
  // A committed offset below the partition's oldest retained message means retention deleted data
  // that was never ingested: fail stops the run (on_fatal); skip logs the loss, counts it and goes
  // on from the oldest retained message.
  enum class DataLoss { kFail, kSkip } on_data_loss = DataLoss::kFail;
  // `replay --from`: partition -> (the group's committed offset when the run began, -1 for none;
  // where to start instead). Applied at an assignment only while the commit is still the one seen
  // at the start, so a partition that moves between members mid-run continues where it was.
  std::map<TopicPartition, std::pair<int64_t, int64_t>> start_at;
  // A bounded run's end per partition: messages at or past it are not delivered, and the partition
  // is paused once it reaches it.
  std::map<TopicPartition, int64_t> end_at;
  // Static assignment (`replay --assign`): every partition of `topics` is assigned to this consumer
  // at start, without joining the group (no rebalance, so no initial rebalance delay); offsets are
  // still read from and committed to `group_id`. Refused while the group has active members, who
  // would ingest the same partitions.
  bool assign_all = false;
};

struct SourceCallbacks {
  // Each closed batch, in delivery order. Runs on the polling thread: hand it off, do not block.
  std::function<void(std::vector<SourceMessage>&& messages, size_t bytes)> on_batch;
  // The in-flight budget; false pauses every assigned partition until it turns true.
  std::function<bool()> has_room;
  // Optional: `has_room`, waiting up to the given time for room while there is none. Without it a
  // short stall sleeps 200 µs between looks.
  std::function<bool(std::chrono::microseconds)> wait_for_room;
  // Newly assigned partitions (after their start offsets are set).
  std::function<void(const std::vector<TopicPartition>&)> on_assign;
  // True while events waiting for missing versions of their streams are over their budget: the
  // source then reads only the partitions furthest behind in message time (where the missing
  // versions are likely to be) until the pipeline says false again.
  std::function<bool()> behind_first;
  // Partitions being revoked: wait a bounded time for their in-flight work, drop their state.
  // Their done positions are committed synchronously after this returns.
  std::function<void(const std::vector<TopicPartition>&)> on_revoke;
  // An error the run cannot continue from (unknown topic, authorization, offset out of range).
  std::function<void(absl::Status)> on_fatal;
  // Called before every offset commit, after the positions to commit were taken: whatever the
  // messages they cover queued for Kafka (replies) is flushed here, so it is never lost to a crash
  // after the commit (it may be sent twice after a crash before it). False skips this commit; the
  // periodic commit of every position repeats it later.
  std::function<bool()> before_commit;
};

class KafkaSource {
 public:
  static absl::StatusOr<std::unique_ptr<KafkaSource>> create(SourceOptions options, SourceCallbacks callbacks);
  ~KafkaSource();
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  absl::Status start();
  // Stops fetching: the polling thread hands over its open batch and pauses every partition. Returns
  // once that happened, so no batch is emitted after it returns.
  void stop_fetching();
  // Final synchronous commit of every done position, then leaves the group. Idempotent.
  absl::Status close();
  // Instead of close when the brokers are unreachable: stops the polling thread and neither commits
  // nor leaves the group (each would wait on the brokers); what was not committed is read again by
  // the next run.
  void abandon();

  OffsetTracker& tracker() { return tracker_; }
  [[nodiscard]] uint64_t messages_read() const { return messages_read_.load(std::memory_order_relaxed); }
  [[nodiscard]] uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  // Messages deleted by retention before they were ingested (found at assignment).
  [[nodiscard]] uint64_t messages_lost() const { return messages_lost_.load(std::memory_order_relaxed); }
  [[nodiscard]] bool assigned_any() const { return assigned_any_.load(); }
  // A bounded run: every partition assigned here has been read to its end (each message before
  // it was handed to a batch; the open batch may not be emitted yet).
  [[nodiscard]] bool read_to_ends() const { return read_to_ends_.load(); }
  // The partitions assigned to this member now.
  [[nodiscard]] std::set<TopicPartition> assignment() const;

 private:
  KafkaSource(SourceOptions options, SourceCallbacks callbacks);
  void poll_loop();
  void emit(Batcher<SourceMessage>::Closed&& batch);
  void handle_rebalance(int err, void* partitions);
  // The rebalance callback: handled at once, or after the take when one is running (see `take`).
  void on_rebalance_event(int err, void* partitions);
  // Takes up to `want` messages and events from the consumer queue into `taken_` (waiting up to
  // `timeout_ms` for the first). A rebalance that arrives meanwhile is deferred to `deferred_`:
  // every message taken with it is of the assignment before it.
  void take(size_t want, int timeout_ms);
  // Hands taken messages to the batcher in order until they run out or a batch was emitted (the
  // caller then asks the budget again before handing over more). Returns true when it emitted.
  bool hand_over(bool stopped_fetching);
  // Handles one taken message or event; returns true when it emitted a batch.
  bool handle_taken(rd_kafka_message_s* m, bool stopped_fetching, std::chrono::steady_clock::time_point now);
  // Runs the deferred rebalances: the taken messages first, as far as the budget has room, then
  // those of revoked partitions that are left are dropped (not delivered, so never committed:
  // the partition's next owner reads them), then the rebalance itself.
  void run_deferred_rebalances(bool can_hand_over, bool stopped_fetching);
  void release_taken();
  // While paused: handles the taken error events now, keeping the rest in order.
  void handle_errors_now();
  // What the loop knows of one partition, found by librdkafka's topic handle and partition
  // (pointer compares instead of building a TopicPartition and looking it up per message).
  struct Cursor {
    const rd_kafka_topic_s* rkt = nullptr;
    int32_t partition = -1;
    TopicPartition tp;
    AssignmentEpoch epoch{0};
    int64_t end = INT64_MAX;            // a bounded run's end, else INT64_MAX
    int64_t* last_timestamp = nullptr;  // its last_timestamp_ entry (a std::map node: stable), or null
  };
  Cursor& cursor(const rd_kafka_message_s* m);
  // assign_all: checks that the group has no active member, then assigns every partition.
  absl::Status assign_statically();
  void commit(const std::vector<CommitPosition>& positions, bool sync);
  // The periodic commit: what advanced since the last one, and every `recommit_interval` all positions.
  void commit_due(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::time_point& next_commit,
                  std::chrono::steady_clock::time_point& next_recommit);
  void set_paused(bool paused);
  // Reading only the partitions furthest behind in message time (callbacks_.behind_first).
  void align(bool on);

  SourceOptions options_;
  SourceCallbacks callbacks_;
  OffsetTracker tracker_;
  Batcher<SourceMessage> batcher_;
  rd_kafka_s* rk_ = nullptr;
  std::thread thread_;
  std::atomic<bool> fetching_{true};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool fetch_stopped_ = false;  // guarded by stop_mu_
  std::atomic<bool> closing_{false};
  std::atomic<bool> assigned_any_{false};
  std::atomic<uint64_t> messages_read_{0};
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> messages_lost_{0};
  std::vector<TopicPartition> ended_;  // polling thread only: partitions paused at their end
  void pause_at_end(const TopicPartition& tp);
  void mark_read_to_end(const TopicPartition& tp);
  // After the assignment changed: `assignment_` from `epochs_`, then `update_read_to_ends`.
  void publish_assignment();
  // `read_to_ends_` from `epochs_` and `reached_end_` (the assignment as it is).
  void update_read_to_ends();
  std::set<TopicPartition> reached_end_;  // polling thread only
  mutable std::mutex assignment_mu_;
  std::set<TopicPartition> assignment_;   // guarded by assignment_mu_
  std::atomic<bool> read_to_ends_{false};
  bool paused_ = false;
  bool aligning_ = false;                                // polling thread only
  bool aligned_before_ = false;                          // polling thread only
  std::map<TopicPartition, int64_t> last_timestamp_;     // polling thread only: per partition, ms
  std::set<TopicPartition> held_back_;                   // polling thread only: paused by align
  bool closed_ = false;
  bool abandoned_ = false;
  uint64_t next_epoch_ = 1;
  std::map<TopicPartition, AssignmentEpoch> epochs_;  // polling thread only
  // Polling thread only: the consumer queue, messages taken from it and not yet handed over (from
  // `taken_head_` on), rebalances deferred during a take, and the partitions' cursors (cleared at
  // every rebalance, so an epoch is never read from before one).
  rd_kafka_queue_s* queue_ = nullptr;
  std::vector<rd_kafka_message_s*> taken_;
  size_t taken_head_ = 0;
  // What a take fills before its messages join `taken_`: left uninitialised (resizing `taken_` by
  // `want` zeroed up to 32 KiB per take, for some 60 messages a take on a busy run).
  std::unique_ptr<rd_kafka_message_s*[]> take_room_;
  size_t take_room_size_ = 0;
  bool in_take_ = false;
  std::vector<std::pair<int, rd_kafka_topic_partition_list_s*>> deferred_;
  std::vector<Cursor> cursors_;
  size_t last_cursor_ = 0;
  // The largest message handed over since the last take, and the one that sized the last take
  // (SourceMessage::byte_size).
  size_t largest_since_take_ = 0;
  // The open batch's runs of consecutive messages of one partition and epoch (OffsetTracker::
  // delivered_runs), and the partition of the last run.
  std::vector<uint32_t> runs_;
  const rd_kafka_topic_s* run_rkt_ = nullptr;
  int32_t run_partition_ = -1;
  AssignmentEpoch run_epoch_{0};
  size_t largest_message_ = 0;
  // librdkafka's queue limits (queued.min.messages, queued.max.messages.kbytes), whether the last
  // takes saw the queue near them (its fetchers may then wait for the next wake-up), and the
  // average size of the messages last taken (see fetch_waker.h).
  size_t queue_limit_messages_ = 100000;
  size_t queue_limit_bytes_ = size_t{64} << 20;
  size_t queued_message_bytes_ = 0;
  bool fetchers_may_wait_ = false;
  void wake_fetchers_if_draining(size_t took, size_t took_bytes);
  void start_threads();  // the fetch waker, then the polling thread
  std::unique_ptr<FetchWaker> waker_;
};

}  // namespace kingest::kafka
