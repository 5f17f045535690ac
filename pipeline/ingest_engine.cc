#include "pipeline/ingest_engine.h"

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/parallel_for.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "codecs/codec.h"
#include "pipeline/grouping.h"

namespace kingest::pipeline {
namespace {

namespace flow = oneapi::tbb::flow;

struct Batch {
  SequenceNumber seq{0};
  std::vector<SourceMessage> messages;
  size_t bytes = 0;
  std::vector<codecs::DecodeResult> decoded;
  std::atomic<size_t> outstanding{0};
  std::atomic<bool> failed{false};
};
using BatchPtr = std::shared_ptr<Batch>;

// One event of a batch: the batch and the index of its message.
struct Item {
  Batch* batch;  // kept alive by the owning group's `batches`
  uint32_t index;
};

// A run of one stream's events with contiguous revisions, appended as one write. It starts as one
// batch's events; while the stream has an append in flight, the groups of later batches that queue
// behind it are merged into it (up to the append size limit), so a busy stream gets fewer, larger
// appends.
struct Group {
  std::string stream;
  std::vector<Item> items;       // in revision (and delivery) order
  std::vector<BatchPtr> batches; // every batch this group accounts for, each once
  uint64_t first_revision = 0;   // unused when the version base is `none`
  size_t bytes = 0;              // estimated append size
  bool refreshed = false;        // the stream state was re-read once for this group
};
using GroupPtr = std::unique_ptr<Group>;

struct StreamState {
  uint64_t next_revision = 0;       // the revision the next event must have
  std::optional<Uuid> last_id;      // the stream's last event id (causation of the next event)
  bool dead = false;                // a dead letter happened: later events cannot keep revisions
  bool in_flight = false;           // an append (or its classification) is running
  std::deque<GroupPtr> waiting;     // groups queued behind the in-flight one, in order
  TopicPartition tp;                // where the stream was last seen
  bool multi_partition_reported = false;
};

const DomainEvent& event_of(const Batch& b, uint32_t i) { return std::get<DomainEvent>(b.decoded[i]); }
const DomainEvent& event_of(const Item& it) { return event_of(*it.batch, it.index); }
const SourceMessage& message_of(const Item& it) { return it.batch->messages[it.index]; }
size_t estimated_size(const DomainEvent& e) { return e.payload.size() + 2 * e.event_type.size() + 512; }

DeadLetter letter_for(const Batch& b, uint32_t i, std::string reason, std::string detail, std::string stream = {}) {
  const auto& m = b.messages[i];
  return DeadLetter{std::move(reason), std::move(detail), m.tp.topic,   m.tp.partition,      m.offset.value(),
                    m.timestamp_ms,    m.key,             m.value,      std::move(stream)};
}

// The codec comes from the message's content-type header, else the topic's setting, else JSON.
codecs::DecodeResult decode_message(const SourceMessage& m, const std::map<std::string, codecs::Codec>& topic_codecs) {
  codecs::Codec codec = codecs::Codec::kJson;
  if (!m.content_type.empty()) {
    auto c = codecs::codec_for_content_type(m.content_type);
    if (!c) return DecodeError{codecs::unsupported_content_type_reason(m.content_type)};
    codec = *c;
  } else if (auto it = topic_codecs.find(m.tp.topic); it != topic_codecs.end()) {
    codec = it->second;
  }
  if (m.value.empty()) return DecodeError{"empty message value (a Kafka tombstone or an empty payload)"};
  return codecs::decode(codec, m.value);
}

}  // namespace

struct IngestEngine::Impl {
  using AsyncNode = flow::async_node<BatchPtr, BatchPtr>;

  EngineOptions options;
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
  AsyncNode::gateway_type* gateway = nullptr;
  std::atomic<size_t> callbacks_pending{0};  // sink answers queued into the arena

  // Append slots (options.max_appends_in_flight). Lock order: slot_mu, then streams_mu.
  std::mutex slot_mu;
  size_t slots_used = 0;
  std::deque<std::string> parked;  // streams waiting for a slot; their group is first in `waiting`

  uint64_t next_seq = 0;      // polling thread only
  bool budget_full = false;   // polling thread only (has_room's hysteresis)

  // Budget and idleness.
  std::atomic<size_t> batches_in_flight{0};
  std::atomic<size_t> bytes_in_flight{0};
  mutable std::mutex idle_mu;
  std::condition_variable idle_cv;

  // Stream states; guarded by `streams_mu`. A stream's state fields are written only by whoever
  // holds its `in_flight` flag.
  std::mutex streams_mu;
  std::unordered_map<std::string, StreamState> streams;
  std::unordered_set<std::string> warned_types;  // append node only

  // Counters.
  std::atomic<uint64_t> events_read{0}, events_appended{0}, duplicates{0}, conflicts{0}, dead_lettered{0},
      streams_touched{0}, batches_done{0}, appends{0}, messages_done{0}, multi_partition{0};

  mutable std::mutex fatal_mu;
  absl::Status fatal_status;

  static int thread_count(int requested) {
    return requested > 0 ? requested : int(std::max(2u, std::thread::hardware_concurrency()));
  }

  Impl(EngineOptions o, Sink& s, DeadLetterSink* d, DoneHook h)
      : options(std::move(o)),
        sink(s),
        dead_letters(d),
        on_done(std::move(h)),
        arena(thread_count(options.threads), /*reserved_for_masters=*/0) {
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
        b->decoded.push_back(options.decoder ? options.decoder(m) : decode_message(m, options.topic_codecs));
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

  bool write_dead_letters(const std::vector<DeadLetter>& letters) {
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
    for (const auto& l : letters) {
      if (l.reason == reason::kRevisionConflict) conflicts.fetch_add(1, std::memory_order_relaxed);
    }
    return true;
  }

  // --- group + append (serial, in sequence order) --------------------------------------------
  void group_and_append(const BatchPtr& b, AsyncNode::gateway_type& gw) {
    gateway = &gw;
    gw.reserve_wait();  // released when the batch's last group completes
    b->outstanding.store(1);  // a guard until every group is handed out

    std::vector<DeadLetter> bad;
    BatchGroups grouped;
    for (uint32_t i = 0; i < b->messages.size(); ++i) {
      if (auto* err = std::get_if<DecodeError>(&b->decoded[i])) {
        bad.push_back(letter_for(*b, i, reason::kDecodeError, err->reason));
        continue;
      }
      const DomainEvent& e = event_of(*b, i);
      std::string stream = options.stream_names.render(e);
      if (options.version_base.kind != VersionBase::Kind::kNone && !options.version_base.revision_of(e.aggregate_version)) {
        bad.push_back(letter_for(*b, i, reason::kVersionBelowBase,
                                 "aggregateVersion " + std::to_string(e.aggregate_version) + " is below the version base " +
                                     options.version_base.to_string(),
                                 stream));
        continue;
      }
      if (breaks_category_projection(e.aggregate_type) && warned_types.insert(e.aggregate_type).second) {
        spdlog::warn("aggregate type '{}' contains '-': KurrentDB's $by_category projection will split its streams",
                     e.aggregate_type);
      }
      grouped.add(std::move(stream), i);
    }
    if (!write_dead_letters(bad)) b->failed.store(true);

    load_unknown_streams(*b, grouped);

    std::vector<GroupPtr> groups;
    for (const auto& stream : grouped.order) split_into_groups(b, stream, grouped.members(stream), groups);
    b->outstanding.fetch_add(groups.size());

    std::vector<GroupPtr> to_send;
    {
      std::lock_guard lock(streams_mu);
      for (auto& g : groups) {
        auto& st = streams[g->stream];
        const auto& tp = message_of(g->items.front()).tp;
        if (!(st.tp == tp)) {
          if (!st.tp.topic.empty() && !st.multi_partition_reported) {
            st.multi_partition_reported = true;
            multi_partition.fetch_add(1, std::memory_order_relaxed);
            spdlog::warn("stream {} seen on {} and {}: key events by aggregate id so one stream lives in one partition",
                         g->stream, to_string(st.tp), to_string(tp));
          }
          st.tp = tp;
        }
        if (st.in_flight) {
          if (!st.waiting.empty() && can_merge(*st.waiting.back(), *g)) {
            merge_into(*st.waiting.back(), *g);
          } else {
            st.waiting.push_back(std::move(g));
          }
        } else {
          st.in_flight = true;
          to_send.push_back(std::move(g));
        }
      }
    }
    for (auto& g : to_send) run_stream(std::move(g));
    finish_one(b);  // the guard
  }

  // Fills the state of streams this run has not touched yet: one backwards read each, in parallel.
  void load_unknown_streams(const Batch& b, const BatchGroups& grouped) {
    const auto& order = grouped.order;
    std::vector<std::string> unknown;
    {
      std::lock_guard lock(streams_mu);
      for (const auto& s : order) {
        if (!streams.contains(s)) unknown.push_back(s);
      }
    }
    if (unknown.empty()) return;
    // In chunks, in parallel: an in-process sink reads each chunk on one worker, a remote one
    // overlaps a chunk's reads on the wire.
    constexpr size_t kChunk = 128;
    std::vector<absl::StatusOr<StreamTail>> tails(unknown.size());
    oneapi::tbb::parallel_for(size_t(0), (unknown.size() + kChunk - 1) / kChunk, [&](size_t c) {
      size_t begin = c * kChunk;
      size_t end = std::min(unknown.size(), begin + kChunk);
      auto got = sink.read_tails(std::vector<std::string>(unknown.begin() + long(begin), unknown.begin() + long(end)));
      for (size_t i = begin; i < end; ++i) tails[i] = std::move(got[i - begin]);
    });
    std::lock_guard lock(streams_mu);
    for (size_t i = 0; i < unknown.size(); ++i) {
      auto& st = streams[unknown[i]];
      streams_touched.fetch_add(1, std::memory_order_relaxed);
      st.tp = b.messages[grouped.members(unknown[i]).front()].tp;
      if (!tails[i].ok()) {
        set_fatal(absl::UnavailableError("reading stream " + unknown[i] + ": " + std::string(tails[i].status().message())));
        continue;
      }
      apply_tail(st, *tails[i]);
    }
  }

  static void apply_tail(StreamState& st, const StreamTail& t) {
    if (t.exists) {
      st.next_revision = t.last_revision.value() + 1;
      st.last_id = t.last_id;
    } else {
      st.next_revision = 0;
      st.last_id.reset();
    }
  }

  // Splits one stream's events of one batch into contiguous-revision runs under the size limit.
  void split_into_groups(const BatchPtr& b, const std::string& stream, const std::vector<uint32_t>& items,
                         std::vector<GroupPtr>& out) {
    const bool revisions = options.version_base.kind != VersionBase::Kind::kNone;
    GroupPtr g;
    uint64_t next = 0;
    size_t bytes = 0;
    for (uint32_t i : items) {
      const DomainEvent& e = event_of(*b, i);
      uint64_t rev = revisions ? *options.version_base.revision_of(e.aggregate_version) : 0;
      size_t sz = estimated_size(e);
      bool contiguous = !revisions || rev == next;
      if (!g || !contiguous || bytes + sz > options.max_append_bytes) {
        if (g) out.push_back(std::move(g));
        g = std::make_unique<Group>();
        g->batches.push_back(b);
        g->stream = stream;
        g->first_revision = rev;
        bytes = 0;
      }
      g->items.push_back({b.get(), i});
      next = rev + 1;
      bytes += sz;
      g->bytes = bytes;
    }
    if (g) out.push_back(std::move(g));
  }

  // A group waiting behind an in-flight append can absorb the next one when their revisions
  // continue each other and the result stays under the append size limit.
  bool can_merge(const Group& into, const Group& next) const {
    if (into.bytes + next.bytes > options.max_append_bytes) return false;
    return options.version_base.kind == VersionBase::Kind::kNone ||
           into.first_revision + into.items.size() == next.first_revision;
  }

  // Moves `next`'s events into `into`; each batch stays accounted for exactly once.
  static void merge_into(Group& into, Group& next) {
    into.items.insert(into.items.end(), next.items.begin(), next.items.end());
    into.bytes += next.bytes;
    for (auto& b : next.batches) {
      if (std::find(into.batches.begin(), into.batches.end(), b) == into.batches.end()) {
        into.batches.push_back(std::move(b));
      } else {
        b->outstanding.fetch_sub(1);  // `into` already holds this batch open
      }
    }
  }

  // --- per-stream scheduling -----------------------------------------------------------------
  // What became of a group handed to `dispatch`.
  enum class Dispatched { kSent, kDone, kFailed };

  // Takes an append slot for `g`, or parks it: the group goes back to the head of its stream's
  // queue (the stream keeps its in-flight flag, so later groups merge behind it) until a slot frees.
  bool take_slot_or_park(GroupPtr& g) {
    std::lock_guard lock(slot_mu);
    if (slots_used < std::max<size_t>(1, options.max_appends_in_flight)) {
      ++slots_used;
      return true;
    }
    std::string name = g->stream;
    {
      std::lock_guard streams_lock(streams_mu);
      streams[name].waiting.push_front(std::move(g));
    }
    parked.push_back(std::move(name));
    return false;
  }

  // Gives a slot back, or hands it straight to the first parked stream's group (returned).
  GroupPtr give_slot() {
    std::lock_guard lock(slot_mu);
    while (!parked.empty()) {
      std::string name = std::move(parked.front());
      parked.pop_front();
      std::lock_guard streams_lock(streams_mu);
      auto it = streams.find(name);
      if (it == streams.end() || it->second.waiting.empty()) continue;  // dropped on revoke
      GroupPtr g = std::move(it->second.waiting.front());
      it->second.waiting.pop_front();
      return g;
    }
    --slots_used;
    return nullptr;
  }

  // Runs groups of one stream until one is sent asynchronously (its callback continues the chain),
  // the stream has nothing more waiting, or it is parked for a slot. `has_slot`: `g` already holds
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
        g = release_stream(std::move(g), d == Dispatched::kDone);
      }
    }
  }

  StreamState& state_of(const std::string& stream) {
    std::lock_guard lock(streams_mu);
    return streams[stream];  // node-based map: the reference stays valid until erased on revoke
  }

  // Classifies the group against the stream state, then sends it or finishes it here. The caller
  // holds the stream's in-flight flag.
  Dispatched dispatch(Group& g) {
    if (has_fatal()) return Dispatched::kFailed;
    StreamState& st = state_of(g.stream);
    if (st.dead) {
      std::vector<DeadLetter> letters;
      for (const Item& it : g.items) {
        letters.push_back(letter_for(*it.batch, it.index, reason::kAfterDeadLetter,
                                     "an earlier event of this stream was dead-lettered in this run", g.stream));
      }
      return write_dead_letters(letters) ? Dispatched::kDone : Dispatched::kFailed;
    }
    const bool revisions = options.version_base.kind != VersionBase::Kind::kNone;
    if (revisions) {
      if (g.first_revision > st.next_revision) {
        if (!g.refreshed && refresh(g, st)) return dispatch(g);
        return dead_letter_group(g, st, 0, reason::kRevisionGap,
                                 "expected revision " + std::to_string(st.next_revision) + " next, got " +
                                     std::to_string(g.first_revision) + ": earlier events are missing");
      }
      if (g.first_revision < st.next_revision) {
        if (auto finished = skip_written_prefix(g, st)) return *finished;
      }
      if (g.items.empty()) return Dispatched::kDone;
    }
    AppendRequest req;
    req.stream = g.stream;
    if (!revisions) {
      req.expected = ExpectAny{};
    } else if (g.first_revision == 0) {
      req.expected = ExpectNoStream{};
    } else {
      req.expected = StreamRevision{g.first_revision - 1};
    }
    req.events.reserve(g.items.size());
    std::optional<Uuid> previous = st.last_id;
    uint64_t rev = g.first_revision;
    for (const Item& it : g.items) {
      const DomainEvent& e = event_of(it);
      const SourceMessage& m = message_of(it);
      Uuid id = derive_event_id(e, g.stream, revisions ? rev : uint64_t(m.offset.value()));
      EventData ev;
      ev.id = id;
      ev.type = e.event_type;
      // KurrentDB knows two content types: JSON, and bytes (the payload's own type is kept in the
      // metadata as payloadContentType).
      ev.content_type = e.content_type == kJsonContentType ? kJsonContentType : kBytesContentType;
      ev.data = e.payload;
      ev.metadata = build_metadata(e, id, previous, SourceRef{m.tp.topic, m.tp.partition, m.offset.value()});
      req.events.push_back(std::move(ev));
      previous = id;
      ++rev;
    }
    appends.fetch_add(1, std::memory_order_relaxed);
    Uuid last_id = req.events.back().id;
    size_t count = req.events.size();
    Group* raw = &g;
    callbacks_pending.fetch_add(1);
    sink.append(std::move(req), [this, raw, last_id, count](AppendOutcome out) {
      // Runs on the sink's thread: hand the follow-up work to the arena and return at once.
      arena.enqueue([this, raw, last_id, count, out = std::move(out)] {
        on_append_done(GroupPtr(raw), last_id, count, out);
        callbacks_pending.fetch_sub(1);
      });
    });
    return Dispatched::kSent;
  }

  // Re-reads the stream state once for this group; true when it changed.
  bool refresh(Group& g, StreamState& st) {
    g.refreshed = true;
    auto tail = sink.read_tail(g.stream);
    if (!tail.ok()) {
      set_fatal(absl::UnavailableError("reading stream " + g.stream + ": " + std::string(tail.status().message())));
      return false;
    }
    uint64_t before = st.next_revision;
    apply_tail(st, *tail);
    return st.next_revision != before;
  }

  // The group starts below the stream's next revision: compare ids with what is written there.
  // Equal → duplicates, dropped from the group (nullopt: go on with the rest); different →
  // revision-conflict (the group is finished here).
  std::optional<Dispatched> skip_written_prefix(Group& g, StreamState& st) {
    uint64_t overlap = std::min<uint64_t>(g.items.size(), st.next_revision - g.first_revision);
    auto written = sink.read_forwards(g.stream, StreamRevision{g.first_revision}, overlap);
    if (!written.ok()) {
      set_fatal(absl::UnavailableError("reading stream " + g.stream + ": " + std::string(written.status().message())));
      return Dispatched::kFailed;
    }
    size_t dup = 0;
    for (; dup < overlap; ++dup) {
      uint64_t rev = g.first_revision + dup;
      Uuid proposed = derive_event_id(event_of(g.items[dup]), g.stream, rev);
      if (dup >= written->size() || (*written)[dup].revision.value() != rev || (*written)[dup].id != proposed) {
        std::string theirs = dup < written->size() ? (*written)[dup].id.to_string() : std::string("nothing");
        duplicates.fetch_add(dup, std::memory_order_relaxed);
        return dead_letter_group(g, st, dup, reason::kRevisionConflict,
                                 "revision " + std::to_string(rev) + " holds event " + theirs +
                                     ", this event's id is " + proposed.to_string());
      }
    }
    duplicates.fetch_add(dup, std::memory_order_relaxed);
    g.items.erase(g.items.begin(), g.items.begin() + long(dup));
    g.first_revision += dup;
    return std::nullopt;
  }

  // Dead-letters the group's events from index `from`: the first with `why`, the rest as
  // after-dead-letter; marks the stream dead for the rest of the run.
  Dispatched dead_letter_group(Group& g, StreamState& st, size_t from, const char* why, const std::string& detail) {
    std::vector<DeadLetter> letters;
    for (size_t k = from; k < g.items.size(); ++k) {
      const Item& it = g.items[k];
      letters.push_back(k == from ? letter_for(*it.batch, it.index, why, detail, g.stream)
                                  : letter_for(*it.batch, it.index, reason::kAfterDeadLetter,
                                               "follows a dead-lettered event of this stream", g.stream));
    }
    st.dead = true;
    spdlog::warn("stream {}: {} ({})", g.stream, why, detail);
    return write_dead_letters(letters) ? Dispatched::kDone : Dispatched::kFailed;
  }

  void on_append_done(GroupPtr g, Uuid last_id, size_t count, AppendOutcome out) {
    GroupPtr unparked = give_slot();
    handle_answer(std::move(g), last_id, count, std::move(out));
    if (unparked) run_stream(std::move(unparked), /*has_slot=*/true);
  }

  void handle_answer(GroupPtr g, Uuid last_id, size_t count, AppendOutcome out) {
    StreamState& st = state_of(g->stream);
    Dispatched d = Dispatched::kDone;
    switch (out.code) {
      case AppendCode::kSuccess:
        st.next_revision = g->first_revision + count;
        st.last_id = last_id;
        events_appended.fetch_add(count, std::memory_order_relaxed);
        break;
      case AppendCode::kWrongExpectedVersion:
        // The state was stale: re-read it once and classify again (duplicates vs conflict).
        if (!g->refreshed) {
          (void)refresh(*g, st);
          run_stream(std::move(g));
          return;
        }
        d = dead_letter_group(*g, st, 0, reason::kRevisionConflict,
                              "wrong expected version: stream is at " +
                                  (out.current_revision ? std::to_string(out.current_revision->value()) : "no stream"));
        break;
      case AppendCode::kTooLarge:
        if (g->items.size() > 1) {
          // Split in half; the second half waits at the head of the stream's queue.
          auto second = std::make_unique<Group>(*g);
          size_t half = g->items.size() / 2;
          g->items.resize(half);
          second->items.erase(second->items.begin(), second->items.begin() + long(half));
          second->first_revision += half;
          second->bytes = g->bytes - g->bytes / 2;
          g->bytes /= 2;
          // Both halves now hold every batch of the group open.
          for (const auto& b : g->batches) b->outstanding.fetch_add(1);
          {
            std::lock_guard lock(streams_mu);
            st.waiting.push_front(std::move(second));
          }
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

  // Finishes a group: accounts it to its batch, and hands the stream to its next waiting group.
  GroupPtr release_stream(GroupPtr g, bool ok) {
    GroupPtr next;
    {
      std::lock_guard lock(streams_mu);
      auto& st = streams[g->stream];
      if (!st.waiting.empty()) {
        next = std::move(st.waiting.front());
        st.waiting.pop_front();
      } else {
        st.in_flight = false;
      }
    }
    for (const auto& b : g->batches) {
      if (!ok) b->failed.store(true);
      finish_one(b);
    }
    return next;
  }

  void finish_one(const BatchPtr& b) {
    if (b->outstanding.fetch_sub(1) == 1) {
      gateway->try_put(b);
      gateway->release_wait();
    }
  }

  // --- completion (serial) -------------------------------------------------------------------
  void complete_batch(const BatchPtr& b) {
    if (!b->failed.load()) {
      if (on_done) on_done(b->messages);
      messages_done.fetch_add(b->messages.size(), std::memory_order_relaxed);
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
  impl_->events_read.fetch_add(messages.size(), std::memory_order_relaxed);
  b->messages = std::move(messages);
  impl_->batches_in_flight.fetch_add(1);
  impl_->bytes_in_flight.fetch_add(bytes);
  impl_->flow->entry.try_put(std::move(b));
}

bool IngestEngine::has_room() const {
  // High mark: the hand-off queue may hold a couple of batches beyond the limiter's threshold, no
  // more. Low mark: half of it. Pausing makes librdkafka drop what it prefetched, so the source
  // resumes only after the engine drained to the low mark instead of flapping at one threshold.
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

void IngestEngine::on_revoke(const std::vector<TopicPartition>& tps) {
  {
    std::unique_lock lock(impl_->idle_mu);
    if (!impl_->idle_cv.wait_for(lock, impl_->options.revoke_wait,
                                 [&] { return impl_->batches_in_flight.load() == 0 || impl_->has_fatal(); })) {
      spdlog::warn("revoke: in-flight work did not finish within {} ms; its offsets will not be committed",
                   impl_->options.revoke_wait.count());
    }
  }
  std::set<TopicPartition> revoked(tps.begin(), tps.end());
  std::lock_guard lock(impl_->streams_mu);
  for (auto it = impl_->streams.begin(); it != impl_->streams.end();) {
    if (revoked.contains(it->second.tp) && !it->second.in_flight && it->second.waiting.empty()) {
      it = impl_->streams.erase(it);
    } else {
      ++it;
    }
  }
}

void IngestEngine::wait_idle() {
  std::unique_lock lock(impl_->idle_mu);
  impl_->idle_cv.wait(lock, [&] { return impl_->batches_in_flight.load() == 0; });
}

bool IngestEngine::wait_done(uint64_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->idle_mu);
  return impl_->idle_cv.wait_for(lock, timeout, [&] { return impl_->messages_done.load() >= n || impl_->has_fatal(); }) &&
         impl_->messages_done.load() >= n;
}

EngineStats IngestEngine::stats() const {
  const auto& i = *impl_;
  EngineStats s;
  s.events_read = i.events_read.load();
  s.events_appended = i.events_appended.load();
  s.duplicates = i.duplicates.load();
  s.conflicts = i.conflicts.load();
  s.dead_lettered = i.dead_lettered.load();
  s.streams = i.streams_touched.load();
  s.batches = i.batches_done.load();
  s.appends = i.appends.load();
  s.messages_done = i.messages_done.load();
  s.streams_on_several_partitions = i.multi_partition.load();
  return s;
}

absl::Status IngestEngine::fatal() const {
  std::lock_guard lock(impl_->fatal_mu);
  return impl_->fatal_status;
}

}  // namespace kingest::pipeline
