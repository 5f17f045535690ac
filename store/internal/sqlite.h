// Thin RAII wrappers over the SQLite C API: a connection and a reusable prepared statement.
//
// Owner: the store implementation. Threads: a `Connection` and its `Statement`s are used by one
// thread at a time (the owner serialises access); they are opened with SQLITE_OPEN_NOMUTEX.
//
//   auto db = Connection::open("/tmp/x.db", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE).value();
//   auto st = db.prepare("SELECT name FROM streams WHERE id = ?1").value();
//   st.bind_int64(1, 7);
//   while (st.step() == SQLITE_ROW) use(st.column_string(0));
//   st.reset();
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kingest::store::internal {

// Maps a SQLite result code to a Status code chosen by the retry rule (busy → Unavailable,
// unusable file → FailedPrecondition, anything else → Internal).
// `os_error`: errno as the failed call left it (0 when unknown), named in the text of an I/O error.
absl::Status sqlite_status(int rc, std::string_view what, sqlite3* db, int os_error = 0);

class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(Statement&& o) noexcept : stmt_(o.stmt_), bind_rc_(o.bind_rc_) { o.stmt_ = nullptr; }
  Statement& operator=(Statement&& o) noexcept {
    if (this != &o) {
      sqlite3_finalize(stmt_);
      stmt_ = o.stmt_;
      bind_rc_ = o.bind_rc_;
      o.stmt_ = nullptr;
    }
    return *this;
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Bound text and blobs are not copied (SQLITE_STATIC): they must outlive the next step().
  void bind_int64(int i, int64_t v) { note(sqlite3_bind_int64(stmt_, i, v)); }
  void bind_null(int i) { note(sqlite3_bind_null(stmt_, i)); }
  void bind_text(int i, std::string_view s) {
    note(sqlite3_bind_text64(stmt_, i, s.data() == nullptr ? "" : s.data(), s.size(), SQLITE_STATIC,
                             SQLITE_UTF8));
  }
  void bind_blob(int i, const void* p, size_t n) {
    // A null pointer would bind NULL; a zero-length blob must stay a blob.
    static constexpr char kEmpty = 0;
    note(sqlite3_bind_blob64(stmt_, i, p == nullptr ? &kEmpty : p, n, SQLITE_STATIC));
  }

  // SQLITE_ROW, SQLITE_DONE or an error code (a failed bind since the last reset is reported here).
  int step() { return bind_rc_ != SQLITE_OK ? bind_rc_ : sqlite3_step(stmt_); }
  void reset() {
    sqlite3_reset(stmt_);
    bind_rc_ = SQLITE_OK;
  }

  [[nodiscard]] bool column_is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  [[nodiscard]] int64_t column_int64(int i) const { return sqlite3_column_int64(stmt_, i); }
  [[nodiscard]] std::string column_string(int i) const {
    const void* p = sqlite3_column_blob(stmt_, i);
    const int n = sqlite3_column_bytes(stmt_, i);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), static_cast<size_t>(n));
  }
  [[nodiscard]] sqlite3_stmt* get() const { return stmt_; }

 private:
  void note(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }
  sqlite3_stmt* stmt_ = nullptr;
  int bind_rc_ = SQLITE_OK;
};

// Resets a statement when leaving a scope, so an early return never leaves it mid-step (an active
// statement would keep a read transaction open).
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& s) : s_(s) {}
  ~ResetOnExit() { s_.reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& s_;
};

class Connection {
 public:
  Connection() = default;
  ~Connection() { close(); }
  Connection(Connection&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Connection& operator=(Connection&& o) noexcept {
    if (this != &o) {
      close();
      db_ = o.db_;
      o.db_ = nullptr;
    }
    return *this;
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // `vfs`: a registered VFS's name (nullptr: the default one).
  static absl::StatusOr<Connection> open(const std::string& path, int flags, const char* vfs = nullptr);

  // Runs one or more statements that return no rows worth keeping.
  absl::Status exec(const char* sql);
  // Prepared for reuse (SQLITE_PREPARE_PERSISTENT).
  absl::StatusOr<Statement> prepare(std::string_view sql);
  // Runs a statement that returns one text value (e.g. `PRAGMA journal_mode=WAL`).
  absl::StatusOr<std::string> query_text(std::string_view sql);
  absl::StatusOr<int64_t> query_int64(std::string_view sql);

  absl::Status error(int rc, std::string_view what) const { return sqlite_status(rc, what, db_); }
  [[nodiscard]] sqlite3* get() const { return db_; }
  void close();

 private:
  sqlite3* db_ = nullptr;
};

// Steps a statement that returns no rows, then resets it.
absl::Status step_done(Statement& st, std::string_view what);
// The status of a failed step of `st`.
absl::Status step_error(Statement& st, int rc, std::string_view what);

// SQLite's integers are signed: an unsigned bound past INT64_MAX means "no bound".
inline int64_t clamp_to_int64(uint64_t v) {
  return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                          : static_cast<int64_t>(v);
}

}  // namespace kingest::store::internal
