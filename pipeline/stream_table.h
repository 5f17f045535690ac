// The engine's per-stream scheduler: which group of a stream goes out next, and which events wait.
//
// A stream's groups (runs of contiguous revisions) wait in `pending`, ordered by first revision,
// whatever partition or batch they came from: the aggregate's version is the order, a partition is
// only a transport. A stream is *claimed* while one of its groups is being classified, sent or
// parked for an append slot, or while its gap is re-checked; at most one claim per stream, so at
// most one append in flight per stream. When the stream is free, its lowest pending group runs if it
// starts at or below the stream's next revision (with the contiguous groups behind it merged into
// one append, under the size limit); otherwise the stream has a *gap* and its pending events are
// *held*: they are detached from their batches (moved out, so a batch's memory and its limiter slot
// are not pinned by a few waiting events), are not done, and their offsets are not committed until
// they are written. The engine re-checks and gives up gaps by its window and budget rules.
//
// Threads: every method takes the table's mutex. A stream's revision fields (`next_revision`,
// `last_id`, `dead`) are written only by the holder of its claim, without the mutex; the claim is
// taken and given back under the mutex, which orders those writes.
// Lifecycle: owned by the engine; groups leave it as `Step::run` (the caller then holds the claim).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "codecs/codec.h"
#include "pipeline/brief_table.h"
#include "pipeline/grouping.h"
#include "pipeline/stream_index.h"
#include "core/domain_event.h"
#include "core/sink.h"
#include "core/uuid.h"

namespace kingest::pipeline {

using Clock = std::chrono::steady_clock;

// A batch of Kafka messages on its way through the graph. Its messages are reported done when
// every group cut from it is answered, except those detached into held groups (reported when those
// are written).
struct Batch {
  SequenceNumber seq{0};
  std::vector<SourceMessage> messages;
  size_t bytes = 0;
  std::vector<codecs::DecodeResult> decoded;
  // Named, checked and grouped by the decoding worker while each event was in its core's cache:
  // the serial stage reads these instead of every decoded event once more, from another core.
  struct Facts {
    uint64_t revision = 0;  // the version's revision (0 when the version base is `none`)
    uint32_t bytes = 0;     // estimated_size of the event
  };
  std::vector<Facts> facts;  // per message (a rejected one's stays zero)
  BatchGroups grouped;       // the batch's streams (their names' hashes StreamTable::hash_name's)
  struct Rejected {
    uint32_t index = 0;
    const char* reason = nullptr;  // a reason:: constant
    std::string detail;
    std::string stream;
  };
  std::vector<Rejected> rejected;  // dead-lettered by the serial stage, in message order
  // Aggregate types seen with '-' (the serial stage warns once per type and run).
  std::vector<std::string> dashed_types;
  std::vector<uint8_t> detached;     // per message: moved into a held group (written under the table lock)
  std::vector<uint8_t> outcome_wanted;  // per message, when EngineOptions::outcome_wanted is set (at decoding)
  std::atomic<size_t> outstanding{0};
  std::atomic<bool> failed{false};
};
using BatchPtr = std::shared_ptr<Batch>;

// An event detached from its batch: it owns its message and decoded event.
struct DetachedEvent {
  SourceMessage message;
  DomainEvent event;
};

// One event of a group: an index into its batch, or the event itself once detached.
struct Item {
  Batch* batch = nullptr;  // kept alive by the owning group's `batches` while attached
  uint32_t index = 0;
  // The event's payload was moved into an append (`take_append`) and is empty until
  // `restore_payloads` decodes the message again.
  bool payload_taken = false;
  bool outcome_wanted = true;  // EngineOptions::outcome_wanted's answer for its message
  std::unique_ptr<DetachedEvent> own;

  [[nodiscard]] const DomainEvent& event() const {
    return own ? own->event : std::get<DomainEvent>(batch->decoded[index]);
  }
  [[nodiscard]] DomainEvent& mutable_event() { return own ? own->event : std::get<DomainEvent>(batch->decoded[index]); }
  [[nodiscard]] const SourceMessage& message() const { return own ? own->message : batch->messages[index]; }
};

struct StreamState;

// The event ids of one append, inline for the one or two events most appends of wide data carry.
using EventIds = absl::InlinedVector<Uuid, 2>;

// A run of one stream's events with contiguous revisions, appended as one write.
struct Group {
  std::string stream;
  // The stream's state, set when the table takes the group in. It stays valid while the group
  // exists: a state is dropped only when no group of its stream waits or runs.
  StreamState* state = nullptr;
  // Inline room for one: most groups of wide data hold one event of one batch.
  absl::InlinedVector<Item, 1> items;        // in revision order
  absl::InlinedVector<BatchPtr, 1> batches;  // every batch holding an attached item of this group, each once
  uint64_t first_revision = 0;    // with the version base `none`: the arrival order instead
  size_t bytes = 0;               // estimated append size
  bool refreshed = false;         // the stream state was re-read once for this group
  bool sent = false;              // appended at least once (an answer may have been lost)
  EventIds sent_ids;              // the event ids of the append in flight, until its answer is handled
  Clock::time_point sent_at{};    // when the append in flight was handed to the sink (TimedSink's latency)
  bool give_up = false;           // an open gap is dead-lettered instead of waiting again
  std::optional<Clock::time_point> held_since;  // when its events began to wait for a gap
  size_t held_bytes = 0;          // message bytes detached into this group while held
  bool reordered = false;         // counted in events_reordered: it waited for an earlier version
  // The stream read from `prefetched_from` on a read-pool thread, for the group's next dispatch.
  std::optional<absl::StatusOr<std::vector<RecordedEventData>>> prefetched;
  uint64_t prefetched_from = 0;

  [[nodiscard]] uint64_t end_revision() const { return first_revision + items.size(); }
};
using GroupPtr = std::unique_ptr<Group>;

struct StreamState {
  uint64_t next_revision = 0;   // the revision the next event must have
  std::optional<Uuid> last_id;  // the stream's last event id (causation of the next event)
  // Not read from the store: presumed not to exist, because its first event seen is its first
  // version. The first append (no_stream) checks the presumption; a wrong-expected-version answer
  // (or a success that wrote nothing) corrects it.
  bool presumed_new = false;
  // `next_revision` came from a wrong-expected-version answer, `last_id` is not known yet: read
  // (the tail, or with a written prefix) before an append needs it for `$causationId`.
  bool last_id_unknown = false;
  // Ids already written at revisions written_from... (read ahead with a written prefix, up to the
  // stream's end): the stream's next groups below `next_revision` are classified against them
  // without another read. Dropped once the stream is past them.
  uint64_t written_from = 0;
  std::vector<Uuid> written_ids;
  bool dead = false;            // a dead letter happened: later events cannot keep their revisions
  // Loaded from the brief the cache kept when it dropped this stream's state: known, not read.
  bool from_brief = false;
  // Met for the first time in this run (no state, brief or memory of it before): the engine counts
  // it in `streams` and clears the flag.
  bool first_seen = false;
  bool claimed = false;
  bool several_partitions = false;
  uint32_t tp = 0;              // the first partition it was seen on (StreamTable's partition index)
  std::multimap<uint64_t, GroupPtr> pending;    // by first revision
  std::optional<Clock::time_point> gap_since;   // free with a gap since then
  // Its place in the cache's recency order (a list through the states themselves), and its name.
  StreamState* lru_prev = nullptr;
  StreamState* lru_next = nullptr;
  std::string_view name;   // the name as the table's index keeps it
  uint64_t name_hash = 0;  // the hash the table's index keeps it under
};

struct TableStats {
  uint64_t streams_on_several_partitions = 0;
  uint64_t held_events = 0;       // waiting for an earlier version now
  uint64_t held_bytes = 0;
  uint64_t events_reordered = 0;  // events that ever waited for an earlier version
  uint64_t max_reorder_wait_ms = 0;
  uint64_t gaps = 0;              // streams waiting with a gap now
  uint64_t pending_groups = 0;    // groups waiting (behind an append, for a slot, or held)
  uint64_t cached_streams = 0;    // stream states held now
  uint64_t cache_bytes = 0;       // their estimated memory
  uint64_t evictions = 0;         // states dropped to stay under the cache budget
};

class StreamTable {
 public:
  // `revisions`: false for the version base `none` (groups run in arrival order, never wait).
  StreamTable(bool revisions, size_t max_append_bytes) : revisions_(revisions), max_append_bytes_(max_append_bytes) {}

  // What the caller does next: run `run` (it now holds the stream's claim), and call `finish_one`
  // on each batch in `release` (groups detached from them).
  struct Step {
    GroupPtr run;
    std::vector<BatchPtr> release;
  };

  // A new group from the grouping stage. The stream's state must be there (`find_or_add`, filled), and
  // `g->state` may already point to it (saves a lookup).
  [[nodiscard]] Step offer(GroupPtr g, Clock::time_point now);
  // A batch's groups, offered in order under one lock; the steps in the same order.
  [[nodiscard]] std::vector<Step> offer(std::vector<GroupPtr>&& groups, Clock::time_point now);
  // The claim holder is done with the stream: the next runnable group, or nothing (the stream is free).
  [[nodiscard]] Step release(StreamState& st, Clock::time_point now);
  // The same at the time of the call, read only when a group of the stream waits (a stream with
  // nothing waiting, most of wide data's, needs no time).
  [[nodiscard]] Step release(StreamState& st);
  // The claim holder puts a group back (waiting for an append slot, or the second half of a split);
  // the claim stays. `running` says whether `g` was counted as running (see `running_detached`).
  void put_back(GroupPtr g, bool running);
  // The claim holder's group `g` got its append slot after waiting for one (the stream stayed
  // claimed): `g` as it is when nothing of the stream waits, else `g` merged with the stream's
  // waiting groups that arrived meanwhile, as `put_back` and then taking the stream's next group would.
  [[nodiscard]] GroupPtr unpark(GroupPtr g);

  // Claims the free streams whose gap opened at or before `cutoff`, oldest first, at most `limit`.
  [[nodiscard]] std::vector<std::string> claim_gaps(Clock::time_point cutoff, size_t limit = SIZE_MAX);
  // After a claimed gap was re-checked (the holder updated `next_revision`): its next group if it
  // now fits, or with `give_up` its first group marked give_up; else the claim is given back and the
  // gap waits again from `now`.
  [[nodiscard]] Step resume(const std::string& stream, bool give_up, Clock::time_point now);

  // The holder's view of a stream (the reference is stable until the stream is dropped).
  StreamState& state(const std::string& stream);
  // The grouping stage's one lookup per stream and batch: the stream's state, and whether it was
  // added now (then the caller fills it, presumed new or from a read, before offering its groups;
  // no other thread looks at a state that no group was offered for, except a revoke that forgets
  // streams, which happens only while no batch is in flight).
  std::pair<StreamState*, bool> find_or_add(const std::string& stream, const TopicPartition& tp);
  // The same for a batch's streams under one lock: `streams[k]`, whose `hash_name` is `hashes[k]`,
  // first seen on `tps[k]`.
  std::vector<std::pair<StreamState*, bool>> find_or_add(const std::vector<const std::string*>& streams,
                                                         const std::vector<uint64_t>& hashes,
                                                         const std::vector<const TopicPartition*>& tps);
  // The hash the table finds a stream's state by (taken where the name is made, off the lock).
  static uint64_t hash_name(std::string_view stream) { return Streams::hash(stream); }
  static void apply_tail(StreamState& st, const StreamTail& tail);

  // The stream states are a cache: drops the least recently used free states (no group waiting or
  // running, no dead letter) until the estimate is under `budget_bytes`. Of a dropped state whose
  // revision and last id are known, a brief is kept (its name's hash, next revision and last id:
  // 32 bytes, about a tenth of a state): a stream met again resumes from its brief (`from_brief`)
  // without a read. The briefs' table counts against the budget at its real size (free slots
  // included) and never grows past three quarters of it (`max_brief_capacity`). It is sixteen
  // shards by the hash's top bits (`ShardedBriefTable`), each with a sixteenth of that: when the
  // shard of a new brief is full, an eighth of that shard's briefs is dropped.
  // A brief can only be stale the way any state can (another writer moved the stream, or two names
  // share a 64-bit hash): the append's exact expected revision catches it. A stream with neither is
  // loaded again, correct, only slower. Only the grouping stage may call it (it must not run
  // between a batch's loads and its offers). Returns how many were dropped.
  size_t evict(size_t budget_bytes);
  [[nodiscard]] size_t cache_bytes() const { return cache_bytes_.load(std::memory_order_relaxed); }
  // The largest briefs' table (in slots) within three quarters of `budget_bytes`; 0: no briefs.
  [[nodiscard]] static size_t max_brief_capacity(size_t budget_bytes);
  [[nodiscard]] size_t briefs() const {
    std::lock_guard lock(mu_);
    return briefs_.size();
  }
  [[nodiscard]] size_t brief_table_bytes() const {
    std::lock_guard lock(mu_);
    return briefs_.bytes();
  }

  // A group taken to run without any batch (all its events detached) is counted until `finished`,
  // so the engine can wait for written-but-unanswered held events.
  void finished(const Group& g);
  [[nodiscard]] size_t running_detached() const { return running_detached_.load(); }

  // Partitions revoked: held events from them are dropped (the partitions' next owner reads them
  // again; their offsets were never committed), and, with `forget_streams`, free streams last seen
  // there are forgotten. A stream may be forgotten only while no batch is being grouped (a group
  // offered for a forgotten stream would find no state). Returns the number of held events dropped.
  // Without `forget_streams` and with no group pending, there is nothing to do and no state is read.
  size_t revoke(const std::vector<TopicPartition>& tps, bool forget_streams);

  [[nodiscard]] TableStats stats() const;
  [[nodiscard]] uint64_t held_bytes() const { return held_bytes_.load(std::memory_order_relaxed); }

 private:
  // Under the mutex: the free stream's next group if it can run (claiming the stream), else holds its pending groups.
  Step next_locked(StreamState& st, Clock::time_point now);
  Step offer_locked(GroupPtr g, Clock::time_point now);
  // `hash`: StreamIndex's of the name.
  std::pair<StreamState*, bool> find_or_add_locked(const std::string& stream, uint64_t hash, const TopicPartition& tp);
  void open_gap_locked(StreamState& st, Clock::time_point now);
  void close_gap_locked(StreamState& st);
  GroupPtr pop_merged_locked(StreamState& st, Clock::time_point now);
  void hold_locked(StreamState& st, Clock::time_point now, std::vector<BatchPtr>& release);
  bool runnable_locked(const StreamState& st) const;
  uint32_t partition_index_locked(const TopicPartition& tp);
  StreamState& insert_locked(const std::string& stream);
  using Streams = StreamIndex<StreamState>;  // nodes: states stay put
  // `briefed`: the state left a brief; else its stream is remembered in `forgotten_`.
  void erase_locked(Streams::Node* it, bool briefed);

  const bool revisions_;
  const size_t max_append_bytes_;
  mutable std::mutex mu_;
  Streams streams_;
  // The states in recency order, least recently offered first.
  StreamState* lru_head_ = nullptr;
  StreamState* lru_tail_ = nullptr;
  size_t lru_size_ = 0;
  void lru_push_back_locked(StreamState& st);
  void lru_unlink_locked(StreamState& st);
  void lru_touch_locked(StreamState& st);
  // By the stream name's hash (StreamIndex's): the next revision (its top bit: the last id is known; revisions stay
  // below 2^63) and the last id.
  ShardedBriefTable briefs_;
  size_t brief_bytes_ = 0;    // the briefs' table as counted in cache_bytes_
  // Name hashes of streams met in this run whose state went without a brief (or whose brief was
  // dropped): met again, they are not met for the first time. Empty while every dropped state
  // leaves a brief, so the distinct streams are counted without a set of every stream.
  absl::flat_hash_set<uint64_t> forgotten_;
  void count_briefs_locked();
  std::atomic<uint64_t> cache_bytes_{0};
  uint64_t evictions_ = 0;
  std::vector<TopicPartition> partitions_;  // index → partition (StreamState::tp)
  std::map<TopicPartition, uint32_t> partition_index_;
  uint32_t last_partition_ = 0;  // the index partition_index_locked found last (streams come in runs of one partition)
  uint64_t arrivals_ = 0;  // pending key when revisions are off
  std::atomic<size_t> running_detached_{0};
  std::atomic<uint64_t> held_bytes_{0};
  uint64_t held_events_ = 0;
  uint64_t events_reordered_ = 0;
  uint64_t max_wait_ms_ = 0;
  uint64_t several_partitions_ = 0;
  std::set<std::pair<Clock::time_point, StreamState*>> gaps_;  // free streams with a gap, oldest first
  uint64_t pending_groups_ = 0;
};

// Moves `next`'s events into `into` (contiguous revisions); each batch stays accounted for once.
void merge_groups(Group& into, Group&& next);

}  // namespace kingest::pipeline
