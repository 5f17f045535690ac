// The stream cache's briefs (stream_table.h): a dropped stream's next revision and last event id,
// by its name's 64-bit hash, 32 bytes each. An open-addressing table with linear probing whose
// erasures shift the entries behind them back (no tombstones), so a full table that keeps
// churning (streams dropped, met again, dropped again) never has to grow for erased slots. It
// doubles when it would be more than 7/8 full, up to a limit its owner may give (any number of
// slots, not only a power of two: a key's home slot is its hash scaled to the capacity);
// `bytes()` is what it holds in memory, free slots included.
//
// Threads: one owner (the stream table's mutex).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

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
    std::unique_ptr<Entry[]> old = std::move(slots_);
    const size_t old_capacity = capacity_;
    slots_ = std::make_unique<Entry[]>(capacity);
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

  std::unique_ptr<Entry[]> slots_;
  size_t capacity_ = 0;
  size_t size_ = 0;
};

}  // namespace kingest::pipeline
