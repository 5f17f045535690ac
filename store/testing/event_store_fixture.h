// What the event store's tests share: events to append, revisions to compare, and the fixture that
// opens a store (on a file or in memory) in a fresh temporary directory and removes it afterwards.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/internal/memory_vfs.h"
#include "store/internal/sqlite_event_store.h"

namespace kingest::store::store_testing {

using namespace std::chrono_literals;

enum class Mode { kFile, kMemory };

inline std::string mode_name(const ::testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::kFile ? "File" : "Memory";
}

inline ProposedEvent make_event(const std::string& data, const std::string& type = "Happened") {
  ProposedEvent e;
  e.id = Uuid::v4();
  e.type = type;
  e.content_type = "application/json";
  e.data = data;
  e.metadata = R"({"m":1})";
  return e;
}

inline std::vector<ProposedEvent> make_events(int n, const std::string& prefix = "e") {
  std::vector<ProposedEvent> v;
  for (int i = 0; i < n; ++i) v.push_back(make_event(R"({"v":")" + prefix + std::to_string(i) + R"("})"));
  return v;
}

inline std::optional<uint64_t> rev(const AppendResult& r) {
  if (!r.current_revision) return std::nullopt;
  return r.current_revision->value();
}

inline std::vector<uint64_t> revisions(const ReadResult& r) {
  std::vector<uint64_t> out;
  for (const auto& e : r.events) out.push_back(e.revision.value());
  return out;
}

// Every EventStoreTest runs on a file and in memory (instantiated in event_store_append_test.cc).
class EventStoreTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ki-store-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = open_store(options());
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  StoreOptions options(std::chrono::microseconds window = 2000us, size_t max = 4096) const {
    StoreOptions o;
    o.in_memory = GetParam() == Mode::kMemory;
    o.path = (dir_ / "events.db").string();
    o.group_commit_window = window;
    o.group_commit_max = max;
    return o;
  }

  // Replaces the fixture's store (closing the old one first: both would use the same file).
  void reopen(const StoreOptions& o) {
    store_.reset();
    store_ = open_store(o);
  }

  static std::unique_ptr<EventStore> open_store(const StoreOptions& o) {
    auto s = EventStore::open(o);
    if (!s.ok()) {
      ADD_FAILURE() << s.status();
      return nullptr;
    }
    return std::move(*s);
  }

  // The store itself (the fixture's is closed first), for what only it offers: the test hook, its
  // memory-mode directory.
  std::unique_ptr<internal::SqliteEventStore> open_sqlite_store() {
    store_.reset();
    auto created = internal::SqliteEventStore::create(options());
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? std::move(*created) : nullptr;
  }

  // A connection of the test's own to `store`'s database: the file, or in memory mode the file in
  // its directory through the store's VFS (whose WAL lives in this process).
  sqlite3* open_raw(const internal::SqliteEventStore& store, int flags) const {
    const bool memory = GetParam() == Mode::kMemory;
    const std::string path = memory ? store.memory_dir() + "/events.db" : options().path;
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, memory ? internal::memory_vfs() : nullptr);
    EXPECT_EQ(rc, SQLITE_OK) << path;
    if (rc == SQLITE_OK) return raw;
    sqlite3_close(raw);
    return nullptr;
  }

  ReadResult read_stream(const std::string& stream, ReadFrom from = ReadFrom::start(), uint64_t max = 10000,
                         ReadDirection dir = ReadDirection::kForwards) {
    auto r = store_->read(stream, from, max, dir);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ReadResult{};
  }

  std::filesystem::path dir_;
  std::unique_ptr<EventStore> store_;
};

// Tests that need a database file: an in-memory store has nothing to reopen, and faults are
// injected through a second connection to the file.
// Instantiated in event_store_file_test.cc.
class FileEventStoreTest : public EventStoreTest {};

}  // namespace kingest::store::store_testing
