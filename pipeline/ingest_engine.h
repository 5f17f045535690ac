// The ingest engine: a oneTBB flow graph that turns batches of Kafka messages into batched,
// revision-checked appends, one per stream group, and reports which messages are done.
//
//   submit ─► queue_node ─► limiter_node ─► decode (unlimited) ─► sequencer_node ─►
//   group + append (async_node, serial; holds the graph open while writes are in flight) ─►
//   complete (serial) ─► limiter.decrementer()
//
// Owner: one run (demo, replay, run, bench). Threads: `submit`, `has_room` and `on_revoke` are
// called by the Kafka polling thread; `check_gaps` and `give_up_gaps` by the owner's thread; `stats`
// from any thread; sink callbacks arrive on the sink's threads. Lifecycle: construct → submit... →
// wait_idle (after the source stopped emitting) → destroy.
//
// Per stream (docs/design.md, "Data flow", **Per stream**): the aggregate's version is the order. Groups go out in
// version order whatever partition they came from, at most one append in flight per stream
// (`StreamTable`); an event ahead of its stream's next version waits, held and not done, until the
// missing versions arrive; a gap still open after `reorder_window` is re-checked against the store
// and, by the run's rule, dead-lettered `revision-gap`. Each group is classified against the stream
// state (`revision_rules.h`) so that already-written prefixes count as duplicates and conflicts are
// dead-lettered; a stream's later events after a dead letter go to the dead-letter sink as
// `after-dead-letter`.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "codecs/codec.h"
#include "core/domain_event.h"
#include "core/sink.h"
#include "kafka/offset_tracker.h"
#include "core/uuid.h"
#include "pipeline/dead_letter.h"
#include "pipeline/naming.h"

namespace kingest::pipeline {

// What became of one message. The texts are views, valid during the hook's call (it runs once per
// message: copy what you keep).
struct MessageOutcome {
  enum class Kind { kAppended, kDuplicate, kDeadLettered };
  Kind kind = Kind::kAppended;
  Uuid event_id;             // the stored event's id (kAppended, kDuplicate)
  std::string_view stream;
  std::string_view reason;   // dead-letter reason (kDeadLettered)
  std::string_view detail;
};

struct EngineOptions {
  StreamNameTemplate stream_names = StreamNameTemplate::parse("{AggregateType}-{AggregateId}").value();
  VersionBase version_base;
  size_t max_batches_in_flight = 32;          // the limiter's threshold
  size_t max_bytes_in_flight = 16u << 20;     // message bytes; the source waits, then pauses, above this
  size_t max_append_bytes = 1u << 20;         // a stream group is split to stay under this
  // Appends handed to the sink and not yet answered. A stream whose turn comes while all are taken
  // waits in the engine, where its later groups merge into its waiting one (fewer, larger appends)
  // instead of queueing inside the sink one small append each. Set it to the sink's own limit.
  size_t max_appends_in_flight = 8192;
  std::chrono::milliseconds revoke_wait{10000};
  int threads = 0;  // worker threads of the flow graph; 0 = one per core (at least 2)
  // Codec per topic for messages without a content-type header (default JSON).
  std::map<std::string, codecs::Codec> topic_codecs;
  // Message → event; empty means the default routing (content-type header, else the topic's
  // codec, else JSON). Runs in parallel.
  std::function<std::variant<DomainEvent, DecodeError>(const SourceMessage&)> decoder;

  // Reassembly. A gap (an event ahead of its stream's next version) open this long is re-checked
  // against the store (another writer may have filled it); if still open, it is dead-lettered
  // `revision-gap` when `give_up_expired_gaps`, else it waits another window (a bounded replay
  // gives up only at its end, through `give_up_gaps`).
  std::chrono::milliseconds reorder_window{30000};
  bool give_up_expired_gaps = true;
  // Message bytes of held events. Above half of it the source reads the partitions furthest behind
  // in message time first (`held_over_soft_limit`); above it the oldest gaps are given up
  // (re-checked, then dead-lettered), so held events never fill the in-flight budget and stall the source.
  size_t max_held_bytes = 32u << 20;
  // The per-stream states (next revision, last id) kept between batches, at most about this many
  // bytes; the least recently used free ones are dropped above it. A dropped stream is loaded again
  // when it comes back (presumed new, or read): slower, never a wrong revision.
  size_t stream_cache_bytes = 48u << 20;
  // Stream names starting with `$` are KurrentDB's system and metadata streams: dead-lettered
  // `system-stream` unless allowed.
  bool allow_system_streams = false;
  // What became of each message, reported once per message before it counts as done (so before its
  // offset can be committed). Runs on engine threads; must not block.
  std::function<void(const SourceMessage&, const MessageOutcome&)> on_outcome;
  // Which messages `on_outcome` is wanted for once their events are appended or found written
  // (unset: every one; dead letters are reported whatever it says). Asked while the message is
  // decoded, and kept with its event, so that handling an append's answer need not read each of
  // its messages again.
  std::function<bool(const SourceMessage&)> outcome_wanted;
};


struct EngineStats {
  uint64_t events_read = 0;       // messages submitted
  uint64_t events_appended = 0;   // events written by this run
  uint64_t duplicates = 0;        // events found already written (same id at the revision)
  uint64_t conflicts = 0;         // revision-conflict dead letters
  uint64_t dead_lettered = 0;     // every dead letter, whatever the reason
  uint64_t streams = 0;           // distinct streams touched
  uint64_t batches = 0;           // batches completed
  uint64_t batches_in_flight = 0; // batches submitted and not completed
  uint64_t appends = 0;           // append requests sent to the sink
  uint64_t messages_done = 0;     // messages whose offsets may be committed
  uint64_t streams_on_several_partitions = 0;  // streams with events from more than one partition
  uint64_t events_held = 0;          // waiting for an earlier version of their stream now
  uint64_t held_bytes = 0;           // their message bytes
  uint64_t events_reordered = 0;     // events that waited for an earlier version
  uint64_t max_reorder_wait_ms = 0;  // the longest such wait
  uint64_t open_gaps = 0;            // streams waiting for a missing version now
  uint64_t pending_groups = 0;       // stream groups waiting in the engine (behind an append, for a slot, or held)
  uint64_t stream_reads = 0;         // reads of stream state (first touch, stale state, prefixes, gap re-checks)
  uint64_t cached_streams = 0;       // stream states held now
  uint64_t stream_cache_bytes = 0;   // their estimated memory
  uint64_t stream_cache_evictions = 0;  // states dropped to stay under stream_cache_bytes
  uint64_t stream_cache_hits = 0;    // a batch's stream found in the cache
  uint64_t stream_cache_misses = 0;  // not found: loaded (presumed new or read)
};

class IngestEngine {
 public:
  // Receives messages that are done (their offsets may be committed): each completed batch's, less
  // its held events, which come later in small groups once written. Called from several engine
  // threads, possibly at once: it must be thread-safe and must not block.
  using DoneHook = std::function<void(const std::vector<SourceMessage>&)>;

  // `sink` and `dead_letters` must outlive the engine. `dead_letters` may be null only if the run
  // accepts that a dead letter is a fatal error.
  IngestEngine(EngineOptions options, Sink& sink, DeadLetterSink* dead_letters, DoneHook on_done);
  ~IngestEngine();
  IngestEngine(const IngestEngine&) = delete;
  IngestEngine& operator=(const IngestEngine&) = delete;

  // Hands a batch (in delivery order) to the graph. Called by one thread (the polling thread).
  void submit(std::vector<SourceMessage>&& messages, size_t bytes);
  // The in-flight budget (batches and bytes), with hysteresis: false from the high mark until the
  // engine drained to half of it. The source pauses while false. Called by one thread.
  [[nodiscard]] bool has_room() const;
  // `has_room`, waiting up to `timeout` for a batch to complete while there is none (the source
  // sleeps here instead of polling the budget). Called by the thread that calls `has_room`.
  bool wait_for_room(std::chrono::microseconds timeout);
  // Held events are over half their budget: the source should read the partitions furthest behind.
  [[nodiscard]] bool held_over_soft_limit() const;
  // Waits (bounded) for in-flight work, then drops the state of streams seen on these partitions.
  // `closing`: the revoke of a source being closed, after which the engine takes no more batches;
  // held events of these partitions are still dropped, but the stream states are left to go with
  // the engine (forgetting each one, to count it right if it came back, is work for nothing).
  void on_revoke(const std::vector<TopicPartition>& tps, bool closing = false);
  // Blocks until every submitted batch has completed and no held event is being written. Held
  // events still waiting for a gap stay held (not done).
  void wait_idle();
  // Re-checks gaps open longer than the reorder window (one tail read per stream, overlapped) and
  // gives up those still open by the run's rule; gives up the oldest gaps while held events exceed
  // their budget. Called by the owner every few hundred milliseconds.
  void check_gaps();
  // Re-checks every open gap now and dead-letters those still open (a bounded run at its end).
  void give_up_gaps();
  // Blocks until `stats().messages_done >= n`, a fatal error, or the timeout; true when reached.
  bool wait_done(uint64_t n, std::chrono::milliseconds timeout);

  [[nodiscard]] EngineStats stats() const;
  // The first error that ends the run (authentication, storage failure, dead-letter sink failure).
  [[nodiscard]] absl::Status fatal() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kingest::pipeline
