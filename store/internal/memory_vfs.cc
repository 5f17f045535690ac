#include "store/internal/memory_vfs.h"

#include <sqlite3.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

namespace kingest::store::internal {
namespace {

constexpr const char* kVfsName = "kingest-memory";
// Files grow by chunks, never moved once allocated, so a write is one copy and a growing WAL copies
// nothing. A chunk is one huge page where the system allows it, its memory populated when mapped:
// first touches one page at a time would fault once per 4 KiB.
constexpr uint64_t kChunkBytes = uint64_t{2} << 20;

// One chunk of a file: anonymous memory mapped on its own, returned to the system when dropped.
class Chunk {
 public:
  // nullptr if the system has no memory for it.
  static std::unique_ptr<Chunk> map() {
    // Mapped with a chunk's worth to spare, then trimmed to a chunk-aligned chunk (a huge page).
    void* raw = ::mmap(nullptr, 2 * kChunkBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    auto* base = static_cast<char*>(raw);
    const uint64_t lead = (kChunkBytes - reinterpret_cast<uintptr_t>(base) % kChunkBytes) % kChunkBytes;
    char* p = base + lead;
    if (lead > 0) ::munmap(base, lead);
    ::munmap(p + kChunkBytes, kChunkBytes - lead);
    (void)::madvise(p, kChunkBytes, MADV_HUGEPAGE);
    // Older kernels have no MADV_POPULATE_WRITE: the pages then come on first touch.
    (void)::madvise(p, kChunkBytes, kPopulateWrite);
    return std::unique_ptr<Chunk>(new Chunk(p));
  }
  ~Chunk() { ::munmap(bytes_, kChunkBytes); }
  Chunk(const Chunk&) = delete;
  Chunk& operator=(const Chunk&) = delete;
  [[nodiscard]] char* get() const { return bytes_; }

 private:
  static constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE (Linux 5.14), absent from older headers
  explicit Chunk(char* bytes) : bytes_(bytes) {}
  char* bytes_;
};

uint64_t half_physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 2;
}

std::atomic<uint64_t> g_bytes{0};
std::atomic<uint64_t> g_limit{half_physical_memory()};

struct MemFile {
  std::shared_mutex data_mu;
  std::vector<std::unique_ptr<Chunk>> chunks;  // under data_mu; bytes [0, size) are the file's
  uint64_t size = 0;                           // under data_mu
  uint64_t dirty_to = 0;  // under data_mu: the chunks' bytes from here on were never written (zeros)

  MemFile() = default;
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  ~MemFile() { g_bytes.fetch_sub(chunks.size() * kChunkBytes); }

  // Grows the file to `end` bytes if it is shorter, the new bytes zeroed; false if that would pass
  // the limit or the system has no memory.
  bool grow(uint64_t end) {
    if (end <= size) return true;
    const uint64_t need = (end + kChunkBytes - 1) / kChunkBytes;
    if (need > chunks.size()) {
      const uint64_t extra = (need - chunks.size()) * kChunkBytes;
      if (g_bytes.fetch_add(extra) + extra > g_limit.load()) {
        g_bytes.fetch_sub(extra);
        return false;
      }
      const size_t before = chunks.size();
      while (chunks.size() < need) {
        auto chunk = Chunk::map();
        if (chunk == nullptr) {
          chunks.resize(before);
          g_bytes.fetch_sub(extra);
          return false;
        }
        chunks.push_back(std::move(chunk));
      }
    }
    // A fresh mapping reads as zeros; a truncation leaves old bytes past `size`, up to `dirty_to`.
    for (uint64_t at = size; at < std::min(end, dirty_to);) {
      const uint64_t n = std::min(std::min(end, dirty_to) - at, kChunkBytes - at % kChunkBytes);
      std::memset(chunks[at / kChunkBytes]->get() + at % kChunkBytes, 0, n);
      at += n;
    }
    size = end;
    dirty_to = std::max(dirty_to, end);
    return true;
  }
};

struct Registry {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<MemFile>, std::less<>> files;
};

Registry& registry() {
  static auto* r = new Registry;  // outlives every static destructor that might close a database
  return *r;
}

struct HandleState {
  std::shared_ptr<MemFile> file;
  std::string name;
  bool delete_on_close = false;
};

// What SQLite allocates (szOsFile bytes) and hands to every method.
struct Handle {
  sqlite3_file base;
  HandleState* state;
};

HandleState& state_of(sqlite3_file* f) { return *reinterpret_cast<Handle*>(f)->state; }
MemFile& file_of(sqlite3_file* f) { return *state_of(f).file; }

// --- file methods -------------------------------------------------------------------------------

int mem_close(sqlite3_file* f) {
  HandleState* st = &state_of(f);
  if (st->delete_on_close) {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    auto it = r.files.find(st->name);
    if (it != r.files.end() && it->second == st->file) r.files.erase(it);
  }
  delete st;
  reinterpret_cast<Handle*>(f)->state = nullptr;
  return SQLITE_OK;
}

int mem_read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  MemFile& file = file_of(f);
  auto* dst = static_cast<char*>(out);
  std::shared_lock lock(file.data_mu);
  const uint64_t off = static_cast<uint64_t>(offset);
  const uint64_t want = static_cast<uint64_t>(amount);
  const uint64_t have = off >= file.size ? 0 : std::min(want, file.size - off);
  for (uint64_t done = 0; done < have;) {
    const uint64_t at = off + done;
    const uint64_t n = std::min(have - done, kChunkBytes - at % kChunkBytes);
    std::memcpy(dst + done, file.chunks[at / kChunkBytes]->get() + at % kChunkBytes, n);
    done += n;
  }
  if (have < want) {
    std::memset(dst + have, 0, want - have);  // SQLite expects the missing part zeroed
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

int mem_write(sqlite3_file* f, const void* in, int amount, sqlite3_int64 offset) {
  MemFile& file = file_of(f);
  const auto* src = static_cast<const char*>(in);
  const uint64_t off = static_cast<uint64_t>(offset);
  const uint64_t n_total = static_cast<uint64_t>(amount);
  std::unique_lock lock(file.data_mu);
  if (!file.grow(off + n_total)) return SQLITE_FULL;
  for (uint64_t done = 0; done < n_total;) {
    const uint64_t at = off + done;
    const uint64_t n = std::min(n_total - done, kChunkBytes - at % kChunkBytes);
    std::memcpy(file.chunks[at / kChunkBytes]->get() + at % kChunkBytes, src + done, n);
    done += n;
  }
  return SQLITE_OK;
}

int mem_truncate(sqlite3_file* f, sqlite3_int64 size) {
  MemFile& file = file_of(f);
  const uint64_t to = static_cast<uint64_t>(size);
  std::unique_lock lock(file.data_mu);
  if (to >= file.size) return file.grow(to) ? SQLITE_OK : SQLITE_FULL;
  const uint64_t keep = (to + kChunkBytes - 1) / kChunkBytes;
  if (keep < file.chunks.size()) {
    g_bytes.fetch_sub((file.chunks.size() - keep) * kChunkBytes);
    file.chunks.resize(keep);
    file.dirty_to = std::min(file.dirty_to, keep * kChunkBytes);
  }
  file.size = to;  // the bytes past it are zeroed if the file grows over them again
  return SQLITE_OK;
}

int mem_sync(sqlite3_file*, int) { return SQLITE_OK; }

int mem_file_size(sqlite3_file* f, sqlite3_int64* size) {
  MemFile& file = file_of(f);
  std::shared_lock lock(file.data_mu);
  *size = static_cast<sqlite3_int64>(file.size);
  return SQLITE_OK;
}

// SQLite locks the database, never its WAL: the WAL's lock methods have nothing to keep.
int mem_lock(sqlite3_file*, int) { return SQLITE_OK; }
int mem_unlock(sqlite3_file*, int) { return SQLITE_OK; }
int mem_check_reserved_lock(sqlite3_file*, int* out) {
  *out = 0;
  return SQLITE_OK;
}

int mem_file_control(sqlite3_file*, int, void*) { return SQLITE_NOTFOUND; }
int mem_sector_size(sqlite3_file*) { return 4096; }
int mem_device_characteristics(sqlite3_file*) {
  return SQLITE_IOCAP_POWERSAFE_OVERWRITE | SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_SEQUENTIAL;
}

const sqlite3_io_methods kIoMethods = {
    1,  // iVersion: a WAL needs no shared memory and no memory-mapped reads
    mem_close,
    mem_read,
    mem_write,
    mem_truncate,
    mem_sync,
    mem_file_size,
    mem_lock,
    mem_unlock,
    mem_check_reserved_lock,
    mem_file_control,
    mem_sector_size,
    mem_device_characteristics,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

// --- the VFS ------------------------------------------------------------------------------------

sqlite3_vfs* base_vfs() {
  static sqlite3_vfs* base = sqlite3_vfs_find(nullptr);
  return base;
}

bool is_wal(std::string_view name) { return name.size() > 4 && name.substr(name.size() - 4) == "-wal"; }

int vfs_open(sqlite3_vfs*, const char* name, sqlite3_file* f, int flags, int* out_flags) {
  // The database (with its shared-memory index) and any other file: the default VFS's.
  if ((flags & SQLITE_OPEN_WAL) == 0) return base_vfs()->xOpen(base_vfs(), name, f, flags, out_flags);
  auto* h = reinterpret_cast<Handle*>(f);
  h->base.pMethods = nullptr;  // until opened, SQLite does not call xClose
  h->state = nullptr;
  std::string path(name);  // SQLite names every WAL
  std::shared_ptr<MemFile> file;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    auto it = r.files.find(path);
    if (it != r.files.end()) {
      file = it->second;
    } else {
      if ((flags & SQLITE_OPEN_CREATE) == 0) return SQLITE_CANTOPEN;
      file = std::make_shared<MemFile>();
      r.files.emplace(path, file);
    }
  }
  auto* st = new HandleState;
  st->file = std::move(file);
  st->name = std::move(path);
  st->delete_on_close = (flags & SQLITE_OPEN_DELETEONCLOSE) != 0;
  h->state = st;
  h->base.pMethods = &kIoMethods;
  if (out_flags != nullptr) *out_flags = flags;
  return SQLITE_OK;
}

int vfs_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  if (!is_wal(name)) return base_vfs()->xDelete(base_vfs(), name, sync_dir);
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  r.files.erase(std::string(name));
  return SQLITE_OK;
}

int vfs_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  if (!is_wal(name)) return base_vfs()->xAccess(base_vfs(), name, flags, out);
  std::shared_ptr<MemFile> file;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    auto it = r.files.find(std::string_view(name));
    if (it != r.files.end()) file = it->second;
  }
  if (file == nullptr) {
    *out = 0;
  } else if (flags == SQLITE_ACCESS_EXISTS) {
    // As the unix VFS: an empty file counts as absent (SQLite probes for a WAL this way).
    std::shared_lock lock(file->data_mu);
    *out = file->size > 0 ? 1 : 0;
  } else {
    *out = 1;
  }
  return SQLITE_OK;
}

int vfs_full_pathname(sqlite3_vfs*, const char* name, int n_out, char* out) {
  return base_vfs()->xFullPathname(base_vfs(), name, n_out, out);
}

void* vfs_dl_open(sqlite3_vfs*, const char* path) { return base_vfs()->xDlOpen(base_vfs(), path); }
void vfs_dl_error(sqlite3_vfs*, int n, char* out) { base_vfs()->xDlError(base_vfs(), n, out); }
void (*vfs_dl_sym(sqlite3_vfs*, void* lib, const char* sym))() { return base_vfs()->xDlSym(base_vfs(), lib, sym); }
void vfs_dl_close(sqlite3_vfs*, void* lib) { base_vfs()->xDlClose(base_vfs(), lib); }
int vfs_randomness(sqlite3_vfs*, int n, char* out) { return base_vfs()->xRandomness(base_vfs(), n, out); }
int vfs_sleep(sqlite3_vfs*, int us) { return base_vfs()->xSleep(base_vfs(), us); }
int vfs_current_time(sqlite3_vfs*, double* t) { return base_vfs()->xCurrentTime(base_vfs(), t); }
int vfs_last_error(sqlite3_vfs*, int n, char* out) { return base_vfs()->xGetLastError(base_vfs(), n, out); }
int vfs_current_time_int64(sqlite3_vfs*, sqlite3_int64* t) { return base_vfs()->xCurrentTimeInt64(base_vfs(), t); }

sqlite3_vfs make_vfs() {
  sqlite3_vfs v{};
  v.iVersion = 2;
  v.szOsFile = std::max(static_cast<int>(sizeof(Handle)), base_vfs()->szOsFile);
  v.mxPathname = base_vfs()->mxPathname;
  v.zName = kVfsName;
  v.xOpen = vfs_open;
  v.xDelete = vfs_delete;
  v.xAccess = vfs_access;
  v.xFullPathname = vfs_full_pathname;
  v.xDlOpen = vfs_dl_open;
  v.xDlError = vfs_dl_error;
  v.xDlSym = vfs_dl_sym;
  v.xDlClose = vfs_dl_close;
  v.xRandomness = vfs_randomness;
  v.xSleep = vfs_sleep;
  v.xCurrentTime = vfs_current_time;
  v.xGetLastError = vfs_last_error;
  v.xCurrentTimeInt64 = vfs_current_time_int64;
  return v;
}

}  // namespace

const char* memory_vfs() {
  static sqlite3_vfs vfs = make_vfs();
  static const bool registered = [] {
    (void)base_vfs();
    return sqlite3_vfs_register(&vfs, 0) == SQLITE_OK;
  }();
  return registered ? kVfsName : nullptr;
}

void memory_vfs_remove(std::string_view prefix) {
  std::vector<std::shared_ptr<MemFile>> dropped;  // freed outside the registry's lock
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (auto it = r.files.lower_bound(prefix); it != r.files.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
    dropped.push_back(std::move(it->second));
    it = r.files.erase(it);
  }
}

uint64_t memory_vfs_bytes() { return g_bytes.load(); }

size_t memory_vfs_files() {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  return r.files.size();
}

uint64_t set_memory_vfs_limit(uint64_t bytes) { return g_limit.exchange(bytes); }

}  // namespace kingest::store::internal
