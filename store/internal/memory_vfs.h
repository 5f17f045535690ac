// A SQLite VFS whose files live in this process's memory, with the WAL's shared-memory index
// in-process too: the memory mode's database, WAL and all, without a file system under it. Several
// connections of one process open the same file by name, so a memory-mode store keeps WAL mode's
// readers beside its writer (see store/README.md, "Memory mode").
//
// Owner: process-wide; registered with SQLite on first use and never unregistered. Threads: any;
// every file has its own locks (SQLite's lock levels, the WAL index's eight locks) kept here, and its
// bytes guarded by a reader/writer mutex. Lifecycle: a file exists from its first open with
// SQLITE_OPEN_CREATE until `memory_vfs_remove` (or SQLite's xDelete) drops its name; its bytes go
// with the last handle.
//
//   const char* vfs = memory_vfs();
//   sqlite3_open_v2("store-1/events.db", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
//   ...
//   sqlite3_close(db);
//   memory_vfs_remove("store-1/");  // the database, its WAL and anything else under that prefix
#pragma once

#include <cstdint>
#include <string_view>

namespace kingest::store::internal {

// The VFS's name, registered with SQLite on the first call (not as the default).
const char* memory_vfs();

// Drops every file whose name starts with `prefix`; their memory is freed once no handle holds them.
void memory_vfs_remove(std::string_view prefix);

// Bytes the VFS's files hold, all files together (their shared-memory indexes not counted).
uint64_t memory_vfs_bytes();

// Files the VFS knows by name.
size_t memory_vfs_files();

// The most the files may hold together; a write past it fails with SQLITE_FULL ("database or disk
// is full"), as a full tmpfs did. The default is half the machine's physical memory, as tmpfs's.
// Returns the previous limit (tests lower it and put it back).
uint64_t set_memory_vfs_limit(uint64_t bytes);

}  // namespace kingest::store::internal
