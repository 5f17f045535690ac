// The stream cache's briefs (stream_table.h): a dropped stream's next revision and last event id,
// by its name's 64-bit hash, 32 bytes each. An open-addressing table with linear probing whose
// erasures shift the entries behind them back (no tombstones), so a full table that keeps
// churning (streams dropped, met again, dropped again) never has to grow for erased slots. It
// doubles when it would be more than 7/8 full, up to a limit its owner may give (any number of
// slots, not only a power of two: a key's home slot is its hash scaled to the capacity);
// `bytes()` is what it holds in memory, free slots included. The stream table keeps its briefs in
// a `ShardedBriefTable` (below): sixteen such tables, so that no growth copies the whole.
//
// Threads: one owner (the stream table's mutex).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include <sys/mman.h>

#include "absl/numeric/int128.h"
#include "core/uuid.h"

namespace kingest::pipeline {

class BriefTable {
 public:
  struct Entry {
    uint64_t key = 0;  // 0: a free slot (a key of 0 is stored as 1)
    uint64_t value = 0;
    Uuid id;
  };
  static_assert(sizeof(Entry) == 32);

  static constexpr size_t kMinCapacity = 8;

  // The most entries a table of `capacity` slots holds before it grows.
  static constexpr size_t max_load(size_t capacity) { return capacity - capacity / 8; }

  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }
  [[nodiscard]] size_t capacity() const { return capacity_; }
  [[nodiscard]] size_t bytes() const { return capacity_ * sizeof(Entry); }
  // The capacity after inserting a key it does not hold: a table that would pass 7/8 doubles, but
  // not past `limit` (at least kMinCapacity) while it is below it; a table that is at `limit`
  // already and full answers twice that (over the limit: the owner makes room first).
  [[nodiscard]] size_t capacity_after_insert(size_t limit = SIZE_MAX) const {
    if (capacity_ == 0) return std::min(kMinCapacity, std::max(limit, kMinCapacity));
    if (size_ + 1 <= max_load(capacity_)) return capacity_;
    return capacity_ >= limit ? capacity_ * 2 : std::min(capacity_ * 2, limit);
  }

  [[nodiscard]] const Entry* find(uint64_t key) const {
    const size_t i = index_of(key);
    return i == kNone ? nullptr : &slots_[i];
  }

  [[nodiscard]] bool contains(uint64_t key) const { return find(key) != nullptr; }

  // Grows first when a new key would fill the table past 7/8 (see `capacity_after_insert`).
  void insert_or_assign(uint64_t key, uint64_t value, const Uuid& id, size_t limit = SIZE_MAX) {
    if (const size_t i = index_of(key); i != kNone) {
      slots_[i].value = value;
      slots_[i].id = id;
      return;
    }
    if (const size_t c = capacity_after_insert(limit); c != capacity_) rehash(c);
    key = stored(key);
    for (size_t i = home(key);; i = next(i)) {
      if (slots_[i].key == 0) {
        slots_[i] = Entry{key, value, id};
        ++size_;
        return;
      }
    }
  }

  bool erase(uint64_t key) {
    const size_t i = index_of(key);
    if (i == kNone) return false;
    erase_at(i);
    return true;
  }

  // Erases every entry whose key (as given to insert) satisfies `pred`.
  template <typename Pred>
  size_t erase_if(Pred&& pred) {
    std::vector<uint64_t> gone;
    for (size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].key != 0 && pred(slots_[i].key)) gone.push_back(slots_[i].key);
    }
    for (uint64_t k : gone) erase(k);
    return gone.size();
  }

  // Frees the table.
  void clear() {
    slots_.reset();
    capacity_ = 0;
    size_ = 0;
  }

 private:
  static uint64_t stored(uint64_t key) { return key == 0 ? 1 : key; }

  static constexpr size_t kNone = SIZE_MAX;

  [[nodiscard]] size_t index_of(uint64_t key) const {
    if (size_ == 0) return kNone;
    key = stored(key);
    for (size_t i = home(key);; i = next(i)) {
      if (slots_[i].key == key) return i;
      if (slots_[i].key == 0) return kNone;
    }
  }
  [[nodiscard]] size_t home(uint64_t key) const {
    // The keys are hashes already; the multiply spreads them over the high bits, and the high
    // bits scaled to the capacity pick the slot.
    return size_t(absl::Uint128High64(absl::uint128(key * 0x9E3779B97F4A7C15ULL) * capacity_));
  }
  [[nodiscard]] size_t next(size_t i) const { return i + 1 == capacity_ ? 0 : i + 1; }

  // Empties slot `i` and shifts back each following entry that probing would no longer find.
  void erase_at(size_t i) {
    slots_[i].key = 0;
    --size_;
    for (size_t j = next(i); slots_[j].key != 0; j = next(j)) {
      const size_t h = home(slots_[j].key);
      // The entry at j stays when its home lies cyclically in (i, j].
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (stays) continue;
      slots_[i] = slots_[j];
      slots_[j].key = 0;
      i = j;
    }
  }

  void rehash(size_t capacity) {
    Slots old = std::move(slots_);
    const size_t old_capacity = capacity_;
    slots_ = allocate(capacity);
    capacity_ = capacity;
    size_ = 0;
    for (size_t i = 0; i < old_capacity; ++i) {
      if (old[i].key == 0) continue;
      for (size_t j = home(old[i].key);; j = next(j)) {
        if (slots_[j].key == 0) {
          slots_[j] = old[i];
          ++size_;
          break;
        }
      }
    }
  }

  // Slots of kMapBytes or more are pages mapped for them alone, unmapped when freed: a table that
  // grows gives its old slots back to the system at once. From the allocator, they would stay
  // resident until its decay returned them (cli/malloc_options.h), and the sixteen shards of a
  // ShardedBriefTable grow within milliseconds of each other (their keys are hashes, spread alike).
  static constexpr size_t kMapBytes = size_t{64} << 10;
  struct FreeSlots {
    FreeSlots() noexcept : bytes(0) {}
    explicit FreeSlots(size_t b) noexcept : bytes(b) {}
    size_t bytes;
    void operator()(Entry* p) const {
      if (bytes >= kMapBytes) {
        munmap(p, bytes);
      } else {
        delete[] p;  // NOLINT(cppcoreguidelines-owning-memory): the owner is the unique_ptr this deleter belongs to
      }
    }
  };
  using Slots = std::unique_ptr<Entry[], FreeSlots>;

  // Every slot free (key 0): mapped pages come zeroed.
  static Slots allocate(size_t capacity) {
    const size_t bytes = capacity * sizeof(Entry);
    if (bytes < kMapBytes) return Slots(new Entry[capacity], FreeSlots{bytes});  // NOLINT(cppcoreguidelines-owning-memory)
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return Slots(static_cast<Entry*>(p), FreeSlots{bytes});
  }

  Slots slots_;
  size_t capacity_ = 0;
  size_t size_ = 0;
};

// Briefs in sixteen BriefTables, a key's shard by its top four bits, each shard limited to a
// sixteenth of the owner's limit. A table grows by copying its entries into one twice its size,
// so while it does it holds both: a single table of a million briefs doubling towards its limit
// held 32 MiB and 36 MiB at once (the peak RSS of 4 M wide events, docs/performance.md). A shard
// copies a sixteenth of that. The owner's rule when full works per shard: the shard a new key goes
// to is full (`full_for`), so the owner drops an eighth of that shard's briefs (`drop_eighth_of`).
// (A shard's part is at least kMinCapacity slots: under kMinLimit the shards may pass the limit
// together, by at most 4 KiB.)
class ShardedBriefTable {
 public:
  using Entry = BriefTable::Entry;
  static constexpr size_t kShards = 16;
  // The smallest limit whose sixteenths are each at least a shard's minimum.
  static constexpr size_t kMinLimit = kShards * BriefTable::kMinCapacity;

  // A shard's part of `limit` (at least kMinCapacity).
  static constexpr size_t shard_limit(size_t limit) {
    return limit == SIZE_MAX ? SIZE_MAX : std::max(limit / kShards, BriefTable::kMinCapacity);
  }

  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }
  [[nodiscard]] size_t capacity() const { return capacity_; }
  [[nodiscard]] size_t bytes() const { return capacity_ * sizeof(Entry); }

  [[nodiscard]] const Entry* find(uint64_t key) const { return shard(key).find(key); }
  [[nodiscard]] bool contains(uint64_t key) const { return shard(key).contains(key); }

  // Whether inserting `key`, which the table does not hold, would grow its shard past its part of
  // `limit`: the owner makes room first (`drop_eighth_of`).
  [[nodiscard]] bool full_for(uint64_t key, size_t limit) const {
    const size_t part = shard_limit(limit);
    return shard(key).capacity_after_insert(part) > part;
  }

  void insert_or_assign(uint64_t key, uint64_t value, const Uuid& id, size_t limit = SIZE_MAX) {
    update(key, [&](BriefTable& t) { t.insert_or_assign(key, value, id, shard_limit(limit)); });
  }

  bool erase(uint64_t key) {
    bool erased = false;
    update(key, [&](BriefTable& t) { erased = t.erase(key); });
    return erased;
  }

  // Erases every entry whose key satisfies `pred`.
  template <typename Pred>
  size_t erase_if(Pred&& pred) {
    size_t n = 0;
    for (auto& t : shards_) n += t.erase_if(pred);
    size_ -= n;
    return n;
  }

  // Erases an eighth of `key`'s shard (by the hash's next three bits, a different eighth each
  // time, so the oldest briefs go first over a round), passing each key to `gone` first.
  template <typename Gone>
  size_t drop_eighth_of(uint64_t key, Gone&& gone) {
    const uint64_t eighth = next_eighth_[index(key)]++ % 8;
    size_t n = 0;
    update(key, [&](BriefTable& t) {
      n = t.erase_if([&](uint64_t k) {
        if (((k >> 57) & 7) != eighth) return false;
        gone(k);
        return true;
      });
    });
    return n;
  }

  // Frees every shard.
  void clear() {
    for (auto& t : shards_) t.clear();
    size_ = 0;
    capacity_ = 0;
  }

 private:
  static size_t index(uint64_t key) { return size_t(key >> 60); }
  [[nodiscard]] const BriefTable& shard(uint64_t key) const { return shards_[index(key)]; }

  // Runs `f` on `key`'s shard and keeps the totals.
  template <typename F>
  void update(uint64_t key, F&& f) {
    BriefTable& t = shards_[index(key)];
    size_ -= t.size();
    capacity_ -= t.capacity();
    f(t);
    size_ += t.size();
    capacity_ += t.capacity();
  }

  static_assert(kShards == 16, "index() takes the key's top four bits");
  std::array<BriefTable, kShards> shards_;
  std::array<uint8_t, kShards> next_eighth_{};  // per shard: which eighth goes when it is next full
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace kingest::pipeline
