// A SQLite VFS that keeps WAL files in this process's memory and leaves every other file (the
// database, its shared-memory index, journals) to SQLite's default VFS: memory mode's commits
// write their frames, and the checkpointer and readers read them, without a system call each,
// while the database itself stays a file on tmpfs (written whole pages at a time, which tmpfs
// takes without zeroing them first). Several connections of one process open the same WAL by
// name, so a memory-mode store keeps WAL mode's readers beside its writer (see store/README.md,
// "Memory mode").
//
// Owner: process-wide; registered with SQLite on first use and never unregistered. Threads: any;
// every in-memory file's bytes are guarded by a reader/writer mutex of its own. Lifecycle: a WAL
// exists from its first open until `memory_vfs_remove` (or SQLite's xDelete) drops its name; its
// bytes go with the last handle. Nothing of it outlives the process, so such a database is only
// good for as long as the process runs.
//
//   const char* vfs = memory_vfs();
//   sqlite3_open_v2("/dev/shm/dir/events.db", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
//   ...  // PRAGMA journal_mode=WAL: "/dev/shm/dir/events.db-wal" is in memory
//   sqlite3_close(db);
//   memory_vfs_remove("/dev/shm/dir/");  // the in-memory files under that prefix
#pragma once

#include <cstdint>
#include <string_view>

namespace kingest::store::internal {

// The VFS's name, registered with SQLite on the first call (not as the default).
const char* memory_vfs();

// Drops every in-memory file whose name starts with `prefix`; their memory is freed once no handle
// holds them.
void memory_vfs_remove(std::string_view prefix);

// Bytes the in-memory files hold, all together.
uint64_t memory_vfs_bytes();

// In-memory files the VFS knows by name.
size_t memory_vfs_files();

// The most the in-memory files may hold together; a write past it fails with SQLITE_FULL
// ("database or disk is full"), as on a full tmpfs. The default is half the machine's physical
// memory, as tmpfs's. Returns the previous limit (tests lower it and put it back).
uint64_t set_memory_vfs_limit(uint64_t bytes);

}  // namespace kingest::store::internal
