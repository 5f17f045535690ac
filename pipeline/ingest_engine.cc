#include "pipeline/ingest_engine.h"

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/parallel_for.h>
#include <spdlog/spdlog.h>

#include <set>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include <unordered_set>
#include <variant>

#include "codecs/codec.h"
#include "pipeline/append_slots.h"
#include "pipeline/grouping.h"
#include "pipeline/revision_rules.h"
#include "pipeline/stream_table.h"

namespace kingest::pipeline {
namespace {

namespace flow = oneapi::tbb::flow;

DeadLetter letter_for(const SourceMessage& m, std::string reason, std::string detail, std::string stream = {}) {
  DeadLetter d{std::move(reason), std::move(detail), m.tp.topic,   m.tp.partition,      m.offset.value(),
               m.timestamp_ms,    m.key,             m.value,      std::move(stream)};
  d.key_null = m.key_null;
  d.content_type = m.content_type;
  return d;
}

// What became of a group handed to `dispatch`.
enum class Dispatched { kSent, kDone, kFailed, kHold };

}  // namespace

struct IngestEngine::Impl {
  using AsyncNode = flow::async_node<BatchPtr, BatchPtr>;

  EngineOptions options;
  RevisionRules rules;
  Sink& sink;
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

    Flow(Impl& impl, size_t max_batches)
        : limiter(graph, max_batches),
          decode(graph, flow::unlimited, [&impl](BatchPtr b) { return impl.decode_batch(std::move(b)); }),
          sequencer(graph, [](const BatchPtr& b) { return size_t(b->seq.value()); }),
          append(graph, flow::serial,
                 [&impl](const BatchPtr& b, AsyncNode::gateway_type& gw) { impl.group_and_append(b, gw); }),
          complete(graph, flow::serial, [&impl](const BatchPtr& b) {
            impl.complete_batch(b);
            return flow::continue_msg{};
          }) {
      flow::make_edge(entry, limiter);
      flow::make_edge(limiter, decode);
      flow::make_edge(decode, sequencer);
      flow::make_edge(sequencer, append);
      flow::make_edge(append, complete);
      flow::make_edge(complete, limiter.decrementer());
    }
  };
  std::unique_ptr<Flow> flow;
  std::atomic<AsyncNode::gateway_type*> gateway{nullptr};
  std::atomic<size_t> callbacks_pending{0};  // sink answers queued into the arena

  StreamTable table;
  AppendSlots<StreamState*> slots;

  uint64_t next_seq = 0;      // polling thread only
  bool budget_full = false;   // polling thread only (has_room's hysteresis)

  // Budget and idleness.
  std::atomic<size_t> batches_in_flight{0};
  std::atomic<size_t> bytes_in_flight{0};
  mutable std::mutex idle_mu;
  std::condition_variable idle_cv;

  std::unordered_set<std::string> warned_types;  // append node only
  // Hashes of every stream name loaded (append node only): `streams` stays a count of distinct
  // streams however often the cache drops and reloads one.
  absl::flat_hash_set<uint64_t> seen_streams;
  // The sink's answers check a stream's state themselves (Sink::exact_answers): a stream whose first
  // event seen is its first version is presumed new instead of read.
  const bool presume_new_streams;
  const bool exact_answers;
  // This run, named in the metadata of each append's first event (ingestRunId): events of an append
  // whose answer was lost, found written when it is sent again, count as this run's.
  const Uuid run_id = Uuid::v4();
  std::mutex gaps_mu;                            // one gap check at a time
  bool warned_held_budget = false;               // under gaps_mu

  // Counters.
  std::atomic<uint64_t> events_read{0}, events_appended{0}, duplicates{0}, conflicts{0}, dead_lettered{0},
      streams_touched{0}, batches_done{0}, appends{0}, messages_done{0}, stream_reads{0}, cache_hits{0}, cache_misses{0};

  mutable std::mutex fatal_mu;
  absl::Status fatal_status;

  static int thread_count(int requested) {
    return requested > 0 ? requested : int(std::max(2u, std::thread::hardware_concurrency()));
  }

  Impl(EngineOptions o, Sink& s, DeadLetterSink* d, DoneHook h)
      : options(std::move(o)),
        rules{options.version_base, options.max_append_bytes},
        sink(s),
        dead_letters(d),
        on_done(std::move(h)),
        arena(thread_count(options.threads), /*reserved_for_masters=*/0),
        table(rules.revisions(), options.max_append_bytes),
        slots(options.max_appends_in_flight),
        presume_new_streams(s.exact_answers() && rules.revisions()),
        exact_answers(s.exact_answers()) {
    // The worker pool must hold the arena's threads (by default it holds one less than the cores).
    auto workers = size_t(thread_count(options.threads)) + 1;
    if (oneapi::tbb::global_control::active_value(oneapi::tbb::global_control::max_allowed_parallelism) < workers) {
      parallelism = std::make_unique<oneapi::tbb::global_control>(
          oneapi::tbb::global_control::max_allowed_parallelism, workers);
    }
    arena.execute([&] { flow = std::make_unique<Flow>(*this, options.max_batches_in_flight); });
  }

  // --- decode (parallel) ---------------------------------------------------------------------
  BatchPtr decode_batch(BatchPtr b) const {
    b->decoded.reserve(b->messages.size());
    for (const auto& m : b->messages) {
      try {
        b->decoded.push_back(options.decoder ? options.decoder(m) : codecs::decode_message(m, options.topic_codecs));
      } catch (const std::exception& e) {
        // Every sequence number must reach the sequencer: errors travel as values.
        b->decoded.push_back(DecodeError{std::string("decoder failed: ") + e.what()});
      } catch (...) {
        b->decoded.push_back(DecodeError{"decoder failed"});
      }
    }
    return b;
  }

  // --- fatal errors ----------------------------------------------------------------------------
  void set_fatal(absl::Status s) {
    {
      std::lock_guard lock(fatal_mu);
      if (!fatal_status.ok()) return;
      fatal_status = std::move(s);
      spdlog::error("stopping: {}", fatal_status.ToString());
    }
    idle_cv.notify_all();
  }
  bool has_fatal() const {
    std::lock_guard lock(fatal_mu);
    return !fatal_status.ok();
  }

  // --- outcomes and dead letters ---------------------------------------------------------------
  void report(const SourceMessage& m, MessageOutcome::Kind kind, const Uuid& id, const std::string& stream) {
    if (options.on_outcome) options.on_outcome(m, MessageOutcome{kind, id, stream, {}, {}});
  }

  // Writes the letters (each with its message, for the outcome hook); false after a fatal error.
  bool write_dead_letters(const std::vector<DeadLetter>& letters, const std::vector<const SourceMessage*>& messages) {
    if (letters.empty()) return true;
    if (dead_letters == nullptr) {
      set_fatal(absl::FailedPreconditionError("dead letter (" + letters.front().reason + ": " +
                                              letters.front().detail + ") but no dead-letter sink is configured"));
      return false;
    }
    if (auto s = dead_letters->write(letters); !s.ok()) {
      set_fatal(absl::UnavailableError("dead-letter sink " + dead_letters->describe() + ": " + std::string(s.message())));
      return false;
    }
    dead_lettered.fetch_add(letters.size(), std::memory_order_relaxed);
    for (size_t k = 0; k < letters.size(); ++k) {
      const auto& l = letters[k];
      if (l.reason == reason::kRevisionConflict) conflicts.fetch_add(1, std::memory_order_relaxed);
      if (options.on_outcome) {
        options.on_outcome(*messages[k],
                           MessageOutcome{MessageOutcome::Kind::kDeadLettered, Uuid{}, l.stream, l.reason, l.detail});
      }
    }
    return true;
  }

  // --- group + append (serial, in sequence order) --------------------------------------------
  void group_and_append(const BatchPtr& b, AsyncNode::gateway_type& gw) {
    gateway.store(&gw);
    gw.reserve_wait();  // released when the batch's last group completes
    b->outstanding.store(1);  // a guard until every group is handed out
    b->detached.assign(b->messages.size(), 0);

    std::vector<DeadLetter> bad;
    std::vector<const SourceMessage*> bad_messages;
    auto reject = [&](uint32_t i, const char* why, std::string detail, std::string stream = {}) {
      bad.push_back(letter_for(b->messages[i], why, std::move(detail), std::move(stream)));
      bad_messages.push_back(&b->messages[i]);
    };
    BatchGroups grouped;
    for (uint32_t i = 0; i < b->messages.size(); ++i) {
      if (auto* err = std::get_if<DecodeError>(&b->decoded[i])) {
        reject(i, reason::kDecodeError, err->reason);
        continue;
      }
      const DomainEvent& e = std::get<DomainEvent>(b->decoded[i]);
      std::string stream = options.stream_names.render(e);
      if (rules.revisions() && !options.version_base.revision_of(e.aggregate_version)) {
        reject(i, reason::kVersionBelowBase,
               "aggregateVersion " + std::to_string(e.aggregate_version) + " is below the version base " +
                   options.version_base.to_string(),
               stream);
        continue;
      }
      if (!options.allow_system_streams && stream.starts_with('$')) {
        reject(i, reason::kSystemStream,
               "stream name '" + stream + "' starts with '$': a KurrentDB system or metadata stream "
               "(--allow-system-streams writes it anyway)",
               stream);
        continue;
      }
      if (breaks_category_projection(e.aggregate_type) && warned_types.insert(e.aggregate_type).second) {
        spdlog::warn("aggregate type '{}' contains '-': KurrentDB's $by_category projection will split its streams",
                     e.aggregate_type);
      }
      grouped.add(std::move(stream), i);
    }
    if (!write_dead_letters(bad, bad_messages)) b->failed.store(true);

    const std::vector<StreamState*> states = load_streams(*b, grouped);

    std::vector<GroupPtr> groups;
    for (size_t k = 0; k < grouped.order.size(); ++k) {
      const std::string& stream = grouped.order[k];
      for (auto& g : cut_groups(b, stream, grouped.members(stream), rules)) {
        g->state = states[k];
        groups.push_back(std::move(g));
      }
    }
    b->outstanding.fetch_add(groups.size());
    const auto now = Clock::now();
    for (auto& g : groups) apply(table.offer(std::move(g), now));
    finish_one(b);  // the guard
  }

  // Finds each stream's state (one lookup per stream and batch). A stream the cache does not hold
  // is presumed new when the batch holds its first version and the sink's answers check it, else
  // read: one backwards read each, in parallel. Returns the states in `grouped.order`.
  std::vector<StreamState*> load_streams(const Batch& b, const BatchGroups& grouped) {
    table.evict(options.stream_cache_bytes);
    std::vector<StreamState*> states;
    states.reserve(grouped.order.size());
    std::vector<std::pair<std::string, StreamState*>> unknown;
    for (const auto& s : grouped.order) {
      const auto& members = grouped.members(s);
      auto [st, fresh] = table.find_or_add(s, b.messages[members.front()].tp);
      states.push_back(st);
      (fresh ? cache_misses : cache_hits).fetch_add(1, std::memory_order_relaxed);
      if (!fresh) continue;
      if (seen_streams.insert(absl::HashOf(s)).second) streams_touched.fetch_add(1, std::memory_order_relaxed);
      if (presume_new_streams && starts_at_first_version(b, members)) {
        st->presumed_new = true;
      } else {
        unknown.emplace_back(s, st);
      }
    }
    if (unknown.empty()) return states;
    std::vector<std::string> names;
    names.reserve(unknown.size());
    for (const auto& [name, st] : unknown) names.push_back(name);
    auto tails = read_tails(names);
    for (size_t i = 0; i < unknown.size(); ++i) {
      if (!tails[i].ok()) {
        set_fatal(absl::UnavailableError("reading stream " + names[i] + ": " + std::string(tails[i].status().message())));
        continue;
      }
      StreamTable::apply_tail(*unknown[i].second, *tails[i]);
    }
    return states;
  }

  // Whether the batch holds the stream's revision 0 (its members' lowest revision).
  bool starts_at_first_version(const Batch& b, const std::vector<uint32_t>& members) const {
    for (uint32_t i : members) {
      if (options.version_base.revision_of(std::get<DomainEvent>(b.decoded[i]).aggregate_version) == 0u) return true;
    }
    return false;
  }

  // In chunks, in parallel: an in-process sink reads each chunk on one worker, a remote one
  // overlaps a chunk's reads on the wire.
  std::vector<absl::StatusOr<StreamTail>> read_tails(const std::vector<std::string>& names) {
    constexpr size_t kChunk = 128;
    std::vector<absl::StatusOr<StreamTail>> tails(names.size());
    auto read_chunks = [&] {
      oneapi::tbb::parallel_for(size_t(0), (names.size() + kChunk - 1) / kChunk, [&](size_t c) {
        size_t begin = c * kChunk;
        size_t end = std::min(names.size(), begin + kChunk);
        auto got = sink.read_tails(std::vector<std::string>(names.begin() + long(begin), names.begin() + long(end)));
        stream_reads.fetch_add(end - begin, std::memory_order_relaxed);
        for (size_t i = begin; i < end; ++i) tails[i] = std::move(got[i - begin]);
      });
    };
    if (oneapi::tbb::this_task_arena::current_thread_index() == oneapi::tbb::task_arena::not_initialized) {
      arena.execute(read_chunks);  // the owner's thread (gap checks): run the reads on the arena's workers
    } else {
      read_chunks();
    }
    return tails;
  }

  // Carries out a table step: batches released by held groups, then the group to run.
  void apply(StreamTable::Step&& step) {
    for (auto& b : step.release) finish_one(b);
    if (step.run) run_stream(std::move(step.run));
  }

  // --- per-stream scheduling -----------------------------------------------------------------
  // Takes an append slot for `g`, or parks it back in the table (the stream keeps its claim, so
  // later groups merge behind it) until a slot frees.
  bool take_slot_or_park(GroupPtr& g) {
    StreamState* st = g->state;
    return slots.take_or_park(st, [&] { table.put_back(std::move(g), /*running=*/true); });
  }

  // Gives a slot back, or hands it straight to the first parked stream's next group (returned).
  GroupPtr give_slot() {
    return slots.give([this](StreamState* st) { return table.take_next(*st); });
  }

  // Runs groups of one stream until one is sent asynchronously (its callback continues the chain),
  // the stream has nothing more to run, or it is parked for a slot. `has_slot`: `g` already holds
  // one. Groups unparked on the way are run here too (a work list, not recursion).
  void run_stream(GroupPtr first, bool has_slot = false) {
    std::vector<std::pair<GroupPtr, bool>> work;
    work.emplace_back(std::move(first), has_slot);
    while (!work.empty()) {
      auto [g, slot] = std::move(work.back());
      work.pop_back();
      while (g) {
        if (!slot && !take_slot_or_park(g)) break;
        slot = false;
        Dispatched d = dispatch(*g);
        if (d == Dispatched::kSent) {
          (void)g.release();  // the sink's callback owns the group (and its slot) now
          break;
        }
        if (GroupPtr unparked = give_slot()) work.emplace_back(std::move(unparked), true);
        if (d == Dispatched::kHold) {
          // A gap opened under the group (its stream state was refreshed): it waits in the table.
          StreamState* st = g->state;
          table.put_back(std::move(g), /*running=*/true);
          notify_idle();
          auto step = table.release(*st, Clock::now());
          for (auto& b : step.release) finish_one(b);
          g = std::move(step.run);
          continue;
        }
        g = release_stream(std::move(g), d == Dispatched::kDone);
      }
    }
  }

  // Classifies the group against the stream state, then sends it or finishes it here. The caller
  // holds the stream's claim.
  Dispatched dispatch(Group& g) {
    if (has_fatal()) return Dispatched::kFailed;
    StreamState& st = *g.state;
    if (st.dead) {
      std::vector<DeadLetter> letters;
      std::vector<const SourceMessage*> messages;
      for (const Item& it : g.items) {
        letters.push_back(letter_for(it.message(), reason::kAfterDeadLetter,
                                     "an earlier event of this stream was dead-lettered in this run", g.stream));
        messages.push_back(&it.message());
      }
      return write_dead_letters(letters, messages) ? Dispatched::kDone : Dispatched::kFailed;
    }
    if (rules.revisions()) {
      if (g.first_revision > st.next_revision) {
        if (!g.give_up) return Dispatched::kHold;
        return dead_letter_group(g, st, 0, reason::kRevisionGap,
                                 "expected revision " + std::to_string(st.next_revision) + " next, got " +
                                     std::to_string(g.first_revision) + ": earlier events are missing");
      }
      if (g.first_revision < st.next_revision) {
        if (auto finished = skip_written_prefix(g, st)) return *finished;
      }
      if (g.items.empty()) return Dispatched::kDone;
      if (st.last_id_unknown) {
        // The revision came from an answer; the append needs the last event's id.
        if (!read_tail_into(g.stream, st)) return Dispatched::kFailed;
        if (g.first_revision != st.next_revision) return dispatch(g);  // the stream moved meanwhile
      }
    }
    std::vector<Uuid> ids;
    AppendRequest req = build_append(g, st, rules, &ids, &run_id);
    g.sent = true;
    appends.fetch_add(1, std::memory_order_relaxed);
    Group* raw = &g;
    callbacks_pending.fetch_add(1);
    sink.append(std::move(req), [this, raw, ids = std::move(ids)](AppendOutcome out) mutable {
      // Runs on the sink's thread: hand the follow-up work to the arena and return at once.
      arena.enqueue([this, raw, ids = std::move(ids), out = std::move(out)] {
        on_append_done(GroupPtr(raw), ids, out);
        callbacks_pending.fetch_sub(1);
      });
    });
    return Dispatched::kSent;
  }

  // Re-reads the stream state once for this group.
  void refresh(Group& g, StreamState& st) {
    g.refreshed = true;
    read_tail_into(g.stream, st);
  }

  bool read_tail_into(const std::string& stream, StreamState& st) {
    stream_reads.fetch_add(1, std::memory_order_relaxed);
    auto tail = sink.read_tail(stream);
    if (!tail.ok()) {
      set_fatal(absl::UnavailableError("reading stream " + stream + ": " + std::string(tail.status().message())));
      return false;
    }
    StreamTable::apply_tail(st, *tail);
    return true;
  }

  // The group starts below the stream's next revision: compare ids with what is written there.
  // Equal → duplicates, dropped from the group (nullopt: go on with the rest); different →
  // revision-conflict (the group is finished here).
  std::optional<Dispatched> skip_written_prefix(Group& g, StreamState& st) {
    const uint64_t overlap = std::min<uint64_t>(g.items.size(), st.next_revision - g.first_revision);
    std::vector<RecordedEventData> written;
    std::vector<bool> ours;  // written by this run (an append sent again after its answer was lost)
    const bool cached = !st.written_ids.empty() && st.written_from <= g.first_revision &&
                        g.first_revision + overlap <= st.written_from + st.written_ids.size();
    if (cached) {
      // Read ahead with an earlier group of this stream.
      for (uint64_t r = g.first_revision; r < g.first_revision + overlap; ++r) {
        RecordedEventData e;
        e.id = st.written_ids[r - st.written_from];
        e.revision = StreamRevision{r};
        written.push_back(std::move(e));
      }
    } else {
      // The whole written range ahead (up to a bound), so the stream's next groups need no read.
      constexpr uint64_t kReadAhead = 64;
      const uint64_t ahead = std::max(overlap, std::min(kReadAhead, st.next_revision - g.first_revision));
      stream_reads.fetch_add(1, std::memory_order_relaxed);
      auto read = sink.read_forwards(g.stream, StreamRevision{g.first_revision}, ahead);
      if (!read.ok()) {
        set_fatal(absl::UnavailableError("reading stream " + g.stream + ": " + std::string(read.status().message())));
        return Dispatched::kFailed;
      }
      written = std::move(*read);
      if (st.last_id_unknown && !written.empty() && written.back().revision.value() + 1 == st.next_revision) {
        st.last_id = written.back().id;  // the read reached the stream's last event
        st.last_id_unknown = false;
      }
      st.written_ids.clear();
      st.written_from = g.first_revision;
      for (size_t k = 0; k < written.size() && written[k].revision.value() == g.first_revision + k; ++k) {
        st.written_ids.push_back(written[k].id);
      }
      if (written.size() > overlap) written.resize(overlap);
      // Only a group this run sent can find its own events (an answer lost, the append sent again),
      // read from its first revision, where that append starts. The same events on another message
      // are duplicates: their group is never sent over a stream that holds them. (The cached ids lie
      // past appends this run sent, so none of them is this run's.)
      if (g.sent) ours = written_by_run(written, run_id);
    }
    const auto proposed = proposed_ids(g, overlap);
    const PrefixVerdict v = compare_written(proposed, g.first_revision, written);
    for (size_t k = 0; k < v.duplicates; ++k) {
      const bool mine = k < ours.size() && ours[k];
      (mine ? events_appended : duplicates).fetch_add(1, std::memory_order_relaxed);
      report(g.items[k].message(), mine ? MessageOutcome::Kind::kAppended : MessageOutcome::Kind::kDuplicate,
             proposed[k], g.stream);
    }
    if (v.conflict) return dead_letter_group(g, st, v.duplicates, reason::kRevisionConflict, v.detail);
    finish_items(g, v.duplicates);
    g.first_revision += v.duplicates;
    if (g.first_revision >= st.written_from + st.written_ids.size()) st.written_ids = {};  // past them
    return std::nullopt;
  }

  // Drops the group's first `n` items, which are done (duplicates): detached ones are reported done now.
  void finish_items(Group& g, size_t n) {
    std::vector<SourceMessage> late;
    for (size_t k = 0; k < n; ++k) {
      if (g.items[k].own) late.push_back(std::move(g.items[k].own->message));
    }
    g.items.erase(g.items.begin(), g.items.begin() + long(n));
    report_late_done(late);
  }

  // Wakes `wait_idle` and `wait_done` (taking their mutex first, so a waiter between its check and
  // its wait cannot miss it).
  void notify_idle() {
    { std::lock_guard lock(idle_mu); }
    idle_cv.notify_all();
  }

  void report_late_done(std::vector<SourceMessage>& late) {
    if (late.empty()) return;
    if (on_done) on_done(late);
    {
      std::lock_guard lock(idle_mu);
      messages_done.fetch_add(late.size(), std::memory_order_relaxed);
    }
    idle_cv.notify_all();
  }

  // Dead-letters the group's events from index `from`: the first with `why`, the rest as
  // after-dead-letter; marks the stream dead for the rest of the run.
  Dispatched dead_letter_group(Group& g, StreamState& st, size_t from, const char* why, const std::string& detail) {
    std::vector<DeadLetter> letters;
    std::vector<const SourceMessage*> messages;
    for (size_t k = from; k < g.items.size(); ++k) {
      const SourceMessage& m = g.items[k].message();
      letters.push_back(k == from ? letter_for(m, why, detail, g.stream)
                                  : letter_for(m, reason::kAfterDeadLetter,
                                               "follows a dead-lettered event of this stream", g.stream));
      messages.push_back(&m);
    }
    st.dead = true;
    spdlog::warn("stream {}: {} ({})", g.stream, why, detail);
    return write_dead_letters(letters, messages) ? Dispatched::kDone : Dispatched::kFailed;
  }

  void on_append_done(GroupPtr g, const std::vector<Uuid>& ids, AppendOutcome out) {
    GroupPtr unparked = give_slot();
    handle_answer(std::move(g), ids, std::move(out));
    if (unparked) run_stream(std::move(unparked), /*has_slot=*/true);
  }

  void handle_answer(GroupPtr g, const std::vector<Uuid>& ids, AppendOutcome out) {
    StreamState& st = *g->state;
    Dispatched d = Dispatched::kDone;
    switch (out.code) {
      case AppendCode::kSuccess: {
        st.next_revision = g->first_revision + ids.size();
        st.last_id = ids.back();
        st.presumed_new = false;
        st.last_id_unknown = false;
        // Written by an earlier run (or another writer) with the same ids: duplicates.
        const auto kind = out.already_written ? MessageOutcome::Kind::kDuplicate : MessageOutcome::Kind::kAppended;
        (out.already_written ? duplicates : events_appended).fetch_add(ids.size(), std::memory_order_relaxed);
        for (size_t k = 0; k < ids.size(); ++k) report(g->items[k].message(), kind, ids[k], g->stream);
        break;
      }
      case AppendCode::kWrongExpectedVersion: {
        // The state was stale (or only presumed): learn it and classify again (duplicates vs
        // conflict vs gap). A stream that moved past the group's start (another writer, maybe a
        // concurrent replay of the same events) is classified again however often it happens: each
        // time the written prefix is compared by id, so a real conflict is found there, and each
        // time the stream is further on, so it ends.
        const bool moved_past = out.current_revision && out.current_revision->value() >= g->first_revision;
        if (g->refreshed && !moved_past) {
          d = dead_letter_group(*g, st, 0, reason::kRevisionConflict,
                                "wrong expected version: stream is at " +
                                    (out.current_revision ? std::to_string(out.current_revision->value()) : "no stream"));
          break;
        }
        const bool first = !g->refreshed;
        g->refreshed = true;
        if (!out.current_revision) {
          StreamTable::apply_tail(st, StreamTail{});  // "no stream" is the whole state
        } else if (exact_answers || !first) {
          // The answer's revision is the stream's as of the check: a written prefix is read anyway
          // (its ids), and the last id only when an append needs it.
          st.presumed_new = false;
          st.next_revision = out.current_revision->value() + 1;
          st.last_id.reset();
          st.last_id_unknown = true;
        } else {
          refresh(*g, st);
        }
        run_stream(std::move(g));
        return;
      }
      case AppendCode::kTooLarge:
        if (g->items.size() > 1) {
          // Split in half; the second half waits first in line among the stream's pending groups.
          auto second = std::make_unique<Group>();
          const size_t half = g->items.size() / 2;
          second->stream = g->stream;
          second->state = g->state;
          second->items.assign(std::make_move_iterator(g->items.begin() + long(half)),
                               std::make_move_iterator(g->items.end()));
          g->items.resize(half);
          second->first_revision = g->first_revision + half;
          second->bytes = g->bytes - g->bytes / 2;
          g->bytes /= 2;
          // Both halves hold every batch of the group open.
          second->batches = g->batches;
          for (const auto& b : second->batches) b->outstanding.fetch_add(1);
          table.put_back(std::move(second), /*running=*/false);
          run_stream(std::move(g));
          return;
        }
        d = dead_letter_group(*g, st, 0, reason::kEventTooLarge, out.message);
        break;
      case AppendCode::kStreamDeleted:
        d = dead_letter_group(*g, st, 0, reason::kStreamDeleted, out.message);
        break;
      case AppendCode::kAccessDenied:
        d = dead_letter_group(*g, st, 0, reason::kAccessDenied, out.message);
        break;
      case AppendCode::kRejected:
        d = dead_letter_group(*g, st, 0, reason::kRejectedByServer, out.message);
        break;
      case AppendCode::kFatal:
        set_fatal(absl::UnavailableError("append to " + g->stream + ": " + out.message));
        d = Dispatched::kFailed;
        break;
    }
    GroupPtr next = release_stream(std::move(g), d == Dispatched::kDone);
    if (next) run_stream(std::move(next));
  }

  // Finishes a group: its detached events are done now, its batches are accounted, and the stream
  // goes to its next runnable group (returned).
  GroupPtr release_stream(GroupPtr g, bool ok) {
    table.finished(*g);
    if (ok) {
      std::vector<SourceMessage> late;
      for (auto& it : g->items) {
        if (it.own) late.push_back(std::move(it.own->message));
      }
      report_late_done(late);
    }
    for (const auto& b : g->batches) {
      if (!ok) b->failed.store(true);
      finish_one(b);
    }
    if (g->batches.empty()) notify_idle();  // wait_idle also waits for held events being written
    StreamState* st = g->state;
    g.reset();
    auto step = table.release(*st, Clock::now());
    for (auto& b : step.release) finish_one(b);
    return std::move(step.run);
  }

  void finish_one(const BatchPtr& b) {
    if (b->outstanding.fetch_sub(1) == 1) {
      auto* gw = gateway.load();
      gw->try_put(b);
      gw->release_wait();
    }
  }

  // --- gaps ------------------------------------------------------------------------------------
  // Re-reads the claimed streams' tails (another group member or an earlier run may have written
  // the missing versions), then runs what now fits; what does not is dead-lettered with `give_up`,
  // else waits another window.
  void recheck(const std::vector<std::string>& names, bool give_up) {
    if (names.empty()) return;
    auto tails = read_tails(names);
    const auto now = Clock::now();
    for (size_t i = 0; i < names.size(); ++i) {
      StreamState& st = table.state(names[i]);
      if (!tails[i].ok()) {
        set_fatal(absl::UnavailableError("reading stream " + names[i] + ": " + std::string(tails[i].status().message())));
      } else if (tails[i]->exists && tails[i]->last_revision.value() + 1 > st.next_revision) {
        StreamTable::apply_tail(st, *tails[i]);
      }
      apply(table.resume(names[i], give_up && !has_fatal(), now));
    }
  }

  void check_gaps(bool give_up_all) {
    if (!rules.revisions()) return;
    std::lock_guard lock(gaps_mu);
    if (give_up_all) {
      recheck(table.claim_gaps(Clock::time_point::max()), true);
      return;
    }
    // The held budget: give up the oldest gaps while held events exceed it.
    while (table.held_bytes() > options.max_held_bytes && !has_fatal()) {
      auto oldest = table.claim_gaps(Clock::time_point::max(), 64);
      if (oldest.empty()) break;
      if (!warned_held_budget) {
        warned_held_budget = true;
        spdlog::warn("events waiting for missing versions exceed {} bytes: the oldest gaps are dead-lettered "
                     "revision-gap (raise --max-held-bytes, or key messages by aggregate id)",
                     options.max_held_bytes);
      }
      recheck(oldest, true);
    }
    recheck(table.claim_gaps(Clock::now() - options.reorder_window), options.give_up_expired_gaps);
  }

  // --- completion (serial) -------------------------------------------------------------------
  void complete_batch(const BatchPtr& b) {
    if (!b->failed.load()) {
      size_t n = b->messages.size();
      if (std::find(b->detached.begin(), b->detached.end(), 1) == b->detached.end()) {
        if (on_done) on_done(b->messages);
      } else {
        // Held events are reported when they are written.
        std::vector<SourceMessage> done;
        for (size_t i = 0; i < b->messages.size(); ++i) {
          if (!b->detached[i]) done.push_back(std::move(b->messages[i]));
        }
        n = done.size();
        if (on_done) on_done(done);
      }
      messages_done.fetch_add(n, std::memory_order_relaxed);
    }
    batches_done.fetch_add(1, std::memory_order_relaxed);
    bytes_in_flight.fetch_sub(b->bytes);
    {
      std::lock_guard lock(idle_mu);
      batches_in_flight.fetch_sub(1);
    }
    idle_cv.notify_all();
  }
};

IngestEngine::IngestEngine(EngineOptions options, Sink& sink, DeadLetterSink* dead_letters, DoneHook on_done)
    : impl_(std::make_unique<Impl>(std::move(options), sink, dead_letters, std::move(on_done))) {}

IngestEngine::~IngestEngine() {
  wait_idle();
  impl_->arena.execute([&] { impl_->flow->graph.wait_for_all(); });
  // Sink answers still being handled in the arena (their batches already completed).
  while (impl_->callbacks_pending.load() > 0) std::this_thread::yield();
}

void IngestEngine::submit(std::vector<SourceMessage>&& messages, size_t bytes) {
  if (messages.empty()) return;
  auto b = std::make_shared<Batch>();
  b->seq = SequenceNumber{impl_->next_seq++};
  b->bytes = bytes;
  // In flight before counted as read: whoever sees the read count sees the batch in flight.
  impl_->batches_in_flight.fetch_add(1);
  impl_->events_read.fetch_add(messages.size());
  b->messages = std::move(messages);
  impl_->bytes_in_flight.fetch_add(bytes);
  impl_->flow->entry.try_put(b);  // the queue node copies the handle
}

bool IngestEngine::has_room() const {
  // High mark: the hand-off queue may hold a couple of batches beyond the limiter's threshold, no
  // more. Low mark: half of it. Pausing makes librdkafka drop what it prefetched, so the source
  // resumes only after the engine drained to the low mark instead of flapping at one threshold.
  // Held events have a budget of their own (`max_held_bytes`, kept by the gap checks): counted
  // here they could fill this one before theirs is reached, and the source would wait for gaps
  // that only its reading can fill.
  const size_t batches = impl_->batches_in_flight.load();
  const size_t bytes = impl_->bytes_in_flight.load();
  const auto& o = impl_->options;
  if (impl_->budget_full) {
    if (batches <= o.max_batches_in_flight / 2 && bytes <= o.max_bytes_in_flight / 2) impl_->budget_full = false;
  } else if (batches >= o.max_batches_in_flight + 2 || bytes >= o.max_bytes_in_flight) {
    impl_->budget_full = true;
  }
  return !impl_->budget_full;
}

bool IngestEngine::held_over_soft_limit() const {
  return impl_->table.held_bytes() > impl_->options.max_held_bytes / 2;
}

void IngestEngine::on_revoke(const std::vector<TopicPartition>& tps) {
  bool drained = true;
  {
    std::unique_lock lock(impl_->idle_mu);
    if (!impl_->idle_cv.wait_for(lock, impl_->options.revoke_wait,
                                 [&] { return impl_->batches_in_flight.load() == 0 || impl_->has_fatal(); })) {
      spdlog::warn("revoke: in-flight work did not finish within {} ms; its offsets will not be committed",
                   impl_->options.revoke_wait.count());
    }
    drained = impl_->batches_in_flight.load() == 0;
  }
  // Stream states are a cache: they are forgotten only when no batch is being grouped, since a
  // batch already past its first-touch reads counts on finding them.
  if (size_t dropped = impl_->table.revoke(tps, /*forget_streams=*/drained); dropped > 0) {
    spdlog::info("revoke: {} held event(s) of the revoked partitions dropped; their next owner reads them again",
                 dropped);
  }
}

void IngestEngine::wait_idle() {
  std::unique_lock lock(impl_->idle_mu);
  impl_->idle_cv.wait(lock, [&] {
    return impl_->batches_in_flight.load() == 0 && (impl_->table.running_detached() == 0 || impl_->has_fatal());
  });
}

void IngestEngine::check_gaps() { impl_->check_gaps(false); }

void IngestEngine::give_up_gaps() { impl_->check_gaps(true); }

bool IngestEngine::wait_done(uint64_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->idle_mu);
  return impl_->idle_cv.wait_for(lock, timeout, [&] { return impl_->messages_done.load() >= n || impl_->has_fatal(); }) &&
         impl_->messages_done.load() >= n;
}

EngineStats IngestEngine::stats() const {
  const auto& i = *impl_;
  EngineStats s;
  s.events_read = i.events_read.load();  // before batches_in_flight (see submit)
  s.events_appended = i.events_appended.load();
  s.duplicates = i.duplicates.load();
  s.conflicts = i.conflicts.load();
  s.dead_lettered = i.dead_lettered.load();
  s.streams = i.streams_touched.load();
  s.batches = i.batches_done.load();
  s.batches_in_flight = i.batches_in_flight.load();
  s.appends = i.appends.load();
  s.messages_done = i.messages_done.load();
  const auto t = i.table.stats();
  s.streams_on_several_partitions = t.streams_on_several_partitions;
  s.events_held = t.held_events;
  s.held_bytes = t.held_bytes;
  s.events_reordered = t.events_reordered;
  s.max_reorder_wait_ms = t.max_reorder_wait_ms;
  s.open_gaps = t.gaps;
  s.pending_groups = t.pending_groups;
  s.stream_reads = i.stream_reads.load();
  s.cached_streams = t.cached_streams;
  s.stream_cache_bytes = t.cache_bytes;
  s.stream_cache_evictions = t.evictions;
  s.stream_cache_hits = i.cache_hits.load();
  s.stream_cache_misses = i.cache_misses.load();
  return s;
}

absl::Status IngestEngine::fatal() const {
  std::lock_guard lock(impl_->fatal_mu);
  return impl_->fatal_status;
}

}  // namespace kingest::pipeline
