#include "store/internal/sqlite.h"

#include <cerrno>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace kingest::store::internal {
namespace {

// This Abseil build has its own string_view type.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::Status sqlite_status(int rc, std::string_view what, sqlite3* db, int os_error) {
  // The connection's message is only meaningful when it describes this code.
  const char* msg = (db != nullptr && sqlite3_errcode(db) == rc) ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string text = absl::StrCat(av(what), ": ", msg, " (sqlite ", rc);
  // SQLite says "disk I/O error" for every failed write: the system's error tells a full disk
  // (ENOSPC), a file size limit (EFBIG) and a failing device (EIO) apart.
  const int primary = rc & 0xff;
  if (os_error != 0 && (primary == SQLITE_IOERR || primary == SQLITE_FULL)) {
    absl::StrAppend(&text, ", errno ", os_error, ": ", std::error_code(os_error, std::generic_category()).message());
  }
  absl::StrAppend(&text, ")");
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(text);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_FULL:
      return absl::FailedPreconditionError(text);
    default:
      return absl::InternalError(text);
  }
}

absl::StatusOr<Connection> Connection::open(const std::string& path, int flags, const char* vfs) {
  Connection c;
  const int rc = sqlite3_open_v2(path.c_str(), &c.db_, flags | SQLITE_OPEN_NOMUTEX, vfs);
  if (rc != SQLITE_OK) return sqlite_status(rc, absl::StrCat("open ", path), c.db_);
  sqlite3_extended_result_codes(c.db_, 1);
  return c;
}

absl::Status Connection::exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string text = absl::StrCat(sql, ": ", err != nullptr ? err : sqlite3_errstr(rc));
  sqlite3_free(err);
  return sqlite_status(rc, text, nullptr);
}

absl::StatusOr<Statement> Connection::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt,
                                    nullptr);
  if (rc != SQLITE_OK) return error(rc, absl::StrCat("prepare ", av(sql)));
  return Statement(stmt);
}

absl::StatusOr<std::string> Connection::query_text(std::string_view sql) {
  auto st = prepare(sql);
  if (!st.ok()) return st.status();
  const int rc = st->step();
  if (rc == SQLITE_ROW) return st->column_string(0);
  if (rc == SQLITE_DONE) return std::string();
  return error(rc, sql);
}

absl::StatusOr<int64_t> Connection::query_int64(std::string_view sql) {
  auto st = prepare(sql);
  if (!st.ok()) return st.status();
  const int rc = st->step();
  if (rc == SQLITE_ROW) return st->column_int64(0);
  if (rc == SQLITE_DONE) return int64_t{0};
  return error(rc, sql);
}

void Connection::close() {
  if (db_ != nullptr) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
}

absl::Status step_done(Statement& st, std::string_view what) {
  // sqlite3_system_errno() does not keep a failed WAL write's errno (SQLite 3.40 reads errno again
  // after the rollback); errno right after the step still holds it.
  errno = 0;
  const int rc = st.step();
  const int os_error = errno;
  absl::Status status =
      rc == SQLITE_DONE ? absl::OkStatus() : sqlite_status(rc, what, sqlite3_db_handle(st.get()), os_error);
  st.reset();
  return status;
}

absl::Status step_error(Statement& st, int rc, std::string_view what) {
  return sqlite_status(rc, what, sqlite3_db_handle(st.get()));
}

}  // namespace kingest::store::internal
