// How one queued request is applied inside the writer's open transaction: the expected-revision
// rules, idempotent re-appends (against the stream's events or the recent-id cache), tombstones,
// multi-stream appends with their consistency checks, and the buffered row inserts.
#include <cstring>
#include <variant>

#include "absl/strings/str_cat.h"
#include "store/internal/sqlite_event_store.h"
#include "store/internal/stream_runs.h"

namespace kingest::store::internal {
namespace {

// Slots of the recent-id cache used for best-effort deduplication of `any` appends (KurrentDB
// keeps a similar cache). A power of two; 32 bytes each.
constexpr size_t kRecentIdSlots = 1 << 17;

AppendResult wrong_expected(const std::optional<uint64_t>& current, const ExpectedRevision& expected) {
  AppendResult r;
  r.status = AppendStatus::kWrongExpectedVersion;
  if (current) r.current_revision = StreamRevision{*current};
  r.message = absl::StrCat("wrong expected version: expected ", to_string(expected), ", current ",
                           current ? std::to_string(*current) : std::string("no_stream"));
  return r;
}

AppendResult stream_deleted(const std::string& stream) {
  AppendResult r;
  r.status = AppendStatus::kStreamDeleted;
  r.message = absl::StrCat("stream deleted: ", stream);
  return r;
}

std::string actual_text(int64_t actual) {
  if (actual == CheckViolation::kTombstoned) return "tombstoned";
  if (actual == CheckViolation::kNoStream) return "no_stream";
  return std::to_string(actual);
}

// The message of a failed multi-stream append: how many checks failed, and the first few.
std::string violations_message(const MultiAppend& request, const std::vector<CheckViolation>& violations) {
  constexpr size_t kShown = 3;
  std::string m = absl::StrCat("consistency violation: ", violations.size(),
                               violations.size() == 1 ? " check" : " checks", " failed (");
  for (size_t i = 0; i < violations.size() && i < kShown; ++i) {
    const CheckViolation& v = violations[i];
    absl::StrAppend(&m, i == 0 ? "" : "; ", std::string(request.stream_views[v.stream]), ": expected ",
                    to_string(v.expected), ", actual ", actual_text(v.actual));
  }
  absl::StrAppend(&m, violations.size() > kShown ? "; ...)" : ")");
  return m;
}

}  // namespace

size_t SqliteEventStore::recent_slot(const Uuid& id) {
  uint64_t a = 0;
  uint64_t b = 0;
  std::memcpy(&a, id.bytes().data(), 8);
  std::memcpy(&b, id.bytes().data() + 8, 8);
  // Ids may be name-based (v5) or random (v4); mix both halves and take the high bits.
  const uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL;
  return static_cast<size_t>(h >> 32) & (kRecentIdSlots - 1);
}

const SqliteEventStore::RecentId* SqliteEventStore::find_recent(const Uuid& id) const {
  if (recent_ids_.empty()) return nullptr;
  const RecentId& slot = recent_ids_[recent_slot(id)];
  return slot.stream_id != 0 && slot.id == id ? &slot : nullptr;
}

absl::StatusOr<SqliteEventStore::StreamState*> SqliteEventStore::lookup_stream(const std::string& name) {
  return lookup_stream(name, StreamMap<StreamState>::hash(name));
}

absl::StatusOr<SqliteEventStore::StreamState*> SqliteEventStore::lookup_stream(std::string_view name, uint64_t hash) {
  if (StreamState* cached = streams_.find(name, hash); cached != nullptr) return cached;
  if (streams_complete_) return streams_.insert(name, hash, StreamState{});
  StreamState s;
  find_stream_.bind_text(1, name);
  ResetOnExit reset(find_stream_);
  const int rc = find_stream_.step();
  if (rc == SQLITE_ROW) {
    s.id = find_stream_.column_int64(0);
    s.deleted = find_stream_.column_int64(1) != 0;
    if (!find_stream_.column_is_null(2)) s.last_revision = static_cast<uint64_t>(find_stream_.column_int64(2));
  } else if (rc != SQLITE_DONE) {
    return step_error(find_stream_, rc, "find stream");
  }
  return streams_.insert(name, hash, s);
}

absl::StatusOr<AppendResult> SqliteEventStore::apply_append(Op& op) {
  auto entry = lookup_stream(op.stream);
  if (!entry.ok()) return entry.status();
  StreamState& s = **entry;
  if (s.deleted) return stream_deleted(op.stream);
  const std::optional<uint64_t> current = s.last_revision;

  // Either append at the end, or (a retry?) compare the proposed ids with events from `compare_from`.
  std::optional<uint64_t> compare_from;
  if (const auto* n = std::get_if<StreamRevision>(&op.expected)) {
    if (!current || n->value() > *current) return wrong_expected(current, op.expected);
    if (n->value() < *current) compare_from = n->value() + 1;
  } else if (std::holds_alternative<ExpectNoStream>(op.expected)) {
    if (current) compare_from = 0;
  } else if (std::holds_alternative<ExpectStreamExists>(op.expected)) {
    if (!current) return wrong_expected(current, op.expected);
  } else if (current && !op.events.empty()) {  // any: best effort, from the recent-id cache
    if (const RecentId* seen = find_recent(op.events.front().id); seen != nullptr && seen->stream_id == s.id) {
      auto match = match_existing(s, seen->revision, op.events);
      if (!match.ok()) return match.status();
      if (*match) return std::move(**match);
    }
  }
  if (compare_from) {
    auto match = match_existing(s, *compare_from, op.events);
    if (!match.ok()) return match.status();
    if (*match) return std::move(**match);
    return wrong_expected(current, op.expected);
  }

  AppendResult r;
  r.status = AppendStatus::kSuccess;
  if (op.events.empty()) {
    if (current) {
      r.current_revision = StreamRevision{*current};
      auto pos = position_of(s, *current);
      if (!pos.ok()) return pos.status();
      r.position = *pos;
    }
    return r;
  }
  if (absl::Status st = insert_events(op.stream, s, op.events, r); !st.ok()) return st;
  return r;
}

absl::StatusOr<AppendResult> SqliteEventStore::apply_tombstone(const Op& op) {
  auto entry = lookup_stream(op.stream);
  if (!entry.ok()) return entry.status();
  StreamState& s = **entry;
  if (s.deleted) return stream_deleted(op.stream);
  const std::optional<uint64_t> current = s.last_revision;
  bool ok = true;
  if (const auto* n = std::get_if<StreamRevision>(&op.expected)) {
    ok = current && n->value() == *current;
  } else if (std::holds_alternative<ExpectNoStream>(op.expected)) {
    ok = !current;
  } else if (std::holds_alternative<ExpectStreamExists>(op.expected)) {
    ok = current.has_value();
  }
  if (!ok) return wrong_expected(current, op.expected);
  // The stream's row may be one this group created and has not inserted yet.
  if (absl::Status flushed = flush_stream_rows(); !flushed.ok()) return flushed;
  Statement& st = s.id == 0 ? insert_stream_ : delete_stream_;
  if (s.id == 0) {
    st.bind_int64(1, next_stream_id_);
    st.bind_text(2, op.stream);
    st.bind_int64(3, 1);
  } else {
    st.bind_int64(1, s.id);
  }
  if (absl::Status status = step_done(st, "delete stream"); !status.ok()) return status;
  if (s.id == 0) {
    s.id = next_stream_id_++;
    if (options_.in_memory) created_streams_.emplace_back(streams_.stored_name(op.stream), &s);
  }
  s.deleted = true;
  wrote_ = true;
  AppendResult r;
  r.status = AppendStatus::kSuccess;
  if (current) r.current_revision = StreamRevision{*current};
  r.position = static_cast<uint64_t>(next_position_ - 1);  // the log's end when the stream was deleted
  return r;
}

absl::StatusOr<std::optional<AppendResult>> SqliteEventStore::match_existing(const StreamState& s, uint64_t from,
                                                                             const std::vector<ProposedEvent>& events) {
  if (events.empty() || s.id == 0) return std::optional<AppendResult>();
  if (absl::Status flushed = flush_rows(); !flushed.ok()) return flushed;  // the events may be buffered
  size_t matched = 0;
  uint64_t last_position = 0;
  absl::Status st = visit_written(s, clamp_to_int64(from), events.size(), [&](const Statement& row) {
    const void* id = sqlite3_column_blob(row.get(), 2);
    const int n = sqlite3_column_bytes(row.get(), 2);
    const Uuid::Bytes& want = events[matched].id.bytes();
    if (n != static_cast<int>(want.size()) || std::memcmp(id, want.data(), want.size()) != 0) {
      return false;
    }
    last_position = static_cast<uint64_t>(row.column_int64(0));
    ++matched;
    return true;
  });
  if (!st.ok()) return st;
  if (matched != events.size()) return std::optional<AppendResult>();
  AppendResult r;
  r.status = AppendStatus::kSuccess;
  r.idempotent = true;
  r.current_revision = StreamRevision{from + events.size() - 1};
  r.position = last_position;
  return std::optional<AppendResult>(std::move(r));
}

absl::StatusOr<uint64_t> SqliteEventStore::position_of(const StreamState& s, uint64_t revision) {
  if (absl::Status flushed = flush_rows(); !flushed.ok()) return flushed;  // the event may be buffered
  uint64_t position = 0;
  absl::Status st = visit_written(s, clamp_to_int64(revision), 1, [&](const Statement& row) {
    position = static_cast<uint64_t>(row.column_int64(0));
    return false;
  });
  if (!st.ok()) return st;
  return position;
}

absl::Status SqliteEventStore::create_stream_row(std::string_view name, uint64_t hash, StreamState& s) {
  s.id = next_stream_id_++;
  pending_streams_[pending_stream_count_++] = {s.id, name};
  if (options_.in_memory) created_streams_.emplace_back(streams_.stored_name(name, hash), &s);
  return pending_stream_count_ == kMaxInsertRows ? flush_stream_rows() : absl::OkStatus();
}

absl::Status SqliteEventStore::insert_stream_rows(size_t n) {
  Statement& st = insert_streams_[n - 1];
  for (size_t row = 0; row < n; ++row) {
    const int b = static_cast<int>(row * 2);
    st.bind_int64(b + 1, pending_streams_[row].first);
    st.bind_text(b + 2, pending_streams_[row].second);
  }
  return step_done(st, "create stream");
}

absl::Status SqliteEventStore::insert_rows(const Row* rows, size_t n) {
  Statement& st = insert_events_[n - 1];
  for (size_t row = 0; row < n; ++row) {
    const Row& r = rows[row];
    const int b = static_cast<int>(row * kInsertColumns);
    st.bind_int64(b + 1, r.position);
    st.bind_int64(b + 2, r.stream_id);
    st.bind_int64(b + 3, r.revision);
    st.bind_blob(b + 4, r.id->bytes().data(), r.id->bytes().size());
    st.bind_text(b + 5, r.type);
    st.bind_text(b + 6, r.content_type);
    st.bind_blob(b + 7, r.data.data(), r.data.size());
    st.bind_blob(b + 8, r.metadata.data(), r.metadata.size());
    st.bind_int64(b + 9, group_created_);
    if (r.run != 0) {
      st.bind_int64(b + 10, r.run);
    } else {
      st.bind_null(b + 10);
    }
  }
  return step_done(st, "insert event");
}

absl::Status SqliteEventStore::insert_events(const std::string& name, StreamState& s,
                                             const std::vector<ProposedEvent>& events, AppendResult& result) {
  if (s.id == 0) {
    if (absl::Status status = create_stream_row(name, StreamMap<StreamState>::hash(name), s); !status.ok()) {
      return status;
    }
  }
  const uint64_t first_revision = s.last_revision ? *s.last_revision + 1 : 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const ProposedEvent& e = events[i];
    const Row row{next_position_ + static_cast<int64_t>(i),
                  s.id,
                  clamp_to_int64(first_revision + i),
                  i == 0 ? static_cast<int64_t>(events.size()) : 0,
                  &e.id,
                  e.type,
                  e.content_type,
                  e.data,
                  e.metadata};
    if (absl::Status status = add_row(row); !status.ok()) return status;
  }
  add_run(s, Run{clamp_to_int64(first_revision), static_cast<int64_t>(events.size()), next_position_});
  for (size_t i = 0; i < events.size(); ++i) remember_id(events[i].id, s.id, first_revision + i);
  next_position_ += static_cast<int64_t>(events.size());
  result.position = static_cast<uint64_t>(next_position_ - 1);
  s.last_revision = first_revision + events.size() - 1;
  result.current_revision = StreamRevision{*s.last_revision};
  wrote_ = true;
  return absl::OkStatus();
}

absl::StatusOr<MultiAppendResult> SqliteEventStore::apply_multi(MultiAppend& request) {
  // Owned records were given views of their own when the request was queued.
  const std::vector<RecordView>& records = request.record_views;
  multi_states_.clear();
  // On wide data most of a request's streams were last touched many requests ago: their slots,
  // entries and names are loaded some lookups ahead (StreamMap's fetch steps).
  // The names were hashed when the request was queued (or by its caller).
  const std::vector<std::string_view>& names = request.stream_views;
  const std::vector<uint64_t>& hashes = request.stream_hashes;
  const size_t n = names.size();
  for (size_t i = 0; i < n; ++i) {
    if (i + 12 < n) streams_.fetch_slot(hashes[i + 12]);
    if (i + 8 < n) streams_.fetch_entry(hashes[i + 8]);
    if (i + 4 < n) streams_.fetch_name(hashes[i + 4]);
    auto entry = lookup_stream(names[i], hashes[i]);
    if (!entry.ok()) return entry.status();
    multi_states_.push_back(*entry);
  }
  // The scratch fields count per stream (a name may appear under several indexes); cleared on
  // every way out, so the next request starts from zero.
  struct ClearScratch {
    std::vector<StreamState*>& states;
    ~ClearScratch() {
      for (StreamState* s : states) {
        s->multi_checked = false;
        s->multi_records = 0;
      }
    }
  } clear_scratch{multi_states_};
  for (const RecordView& w : records) ++multi_states_[w.stream]->multi_records;

  MultiAppendResult r;
  auto actual_of = [](const StreamState& s) -> int64_t {
    if (s.deleted) return CheckViolation::kTombstoned;
    return s.last_revision ? clamp_to_int64(*s.last_revision) : CheckViolation::kNoStream;
  };
  bool record_to_tombstoned = false;
  for (size_t i = 0; i < request.checks.size(); ++i) {
    const StreamCheck& check = request.checks[i];
    StreamState& s = *multi_states_[check.stream];
    s.multi_checked = true;
    const std::optional<uint64_t>& current = s.last_revision;
    bool ok = true;
    if (s.deleted) {
      // `any` checks nothing, but records to a tombstoned stream fail through their check.
      ok = std::holds_alternative<ExpectAny>(check.expected) && s.multi_records == 0;
      record_to_tombstoned |= s.multi_records != 0;
    } else if (const auto* n = std::get_if<StreamRevision>(&check.expected)) {
      ok = current && n->value() == *current;
    } else if (std::holds_alternative<ExpectNoStream>(check.expected)) {
      ok = !current;
    } else if (std::holds_alternative<ExpectStreamExists>(check.expected)) {
      ok = current.has_value();
    }
    if (!ok) {
      r.violations.push_back(CheckViolation{static_cast<uint32_t>(i), check.stream, check.expected, actual_of(s)});
    }
  }
  for (size_t i = 0; i < multi_states_.size(); ++i) {
    StreamState& s = *multi_states_[i];
    if (!s.deleted || s.multi_records == 0 || s.multi_checked) continue;
    record_to_tombstoned = true;
    s.multi_checked = true;  // one violation per stream, under its first index
    r.violations.push_back(
        CheckViolation{CheckViolation::kNoCheck, static_cast<uint32_t>(i), ExpectAny{}, CheckViolation::kTombstoned});
  }
  if (!r.violations.empty()) {
    r.status = record_to_tombstoned ? AppendStatus::kStreamDeleted : AppendStatus::kWrongExpectedVersion;
    r.message = violations_message(request, r.violations);
    return r;
  }

  // Write in the request's order. A stream's consecutive records form one run (consecutive
  // positions and revisions); interleaved streams make runs of their own.
  multi_runs_.clear();
  if (recent_ids_.empty()) recent_ids_.resize(kRecentIdSlots);
  for (size_t i = 0; i < records.size(); ++i) {
    // The recent ids' slots are 4 MiB of random writes, each a miss on wide data: fetched for
    // writing some records ahead.
    if (i + 8 < records.size()) __builtin_prefetch(&recent_ids_[recent_slot(records[i + 8].id)], 1);
    StreamState& s = *multi_states_[records[i].stream];
    if (s.id == 0) {
      const uint32_t k = records[i].stream;
      if (absl::Status status = create_stream_row(names[k], hashes[k], s); !status.ok()) {
        return status;
      }
    }
    int64_t run = 0;
    if (i == 0 || multi_states_[records[i - 1].stream] != &s) {
      size_t end = i + 1;
      while (end < records.size() && multi_states_[records[end].stream] == &s) ++end;
      run = static_cast<int64_t>(end - i);
    }
    const uint64_t revision = s.last_revision ? *s.last_revision + 1 : 0;
    if (run != 0 && options_.in_memory) {
      multi_runs_.emplace_back(&s, Run{clamp_to_int64(revision), run, next_position_ + static_cast<int64_t>(i)});
    }
    s.last_revision = revision;
    const RecordView& rec = records[i];
    remember_id(rec.id, s.id, revision);
    const Row row{next_position_ + static_cast<int64_t>(i),
                  s.id,
                  clamp_to_int64(revision),
                  run,
                  &rec.id,
                  rec.type,
                  rec.content_type,
                  rec.data,
                  rec.metadata};
    if (absl::Status status = add_row(row); !status.ok()) return status;
  }
  add_runs(multi_runs_);
  next_position_ += static_cast<int64_t>(records.size());
  if (!records.empty()) wrote_ = true;
  r.status = AppendStatus::kSuccess;
  r.position = records.empty() ? 0 : static_cast<uint64_t>(next_position_ - 1);
  // Every index with records of its own (a name under several indexes is reported under each).
  multi_index_written_.assign(multi_states_.size(), 0);
  for (const RecordView& w : records) multi_index_written_[w.stream] = 1;
  for (size_t i = 0; i < multi_states_.size(); ++i) {
    if (multi_index_written_[i] != 0) {
      r.revisions.emplace_back(static_cast<uint32_t>(i), StreamRevision{*multi_states_[i]->last_revision});
    }
  }
  return r;
}

void SqliteEventStore::remember_id(const Uuid& id, int64_t stream_id, uint64_t revision) {
  if (recent_ids_.empty()) recent_ids_.resize(kRecentIdSlots);
  recent_ids_[recent_slot(id)] = RecentId{id, stream_id, revision};
}

}  // namespace kingest::store::internal
