// Per stream: append slots, the group's classification against the stream state (gaps, written
// prefixes, conflicts), the append and its answer, and the gap re-checks. The rules themselves are
// revision_rules.h's; the scheduling StreamTable's.
#include <spdlog/spdlog.h>

#include "absl/container/inlined_vector.h"

#include "core/prefetch.h"
#include "pipeline/internal/engine_impl.h"

namespace kingest::pipeline {
namespace {

// An answer's group and its stream's state were last touched when the append was sent,
// milliseconds and thousands of other streams ago: on wide data the first read of each was a miss
// from memory, taken while the slots' and the table's mutexes were held. They are fetched ahead.
//
// The group served after this one: its stream's state (the group itself was fetched a turn
// earlier, as `after`), and the group after it.
void warm_groups(const GroupPtr& next, const GroupPtr* after) {
  if (next->state != nullptr) prefetch_bytes(next->state, sizeof(StreamState));
  if (after != nullptr) prefetch_bytes(after->get(), sizeof(Group));
}

}  // namespace

void IngestEngine::Impl::apply(StreamTable::Step&& step) {
  for (auto& b : step.release) finish_one(b);
  if (step.run) run_stream(std::move(step.run));
}

bool IngestEngine::Impl::take_slot_or_park(GroupPtr& g) { return slots.take_or_park(g); }

GroupPtr IngestEngine::Impl::give_slot() {
  return slots.give([this](GroupPtr g) { return table.unpark(std::move(g)); }, warm_groups);
}

void IngestEngine::Impl::run_stream(GroupPtr first, bool has_slot) {
  absl::InlinedVector<std::pair<GroupPtr, bool>, 2> work;  // in place: one append's follow-up is one or two
  work.emplace_back(std::move(first), has_slot);
  while (!work.empty()) {
    auto [g, slot] = std::move(work.back());
    work.pop_back();
    while (g) {
      if (!slot && !take_slot_or_park(g)) break;
      slot = false;
      Dispatched d = dispatch(*g);
      if (d == Dispatched::kSent || d == Dispatched::kReading) {
        (void)g.release();  // the sink's callback (or the read) owns the group and its slot now
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

Dispatched IngestEngine::Impl::dispatch(Group& g) {
  if (has_fatal()) return Dispatched::kFailed;
  // Events sent before (a stale state, the halves of a split, a written prefix to compare): the
  // ids and the next append need the payloads the last append took.
  if (!restore_payloads(g)) return Dispatched::kFailed;
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
  // The ids travel with the group, so that the answer's callback holds two pointers and fits in
  // std::function's own storage (no allocation per append).
  g.sent_ids.clear();
  AppendRequest req = take_append(g, st, rules, &g.sent_ids, &run_id);
  g.sent = true;
  appends.fetch_add(1, std::memory_order_relaxed);
  Group* raw = &g;
  callbacks_pending.fetch_add(1);
  // From here on the group belongs to the callback: nothing below may touch it.
  auto done = [this, raw](AppendOutcome out) {
    // Runs on the sink's thread: hand the follow-up work to the arena and return at once.
    if (timed_sink != nullptr) timed_sink->answered(raw->sent_at, out.answered_at);
    post_answer(Answer{raw, std::move(out)});
  };
  if (Outbox* box = Outbox::open_for(*this)) {
    box->add(std::move(req), std::move(done), raw);  // timed when the box hands it over
  } else if (timed_sink != nullptr) {
    g.sent_at = timed_sink->begin_append();
    timed_sink->append_untimed(std::move(req), std::move(done));
  } else {
    sink.append(std::move(req), std::move(done));
  }
  return Dispatched::kSent;
}

thread_local IngestEngine::Impl::Outbox* IngestEngine::Impl::Outbox::open_ = nullptr;
thread_local const IngestEngine::Impl* IngestEngine::Impl::Outbox::owner_ = nullptr;

IngestEngine::Impl::Outbox::Outbox(Impl& impl)
    : impl_(impl), outer_(owner_ == &impl ? open_ : nullptr), prev_open_(open_), prev_owner_(owner_) {
  if (outer_ != nullptr) return;
  open_ = this;
  owner_ = &impl;
}

IngestEngine::Impl::Outbox::~Outbox() {
  if (outer_ != nullptr) return;
  flush();
  open_ = prev_open_;
  owner_ = prev_owner_;
}

IngestEngine::Impl::Outbox* IngestEngine::Impl::Outbox::open_for(const Impl& impl) {
  return owner_ == &impl ? open_ : nullptr;
}

void IngestEngine::Impl::Outbox::add(AppendRequest req, Sink::AppendDone done, Group* group) {
  appends_.push_back(Sink::PendingAppend{std::move(req), std::move(done)});
  groups_.push_back(group);
  if (appends_.size() >= kOutboxFlush) flush();
}

void IngestEngine::Impl::Outbox::flush() {
  if (appends_.empty()) return;
  if (impl_.timed_sink != nullptr) {
    // Handed over together: one send time for all (the groups are not answered before this).
    const auto sent = impl_.timed_sink->begin_appends(appends_.size());
    for (Group* g : groups_) g->sent_at = sent;
    impl_.timed_sink->append_many_untimed(appends_);
  } else {
    impl_.sink.append_many(appends_);
  }
  appends_.clear();
  groups_.clear();
}

void IngestEngine::Impl::post_answer(Answer a) {
  bool start = false;
  {
    std::lock_guard lock(answers_mu);
    answers.push_back(std::move(a));
    start = !answers_task;
    answers_task = true;
  }
  if (start) arena.enqueue([this] { drain_answers(); });
}

void IngestEngine::Impl::drain_answers() {
  std::vector<Answer> taken;
  for (;;) {
    {
      std::lock_guard lock(answers_mu);
      if (answers.empty()) {
        answers_task = false;
        return;
      }
      taken.swap(answers);
    }
    {
      Outbox box(*this);  // the appends these answers start, sent together
      for (size_t i = 0; i < taken.size(); ++i) {
        // The groups two answers ahead, and the stream state of the next (its group is in cache).
        if (i + 2 < taken.size()) prefetch_bytes(taken[i + 2].group, sizeof(Group));
        if (i + 1 < taken.size() && taken[i + 1].group->state != nullptr) {
          prefetch_bytes(taken[i + 1].group->state, sizeof(StreamState));
        }
        Answer& a = taken[i];
        // Taken out of the group: handling the answer may send the group again, which sets new ids.
        const EventIds ids = std::move(a.group->sent_ids);
        on_append_done(GroupPtr(a.group), ids, std::move(a.out));
        callbacks_pending.fetch_sub(1);
      }
    }
    taken.clear();
  }
}

bool IngestEngine::Impl::restore_payloads(Group& g) {
  for (Item& it : g.items) {
    if (!it.payload_taken) continue;
    auto again = decode_one(it.message());
    auto* e = std::get_if<DomainEvent>(&again);
    if (e == nullptr) {
      set_fatal(absl::InternalError("stream " + g.stream + ": a message decoded before no longer decodes: " +
                                    std::get<DecodeError>(again).reason));
      return false;
    }
    it.mutable_event().payload = std::move(e->payload);
    it.payload_taken = false;
  }
  return true;
}

void IngestEngine::Impl::refresh(Group& g, StreamState& st) {
  g.refreshed = true;
  read_tail_into(g.stream, st);
}

bool IngestEngine::Impl::read_tail_into(const std::string& stream, StreamState& st) {
  stream_reads.fetch_add(1, std::memory_order_relaxed);
  auto tail = sink.read_tail(stream);
  if (!tail.ok()) {
    set_fatal(absl::UnavailableError("reading stream " + stream + ": " + std::string(tail.status().message())));
    return false;
  }
  StreamTable::apply_tail(st, *tail);
  return true;
}

std::optional<Dispatched> IngestEngine::Impl::skip_written_prefix(Group& g, StreamState& st) {
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
    const bool have_read = g.prefetched && g.prefetched_from == g.first_revision;
    if (!have_read) {
      // On the read pool: many streams' reads overlap, and the workers go on meanwhile.
      g.prefetched.reset();
      stream_reads.fetch_add(1, std::memory_order_relaxed);
      callbacks_pending.fetch_add(1);
      Group* raw = &g;
      readers.post([this, raw, from = g.first_revision, ahead] {
        raw->prefetched = sink.read_forwards(raw->stream, StreamRevision{from}, ahead);
        raw->prefetched_from = from;
        arena.enqueue([this, raw] {
          run_stream(GroupPtr(raw), /*has_slot=*/true);
          callbacks_pending.fetch_sub(1);
        });
      });
      return Dispatched::kReading;
    }
    auto read = std::move(*g.prefetched);
    g.prefetched.reset();
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
    report(g.items[k], mine ? MessageOutcome::Kind::kAppended : MessageOutcome::Kind::kDuplicate, proposed[k],
           g.stream);
  }
  if (v.conflict) return dead_letter_group(g, st, v.duplicates, reason::kRevisionConflict, v.detail);
  finish_items(g, v.duplicates);
  g.first_revision += v.duplicates;
  if (g.first_revision >= st.written_from + st.written_ids.size()) st.written_ids = {};  // past them
  return std::nullopt;
}

void IngestEngine::Impl::finish_items(Group& g, size_t n) {
  std::vector<SourceMessage> late;
  for (size_t k = 0; k < n; ++k) {
    if (g.items[k].own) late.push_back(std::move(g.items[k].own->message));
  }
  g.items.erase(g.items.begin(), g.items.begin() + long(n));
  report_late_done(late);
}

Dispatched IngestEngine::Impl::dead_letter_group(Group& g, StreamState& st, size_t from, const char* why,
                                                 const std::string& detail) {
  std::vector<DeadLetter> letters;
  std::vector<const SourceMessage*> messages;
  for (size_t k = from; k < g.items.size(); ++k) {
    const SourceMessage& m = g.items[k].message();
    letters.push_back(
        k == from ? letter_for(m, why, detail, g.stream)
                  : letter_for(m, reason::kAfterDeadLetter, "follows a dead-lettered event of this stream", g.stream));
    messages.push_back(&m);
  }
  st.dead = true;
  spdlog::warn("stream {}: {} ({})", g.stream, why, detail);
  return write_dead_letters(letters, messages) ? Dispatched::kDone : Dispatched::kFailed;
}

void IngestEngine::Impl::on_append_done(GroupPtr g, const EventIds& ids, AppendOutcome out) {
  GroupPtr unparked = give_slot();
  handle_answer(std::move(g), ids, std::move(out));
  if (unparked) run_stream(std::move(unparked), /*has_slot=*/true);
}

void IngestEngine::Impl::handle_answer(GroupPtr g, const EventIds& ids, AppendOutcome out) {
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
      for (size_t k = 0; k < ids.size(); ++k) report(g->items[k], kind, ids[k], g->stream);
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

GroupPtr IngestEngine::Impl::release_stream(GroupPtr g, bool ok) {
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
  auto step = table.release(*st);
  for (auto& b : step.release) finish_one(b);
  return std::move(step.run);
}

void IngestEngine::Impl::recheck(const std::vector<std::string>& names, bool give_up) {
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

void IngestEngine::Impl::check_gaps(bool give_up_all) {
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
      spdlog::warn(
          "events waiting for missing versions exceed {} bytes: the oldest gaps are dead-lettered "
          "revision-gap (raise --max-held-bytes, or key messages by aggregate id)",
          options.max_held_bytes);
    }
    recheck(oldest, true);
  }
  recheck(table.claim_gaps(Clock::now() - options.reorder_window), options.give_up_expired_gaps);
}

}  // namespace kingest::pipeline
