// The run index: the events of one append are a "run" of consecutive positions and revisions, and
// only a run's first event is in the stream index. These statements and `visit_stream` find a
// stream's events through it (schema in sqlite_event_store.cc). Used by the writer and the readers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
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

// Calls visit(rows) for each event of stream `stream_id` from revision `from` on (inclusive),
// upwards or downwards, at most `max_count` of them; `rows` is positioned on the event's row.
// visit returns false to stop early.
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
  Statement& rows = forwards ? rs.rows_up : rs.rows_down;
  runs.bind_int64(1, stream_id);
  runs.bind_int64(2, first_run);
  ResetOnExit reset_runs(runs);
  uint64_t left = max_count;
  int rc = SQLITE_DONE;
  while (left > 0 && (rc = runs.step()) == SQLITE_ROW) {
    const int64_t start = runs.column_int64(0);
    const int64_t count = runs.column_int64(1);
    const int64_t position = runs.column_int64(2);
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
    rows.bind_int64(1, position + (lo - start));
    rows.bind_int64(2, position + (hi - start));
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
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return step_error(runs, rc, "read stream runs");
  return absl::OkStatus();
}

}  // namespace kingest::store::internal
