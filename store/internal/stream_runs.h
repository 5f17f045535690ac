// The run index: the events of one append are a "run" of consecutive positions and revisions, and
// only a run's first event is in the stream index. These statements and `visit_stream` find a
// stream's events through it (schema in sqlite_event_store.cc). Used by the writer and the readers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "store/internal/sqlite.h"

namespace kingest::store::internal {

// Statements that find a stream's events through the run index. The row statements select
// `position, revision` first, then whatever the caller needs.
struct RunStatements {
  Statement runs_down;  // runs of stream ?1 starting at or below revision ?2, newest first
  Statement runs_up;    // runs of stream ?1 starting at or above revision ?2, oldest first
  Statement rows_up;    // events at positions ?1..?2, ascending
  Statement rows_down;  // events at positions ?1..?2, descending
};

absl::Status prepare_run_statements(Connection& db, std::string_view columns, RunStatements& rs);

// One run of a stream: `count` events from revision `revision` at consecutive positions from
// `position`.
struct Run {
  int64_t revision = 0;
  int64_t count = 0;
  int64_t position = 0;
};

// Calls visit(rows) for each event of stream `stream_id` from revision `from` on (inclusive),
// upwards or downwards, at most `max_count` of them; `rows` is positioned on the event's row. The
// runs come from next_run(Run&) -> absl::StatusOr<bool> (false: no more), in the order they are
// visited: upwards from the run holding `from` (or the first after it), or downwards from the run
// holding `from` (or the last before it). visit returns false to stop early.
template <typename NextRun, typename Visit>
absl::Status visit_runs(RunStatements& rs, int64_t stream_id, int64_t from, bool forwards, uint64_t max_count,
                        NextRun&& next_run, Visit&& visit) {
  Statement& rows = forwards ? rs.rows_up : rs.rows_down;
  uint64_t left = max_count;
  Run run;
  while (left > 0) {
    absl::StatusOr<bool> more = next_run(run);
    if (!more.ok()) return more.status();
    if (!*more) break;
    const int64_t start = run.revision;
    const int64_t count = run.count;
    int64_t lo = forwards ? std::max(start, from) : start;
    int64_t hi = forwards ? start + count - 1 : std::min(start + count - 1, from);
    if (count <= 0 || lo > hi) continue;
    if (static_cast<uint64_t>(hi - lo) >= left) {
      if (forwards) {
        hi = lo + static_cast<int64_t>(left - 1);
      } else {
        lo = hi - static_cast<int64_t>(left - 1);
      }
    }
    rows.bind_int64(1, run.position + (lo - start));
    rows.bind_int64(2, run.position + (hi - start));
    ResetOnExit reset_rows(rows);
    int64_t expect = forwards ? lo : hi;
    int row_rc = SQLITE_DONE;
    while ((row_rc = rows.step()) == SQLITE_ROW) {
      if (rows.column_int64(1) != expect) {
        return absl::DataLossError(absl::StrCat("stream ", stream_id, ": event at position ", rows.column_int64(0),
                                                " has revision ", rows.column_int64(1), ", expected ", expect));
      }
      expect += forwards ? 1 : -1;
      --left;
      if (!visit(rows)) return absl::OkStatus();
    }
    if (row_rc != SQLITE_DONE) return step_error(rows, row_rc, "read stream");
    if (expect != (forwards ? hi + 1 : lo - 1)) {
      return absl::DataLossError(absl::StrCat("stream ", stream_id, ": events ", lo, "..", hi, " missing"));
    }
  }
  return absl::OkStatus();
}

// visit_runs over the run index in the database.
template <typename Visit>
absl::Status visit_stream(RunStatements& rs, int64_t stream_id, int64_t from, bool forwards, uint64_t max_count,
                          Visit&& visit) {
  if (max_count == 0) return absl::OkStatus();
  int64_t first_run = from;
  if (forwards) {
    // The run holding `from` starts at or below it.
    rs.runs_down.bind_int64(1, stream_id);
    rs.runs_down.bind_int64(2, from);
    ResetOnExit reset(rs.runs_down);
    const int rc = rs.runs_down.step();
    if (rc == SQLITE_ROW) {
      first_run = rs.runs_down.column_int64(0);
    } else if (rc != SQLITE_DONE) {
      return step_error(rs.runs_down, rc, "read stream runs");
    }
  }
  Statement& runs = forwards ? rs.runs_up : rs.runs_down;
  runs.bind_int64(1, stream_id);
  runs.bind_int64(2, first_run);
  ResetOnExit reset_runs(runs);
  return visit_runs(
      rs, stream_id, from, forwards, max_count,
      [&runs](Run& run) -> absl::StatusOr<bool> {
        const int rc = runs.step();
        if (rc == SQLITE_DONE) return false;
        if (rc != SQLITE_ROW) return step_error(runs, rc, "read stream runs");
        run = Run{runs.column_int64(0), runs.column_int64(1), runs.column_int64(2)};
        return true;
      },
      std::forward<Visit>(visit));
}

// Memory mode's run index is a stream's runs in memory, in revision order: the runs a visit of
// `max_count` events from `from` needs, appended to `out` in the order visit_runs takes them.
void select_runs(const Run* runs, size_t n, int64_t from, bool forwards, uint64_t max_count, std::vector<Run>& out);

// visit_runs over runs in memory, as select_runs chose them.
template <typename Visit>
absl::Status visit_selected(RunStatements& rs, int64_t stream_id, int64_t from, bool forwards, uint64_t max_count,
                            const std::vector<Run>& selected, Visit&& visit) {
  size_t next = 0;
  return visit_runs(
      rs, stream_id, from, forwards, max_count,
      [&](Run& run) -> absl::StatusOr<bool> {
        if (next == selected.size()) return false;
        run = selected[next++];
        return true;
      },
      std::forward<Visit>(visit));
}

}  // namespace kingest::store::internal
