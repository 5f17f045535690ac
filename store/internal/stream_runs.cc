#include "store/internal/stream_runs.h"

#include <algorithm>
#include <string>
#include <utility>

namespace kingest::store::internal {

absl::Status prepare_run_statements(Connection& db, std::string_view columns, RunStatements& rs) {
  const std::string rows = absl::StrCat("SELECT ", absl::string_view(columns.data(), columns.size()),
                                        " FROM events e WHERE e.position BETWEEN ?1 AND ?2 ORDER BY e.position ");
  const std::pair<Statement*, std::string> statements[] = {
      {&rs.runs_down,
       "SELECT revision, run, position FROM events WHERE stream_id = ?1 AND run IS NOT NULL AND revision <= ?2 "
       "ORDER BY revision DESC"},
      {&rs.runs_up,
       "SELECT revision, run, position FROM events WHERE stream_id = ?1 AND run IS NOT NULL AND revision >= ?2 "
       "ORDER BY revision ASC"},
      {&rs.rows_up, rows + "ASC"},
      {&rs.rows_down, rows + "DESC"},
  };
  for (const auto& [target, sql] : statements) {
    auto st = db.prepare(sql);
    if (!st.ok()) return st.status();
    *target = std::move(*st);
  }
  return absl::OkStatus();
}

void select_runs(const Run* runs, size_t n, int64_t from, bool forwards, uint64_t max_count, std::vector<Run>& out) {
  if (n == 0 || max_count == 0) return;
  // The first run starting above `from`; the one before it holds `from` (or ends below it).
  const Run* above = std::upper_bound(runs, runs + n, from, [](int64_t r, const Run& run) { return r < run.revision; });
  uint64_t covered = 0;
  if (forwards) {
    for (const Run* r = above == runs ? runs : above - 1; r != runs + n && covered < max_count; ++r) {
      const int64_t lo = std::max(r->revision, from);
      const int64_t hi = r->revision + r->count - 1;
      if (hi < lo) continue;
      covered += static_cast<uint64_t>(hi - lo) + 1;
      out.push_back(*r);
    }
  } else {
    for (const Run* r = above; r != runs && covered < max_count;) {
      --r;
      const int64_t hi = std::min(r->revision + r->count - 1, from);
      if (hi < r->revision) continue;
      covered += static_cast<uint64_t>(hi - r->revision) + 1;
      out.push_back(*r);
    }
  }
}

}  // namespace kingest::store::internal
