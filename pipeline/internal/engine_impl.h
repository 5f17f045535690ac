// The engine's state and the declarations its parts share (private to pipeline/). The engine is one
// object in three files: ingest_engine.cc (the public API, the flow graph and its batches: decode,
// grouping, stream states, completion), stream_appends.cc (per stream: slots, classification
// against the stream state, the append and its answer, dead letters of a group, gap re-checks).
// Threads: see ingest_engine.h; the fields below say which thread or lock owns them.
#pragma once

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "pipeline/append_slots.h"
#include "pipeline/grouping.h"
#include "pipeline/ingest_engine.h"
#include "pipeline/read_pool.h"
#include "pipeline/revision_rules.h"
#include "pipeline/stream_table.h"
#include "pipeline/timed_sink.h"

namespace kingest::pipeline {

namespace flow = oneapi::tbb::flow;

// A dead letter for message `m`.
DeadLetter letter_for(const SourceMessage& m, std::string reason, std::string detail, std::string stream = {});

// What became of a group handed to `dispatch`.
// kReading: the group waits for a read of its stream on the read pool, which runs it again.
enum class Dispatched { kSent, kReading, kDone, kFailed, kHold };

struct IngestEngine::Impl {
  using AsyncNode = flow::async_node<BatchPtr, BatchPtr>;

  EngineOptions options;
  RevisionRules rules;
  Sink& sink;
  // The sink when it is a TimedSink: appends are then timed through the group (`Group::sent_at`),
  // so that the answer's callback is not wrapped.
  TimedSink* timed_sink;
  DeadLetterSink* dead_letters;
  DoneHook on_done;

  // The graph runs in its own arena whose every slot is a worker: the threads that feed it (the
  // polling thread, sink threads) only hand work over and never join, so without this oneTBB would
  // run the whole graph on its default single worker on a 2-core machine.
  std::unique_ptr<oneapi::tbb::global_control> parallelism;
  oneapi::tbb::task_arena arena;

  // Built inside `arena` so the graph's tasks run there.
  struct Flow {
    flow::graph graph;
    flow::queue_node<BatchPtr> entry{graph};
    flow::limiter_node<BatchPtr> limiter;
    flow::function_node<BatchPtr, BatchPtr> decode;
    flow::sequencer_node<BatchPtr> sequencer;
    AsyncNode append;
    flow::function_node<BatchPtr, flow::continue_msg> complete;

    Flow(Impl& impl, size_t max_batches);
  };
  std::unique_ptr<Flow> flow;
  std::atomic<AsyncNode::gateway_type*> gateway{nullptr};
  std::atomic<size_t> callbacks_pending{0};  // sink answers queued into the arena

  // Sink answers wait here for the one arena task that handles them in turn: a sink answering a
  // request of many streams costs one task and one wake-up, not one per stream.
  struct Answer {
    Group* group;  // its `sent_ids` are the ids of the append answered
    AppendOutcome out;
  };
  std::mutex answers_mu;
  std::vector<Answer> answers;  // under answers_mu
  bool answers_task = false;    // under answers_mu: a task to drain `answers` is queued or running

  StreamTable table;
  AppendSlots<GroupPtr> slots;  // parked groups wait here, their streams claimed

  uint64_t next_seq = 0;     // polling thread only
  bool budget_full = false;  // polling thread only (has_room's hysteresis)

  // Budget and idleness.
  std::atomic<size_t> batches_in_flight{0};
  std::atomic<size_t> bytes_in_flight{0};
  mutable std::mutex idle_mu;
  std::condition_variable idle_cv;

  std::unordered_set<std::string> warned_types;  // append node only
  // The sink's answers check a stream's state themselves (Sink::exact_answers): a stream whose first
  // event seen is its first version is presumed new instead of read.
  const bool presume_new_streams;
  const bool exact_answers;
  // This run, named in the metadata of each append's first event (ingestRunId): events of an append
  // whose answer was lost, found written when it is sent again, count as this run's.
  const Uuid run_id = Uuid::v4();
  std::mutex gaps_mu;               // one gap check at a time
  bool warned_held_budget = false;  // under gaps_mu

  // Counters.
  std::atomic<uint64_t> events_read{0}, events_appended{0}, duplicates{0}, conflicts{0}, dead_lettered{0},
      streams_touched{0}, batches_done{0}, appends{0}, messages_done{0}, stream_reads{0}, cache_hits{0},
      cache_misses{0};

  mutable std::mutex fatal_mu;
  absl::Status fatal_status;
  // Set (after fatal_status, under fatal_mu) once the run has failed: every append asks, so the
  // question takes no lock.
  std::atomic<bool> failed{false};

  static int thread_count(int requested) {
    return requested > 0 ? requested : int(std::max(2u, std::thread::hardware_concurrency()));
  }

  Impl(EngineOptions o, Sink& s, DeadLetterSink* d, DoneHook h);

  // --- decode (parallel) ---------------------------------------------------------------------
  BatchPtr decode_batch(BatchPtr b) const;
  codecs::DecodeResult decode_one(const SourceMessage& m) const;
  // Message `i`'s stream, its checks and its facts, right after its decoding (`stream`: room for
  // the name, reused from event to event).
  void name_and_group(Batch& b, uint32_t i, std::string& stream) const;

  // --- fatal errors ----------------------------------------------------------------------------
  void set_fatal(absl::Status s);
  bool has_fatal() const;

  // --- outcomes and dead letters ---------------------------------------------------------------
  void report(const Item& it, MessageOutcome::Kind kind, const Uuid& id, const std::string& stream);

  // Writes the letters (each with its message, for the outcome hook); false after a fatal error.
  bool write_dead_letters(const std::vector<DeadLetter>& letters, const std::vector<const SourceMessage*>& messages);

  // --- group + append (serial, in sequence order) --------------------------------------------
  void group_and_append(const BatchPtr& b, AsyncNode::gateway_type& gw);

  // Finds each stream's state (one lookup per stream and batch). A stream the cache does not hold
  // is presumed new when the batch holds its first version and the sink's answers check it, else
  // read: one backwards read each, in parallel. Returns the states in the order of `grouped.streams`.
  std::vector<StreamState*> load_streams(const Batch& b, const BatchGroups& grouped);

  // Whether the batch holds the stream's revision 0 (its members' lowest revision).
  static bool starts_at_first_version(const Batch& b, absl::Span<const uint32_t> members);

  // In chunks, in parallel: an in-process sink reads each chunk on one worker, a remote one
  // overlaps a chunk's reads on the wire.
  std::vector<absl::StatusOr<StreamTail>> read_tails(const std::vector<std::string>& names);

  // Carries out a table step: batches released by held groups, then the group to run.
  void apply(StreamTable::Step&& step);

  // --- per-stream scheduling -----------------------------------------------------------------
  // Takes an append slot for `g`, or parks it back in the table (the stream keeps its claim, so
  // later groups merge behind it) until a slot frees.
  bool take_slot_or_park(GroupPtr& g);

  // Gives a slot back, or hands it straight to the first parked stream's next group (returned).
  GroupPtr give_slot();

  // Runs groups of one stream until one is sent asynchronously (its callback continues the chain),
  // the stream has nothing more to run, or it is parked for a slot. `has_slot`: `g` already holds
  // one. Groups unparked on the way are run here too (a work list, not recursion).
  void run_stream(GroupPtr first, bool has_slot = false);

  // Classifies the group against the stream state, then sends it or finishes it here. The caller
  // holds the stream's claim.
  Dispatched dispatch(Group& g);

  // Appends sent on one thread while an outbox is open there go to the sink together (`append_many`:
  // one turn of its lock, one wake-up) when it closes, or every `kOutboxFlush` appends. Opened
  // around the stages that send many appends in a row: a batch's groups, a burst of answers. Nothing
  // in such a stage waits for the answer of an append it sent.
  class Outbox {
   public:
    explicit Outbox(Impl& impl);
    ~Outbox();
    Outbox(const Outbox&) = delete;
    Outbox& operator=(const Outbox&) = delete;
    // The open outbox of `impl` on this thread, or null.
    static Outbox* open_for(const Impl& impl);
    // `group`: the append's, whose send time the box sets when it hands the append over.
    void add(AppendRequest req, Sink::AppendDone done, Group* group);

   private:
    static constexpr size_t kOutboxFlush = 128;
    void flush();
    static thread_local Outbox* open_;       // the outbox open on this thread
    static thread_local const Impl* owner_;  // whose it is
    Impl& impl_;
    Outbox* outer_;  // this engine's outbox already open on this thread (then this one forwards to it)
    Outbox* prev_open_;  // another engine's, given back when this one closes
    const Impl* prev_owner_;
    std::vector<Sink::PendingAppend> appends_;
    std::vector<Group*> groups_;  // appends_'s, in the same order
  };

  // Gives the group's events whose payload went into an earlier append (`take_append`) their
  // payload again, decoded anew from their messages; false (and a fatal error) if one no longer decodes.
  bool restore_payloads(Group& g);

  // Re-reads the stream state once for this group.
  void refresh(Group& g, StreamState& st);

  bool read_tail_into(const std::string& stream, StreamState& st);

  // The group starts below the stream's next revision: compare ids with what is written there.
  // Equal → duplicates, dropped from the group (nullopt: go on with the rest); different →
  // revision-conflict (the group is finished here).
  std::optional<Dispatched> skip_written_prefix(Group& g, StreamState& st);

  // Drops the group's first `n` items, which are done (duplicates): detached ones are reported done now.
  void finish_items(Group& g, size_t n);

  // Wakes `wait_idle` and `wait_done` (taking their mutex first, so a waiter between its check and
  // its wait cannot miss it).
  void notify_idle();

  void report_late_done(std::vector<SourceMessage>& late);

  // Dead-letters the group's events from index `from`: the first with `why`, the rest as
  // after-dead-letter; marks the stream dead for the rest of the run.
  Dispatched dead_letter_group(Group& g, StreamState& st, size_t from, const char* why, const std::string& detail);

  void on_append_done(GroupPtr g, const EventIds& ids, AppendOutcome out);

  // On the sink's thread: queues the answer, and the task that drains the queue if none is.
  void post_answer(Answer a);
  // The arena task: handles queued answers, in their order, until none is left.
  void drain_answers();

  void handle_answer(GroupPtr g, const EventIds& ids, AppendOutcome out);

  // Finishes a group: its detached events are done now, its batches are accounted, and the stream
  // goes to its next runnable group (returned).
  GroupPtr release_stream(GroupPtr g, bool ok);

  void finish_one(const BatchPtr& b);

  // --- gaps ------------------------------------------------------------------------------------
  // Re-reads the claimed streams' tails (another group member or an earlier run may have written
  // the missing versions), then runs what now fits; what does not is dead-lettered with `give_up`,
  // else waits another window.
  void recheck(const std::vector<std::string>& names, bool give_up);

  void check_gaps(bool give_up_all);

  // --- completion (serial) -------------------------------------------------------------------
  void complete_batch(const BatchPtr& b);

  // Last, so it is stopped first: its jobs hand results to the arena.
  static constexpr size_t kReadThreads = 16;
  ReadPool readers{kReadThreads};
};

}  // namespace kingest::pipeline
