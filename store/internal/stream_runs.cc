#include "store/internal/stream_runs.h"

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

}  // namespace kingest::store::internal
