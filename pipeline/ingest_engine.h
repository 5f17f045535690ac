// The ingest engine: a oneTBB flow graph that turns batches of Kafka messages into batched,
// revision-checked appends, one per stream group, and reports which messages are done.
//
//   submit ─► queue_node ─► limiter_node ─► decode (unlimited) ─► sequencer_node ─►
//   group + append (async_node, serial; holds the graph open while writes are in flight) ─►
//   complete (serial) ─► limiter.decrementer()
//
// Owner: one run (demo, replay, run, bench). Threads: `submit`, `has_room` and `on_revoke` are
// called by the Kafka polling thread; `stats` from any thread; sink callbacks arrive on the sink's
// threads. Lifecycle: construct → submit... → wait_idle (after the source stopped emitting) →
// destroy.
//
// Per stream (ARCHITECTURE.md "Rules that make it correct"): at most one append in flight; groups
// go out in version order; each group is classified against the stream state (next revision, last
// id; one backwards read on first touch) so that already-written prefixes count as duplicates,
// conflicts and gaps are dead-lettered, and a stream's later events after a dead letter go to the
// dead-letter sink as `after-dead-letter`.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "codecs/codec.h"
#include "core/domain_event.h"
#include "core/sink.h"
#include "kafka/offset_tracker.h"
#include "pipeline/dead_letter.h"
#include "pipeline/naming.h"

namespace kingest::pipeline {

struct EngineOptions {
  StreamNameTemplate stream_names = StreamNameTemplate::parse("{AggregateType}-{AggregateId}").value();
  VersionBase version_base;
  size_t max_batches_in_flight = 32;          // the limiter's threshold
  size_t max_bytes_in_flight = 64u << 20;     // message bytes; the source waits, then pauses, above this
  size_t max_append_bytes = 1u << 20;         // a stream group is split to stay under this
  // Appends handed to the sink and not yet answered. A stream whose turn comes while all are taken
  // waits in the engine, where its later groups merge into its waiting one (fewer, larger appends)
  // instead of queueing inside the sink one small append each. Set it to the sink's own limit.
  size_t max_appends_in_flight = 512;
  std::chrono::milliseconds revoke_wait{10000};
  int threads = 0;  // worker threads of the flow graph; 0 = one per core (at least 2)
  // Codec per topic for messages without a content-type header (default JSON).
  std::map<std::string, codecs::Codec> topic_codecs;
  // Message → event; empty means the default routing (content-type header, else the topic's
  // codec, else JSON). Runs in parallel.
  std::function<std::variant<DomainEvent, DecodeError>(const SourceMessage&)> decoder;
};

struct EngineStats {
  uint64_t events_read = 0;       // messages submitted
  uint64_t events_appended = 0;   // events written by this run
  uint64_t duplicates = 0;        // events found already written (same id at the revision)
  uint64_t conflicts = 0;         // revision-conflict dead letters
  uint64_t dead_lettered = 0;     // every dead letter, whatever the reason
  uint64_t streams = 0;           // distinct streams touched
  uint64_t batches = 0;           // batches completed
  uint64_t appends = 0;           // append requests sent to the sink
  uint64_t messages_done = 0;     // messages whose offsets may be committed
  uint64_t streams_on_several_partitions = 0;
};

class IngestEngine {
 public:
  // Receives each completed batch's messages (their offsets may be committed), in completion order.
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
  // Waits (bounded) for in-flight work, then drops the state of streams seen on these partitions.
  void on_revoke(const std::vector<TopicPartition>& tps);
  // Blocks until every submitted batch has completed.
  void wait_idle();
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
