// The engine's public API, its flow graph and the batches through it: decode with each batch's
// naming and grouping (parallel), stream states and groups (serial, in sequence order), completion.
// Per-stream appends are in stream_appends.cc; the shared state in internal/engine_impl.h.
#include "pipeline/ingest_engine.h"

#include <oneapi/tbb/parallel_for.h>
#include <spdlog/spdlog.h>

#include <thread>
#include <variant>

#include "absl/hash/hash.h"
#include "codecs/codec.h"
#include "core/prefetch.h"
#include "pipeline/internal/engine_impl.h"

namespace kingest::pipeline {

DeadLetter letter_for(const SourceMessage& m, std::string reason, std::string detail, std::string stream) {
  DeadLetter d{std::move(reason), std::move(detail), m.tp.topic, m.tp.partition,
               m.offset.value(),  m.timestamp_ms,    m.key.str(), m.value,
               std::move(stream)};
  d.key_null = m.key_null;
  d.content_type = m.content_type;
  return d;
}

IngestEngine::Impl::Flow::Flow(Impl& impl, size_t max_batches)
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

IngestEngine::Impl::Impl(EngineOptions o, Sink& s, DeadLetterSink* d, DoneHook h)
    : options(std::move(o)),
      rules{options.version_base, options.max_append_bytes, s.wants_record_properties()},
      sink(s),
      timed_sink(dynamic_cast<TimedSink*>(&s)),
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
    parallelism =
        std::make_unique<oneapi::tbb::global_control>(oneapi::tbb::global_control::max_allowed_parallelism, workers);
  }
  arena.execute([&] { flow = std::make_unique<Flow>(*this, options.max_batches_in_flight); });
}

codecs::DecodeResult IngestEngine::Impl::decode_one(const SourceMessage& m) const {
  try {
    return options.decoder ? options.decoder(m) : codecs::decode_message(m, options.topic_codecs);
  } catch (const std::exception& e) {
    // Every sequence number must reach the sequencer: errors travel as values.
    return DecodeError{std::string("decoder failed: ") + e.what()};
  } catch (...) {
    return DecodeError{"decoder failed"};
  }
}

BatchPtr IngestEngine::Impl::decode_batch(BatchPtr b) const {
  // Each result is built in its place in the batch: emplaced from a value that converts to it, the
  // decoder's returned result initialises the element itself (a push_back would move it there).
  struct Decoded {
    const Impl* impl;
    const SourceMessage* message;
    operator codecs::DecodeResult() const { return impl->decode_one(*message); }  // NOLINT(google-explicit-constructor)
  };
  // The messages' bytes were written by the polling thread on another core: each is fetched into
  // this core's cache two messages ahead of its decode, rather than missed on its first read.
  constexpr size_t kAhead = 2;
  const auto& messages = b->messages;
  b->decoded.reserve(messages.size());
  b->facts.resize(messages.size());
  b->grouped = BatchGroups(messages.size());
  // Asked here, where each message is in this core's cache anyway.
  const bool ask = options.on_outcome && options.outcome_wanted;
  if (ask) b->outcome_wanted.resize(messages.size());
  std::string stream;  // each event's stream name, in one string's room
  for (uint32_t i = 0; i < messages.size(); ++i) {
    if (i + kAhead < messages.size()) {
      const std::string& next = messages[i + kAhead].value;
      prefetch_bytes(next.data(), next.size());
    }
    b->decoded.emplace_back(Decoded{this, &messages[i]});
    name_and_group(*b, i, stream);
    if (ask) b->outcome_wanted[i] = options.outcome_wanted(messages[i]) ? 1 : 0;
  }
  return b;
}

void IngestEngine::Impl::name_and_group(Batch& b, uint32_t i, std::string& stream) const {
  if (auto* err = std::get_if<DecodeError>(&b.decoded[i])) {
    b.rejected.push_back({i, reason::kDecodeError, err->reason, {}});
    return;
  }
  const DomainEvent& e = std::get<DomainEvent>(b.decoded[i]);
  options.stream_names.render_into(e, stream);
  const std::optional<Batch::Facts> facts = facts_of(e, rules);
  if (!facts) {
    b.rejected.push_back({i, reason::kVersionBelowBase,
                          "aggregateVersion " + std::to_string(e.aggregate_version) + " is below the version base " +
                              options.version_base.to_string(),
                          stream});
    return;
  }
  if (!options.allow_system_streams && stream.starts_with('$')) {
    b.rejected.push_back({i, reason::kSystemStream,
                          "stream name '" + stream +
                              "' starts with '$': a KurrentDB system or metadata stream "
                              "(--allow-system-streams writes it anyway)",
                          stream});
    return;
  }
  if (breaks_category_projection(e.aggregate_type) &&
      std::find(b.dashed_types.begin(), b.dashed_types.end(), e.aggregate_type.view()) == b.dashed_types.end()) {
    b.dashed_types.push_back(e.aggregate_type.str());
  }
  b.facts[i] = *facts;
  b.grouped.add(stream, StreamTable::hash_name(stream), i);
}

void IngestEngine::Impl::set_fatal(absl::Status s) {
  {
    std::lock_guard lock(fatal_mu);
    if (!fatal_status.ok()) return;
    fatal_status = std::move(s);
    failed.store(true, std::memory_order_release);
    spdlog::error("stopping: {}", fatal_status.ToString());
  }
  notify_idle();  // through the waiters' mutex: a waiter between its check and its sleep still wakes
}

bool IngestEngine::Impl::has_fatal() const { return failed.load(std::memory_order_acquire); }

void IngestEngine::Impl::report(const Item& it, MessageOutcome::Kind kind, const Uuid& id, const std::string& stream) {
  if (options.on_outcome && it.outcome_wanted) options.on_outcome(it.message(), MessageOutcome{kind, id, stream, {}, {}});
}

bool IngestEngine::Impl::write_dead_letters(const std::vector<DeadLetter>& letters,
                                            const std::vector<const SourceMessage*>& messages) {
  if (letters.empty()) return true;
  if (dead_letters == nullptr) {
    set_fatal(absl::FailedPreconditionError("dead letter (" + letters.front().reason + ": " + letters.front().detail +
                                            ") but no dead-letter sink is configured"));
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

void IngestEngine::Impl::group_and_append(const BatchPtr& b, AsyncNode::gateway_type& gw) {
  gateway.store(&gw);
  gw.reserve_wait();        // released when the batch's last group completes
  b->outstanding.store(1);  // a guard until every group is handed out
  b->detached.assign(b->messages.size(), 0);

  std::vector<DeadLetter> bad;
  std::vector<const SourceMessage*> bad_messages;
  for (auto& r : b->rejected) {
    bad.push_back(letter_for(b->messages[r.index], r.reason, std::move(r.detail), std::move(r.stream)));
    bad_messages.push_back(&b->messages[r.index]);
  }
  for (const std::string& type : b->dashed_types) {
    if (warned_types.insert(type).second) {
      spdlog::warn("aggregate type '{}' contains '-': KurrentDB's $by_category projection will split its streams",
                   type);
    }
  }
  if (!write_dead_letters(bad, bad_messages)) b->failed.store(true);

  BatchGroups& grouped = b->grouped;
  const std::vector<StreamState*> states = load_streams(*b, grouped);

  std::vector<GroupPtr> groups;
  groups.reserve(grouped.streams.size());
  for (size_t k = 0; k < grouped.streams.size(); ++k) {
    auto& stream = grouped.streams[k];
    const size_t first = groups.size();
    cut_groups(b, std::move(stream.name), stream.members, rules, groups);
    for (size_t j = first; j < groups.size(); ++j) groups[j]->state = states[k];
  }
  // What only this stage reads goes now, not when the batch's last group is answered.
  b->grouped = BatchGroups();
  b->facts = {};
  b->rejected = {};
  b->dashed_types = {};
  b->outstanding.fetch_add(groups.size());
  const auto now = Clock::now();
  // Offered under one lock, then run: a group that runs at once is sent after the batch's other
  // groups are in the table, where a later group of its stream waits behind it as before.
  {
    Outbox box(*this);  // the batch's appends, sent together
    for (auto& step : table.offer(std::move(groups), now)) apply(std::move(step));
  }
  finish_one(b);  // the guard
}

std::vector<StreamState*> IngestEngine::Impl::load_streams(const Batch& b, const BatchGroups& grouped) {
  table.evict(options.stream_cache_bytes);
  std::vector<StreamState*> states;
  states.reserve(grouped.streams.size());
  std::vector<std::pair<std::string, StreamState*>> unknown;
  std::vector<const std::string*> batch_streams;
  std::vector<uint64_t> hashes;
  std::vector<const TopicPartition*> first_tps;
  batch_streams.reserve(grouped.streams.size());
  hashes.reserve(grouped.streams.size());
  first_tps.reserve(grouped.streams.size());
  for (const auto& s : grouped.streams) {
    batch_streams.push_back(&s.name);
    hashes.push_back(s.hash);
    first_tps.push_back(&b.messages[s.members.front()].tp);
  }
  const auto found = table.find_or_add(batch_streams, hashes, first_tps);
  for (size_t k = 0; k < grouped.streams.size(); ++k) {
    const auto& s = grouped.streams[k].name;
    const auto& members = grouped.streams[k].members;
    auto [st, fresh] = found[k];
    states.push_back(st);
    (fresh ? cache_misses : cache_hits).fetch_add(1, std::memory_order_relaxed);
    if (!fresh) continue;
    if (st->first_seen) {
      st->first_seen = false;
      streams_touched.fetch_add(1, std::memory_order_relaxed);
    }
    if (st->from_brief) {  // the state the cache dropped, resumed from its brief: no read
      st->from_brief = false;
      continue;
    }
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

bool IngestEngine::Impl::starts_at_first_version(const Batch& b, absl::Span<const uint32_t> members) {
  for (uint32_t i : members) {
    if (b.facts[i].revision == 0) return true;
  }
  return false;
}

std::vector<absl::StatusOr<StreamTail>> IngestEngine::Impl::read_tails(const std::vector<std::string>& names) {
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

void IngestEngine::Impl::notify_idle() {
  { std::lock_guard lock(idle_mu); }
  idle_cv.notify_all();
}

void IngestEngine::Impl::report_late_done(std::vector<SourceMessage>& late) {
  if (late.empty()) return;
  if (on_done) on_done(late);
  {
    std::lock_guard lock(idle_mu);
    messages_done.fetch_add(late.size(), std::memory_order_relaxed);
  }
  idle_cv.notify_all();
}

void IngestEngine::Impl::finish_one(const BatchPtr& b) {
  if (b->outstanding.fetch_sub(1) == 1) {
    auto* gw = gateway.load();
    gw->try_put(b);
    gw->release_wait();
  }
}

void IngestEngine::Impl::complete_batch(const BatchPtr& b) {
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

bool IngestEngine::wait_for_room(std::chrono::microseconds timeout) {
  // complete_batch changes the count under idle_mu before it notifies: no completion is missed.
  std::unique_lock lock(impl_->idle_mu);
  return impl_->idle_cv.wait_for(lock, timeout, [&] { return has_room(); });
}

bool IngestEngine::held_over_soft_limit() const {
  return impl_->table.held_bytes() > impl_->options.max_held_bytes / 2;
}

void IngestEngine::on_revoke(const std::vector<TopicPartition>& tps, bool closing) {
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
  if (size_t dropped = impl_->table.revoke(tps, /*forget_streams=*/drained && !closing); dropped > 0) {
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
  return impl_->idle_cv.wait_for(lock, timeout, [&] {
    return impl_->messages_done.load() >= n || impl_->has_fatal();
  }) && impl_->messages_done.load() >= n;
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
  s.pending_groups = t.pending_groups + i.slots.parked();  // the table's and those waiting for a slot
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
