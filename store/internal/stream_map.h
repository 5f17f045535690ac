// The writer's stream cache: stream name → value, an open-addressing hash table over a deque of
// entries. A lookup touches one slot (hash + entry index) and one entry, where a node-based map
// chases a bucket, a node and the key; the writer does one per append.
//
// Owner: SqliteEventStore's writer thread (not thread-safe). Pointers returned by `find` and
// `insert`, and the names `stored_name` returns, stay valid until `clear` (entries never move).
//
//   StreamMap<State> m;
//   State* s = m.find("Order-1");
//   if (s == nullptr) s = m.insert("Order-1", State{});
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/event_store.h"

namespace kingest::store::internal {

template <typename Value>
class StreamMap {
 public:
  [[nodiscard]] size_t size() const { return entries_.size(); }

  Value* find(std::string_view name) {
    Entry* e = find_entry(name, hash(name));
    return e == nullptr ? nullptr : &e->second;
  }
  // The same with the name's hash already taken (`hash`).
  Value* find(std::string_view name, uint64_t h) {
    Entry* e = find_entry(name, h);
    return e == nullptr ? nullptr : &e->second;
  }

  // The store's (MultiAppend::stream_hashes are taken with it).
  static uint64_t hash(std::string_view s) { return EventStore::stream_hash(s); }

  // Fetching ahead, for many lookups in a row over a map larger than the cache: each step starts
  // loading what the next one reads, and reads only what the step before it started to load.
  // A hint: nothing changes, and a name not in the map (or not on its first slot) is not followed.
  //   fetch_slot(h) → fetch_entry(h) → fetch_name(h) → find(name, h), some lookups apart.
  void fetch_slot(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h & mask_]);
  }
  void fetch_entry(uint64_t h) const {
    if (const Entry* e = first_probe(h); e != nullptr) __builtin_prefetch(e);
  }
  void fetch_name(uint64_t h) const {
    if (const Entry* e = first_probe(h); e != nullptr) __builtin_prefetch(e->first.data());
  }

  // The map's own copy of `name`, which must be present: it stays where it is until `clear`.
  std::string_view stored_name(std::string_view name) { return stored_name(name, hash(name)); }
  std::string_view stored_name(std::string_view name, uint64_t h) {
    Entry* e = find_entry(name, h);
    assert(e != nullptr);
    return e->first;
  }

  // `name` must not be present.
  Value* insert(std::string_view name, Value value) { return insert(name, hash(name), std::move(value)); }
  // The same with the name's hash already taken (`hash`).
  Value* insert(std::string_view name, uint64_t h, Value value) {
    if ((entries_.size() + 1) * 2 > slots_.size()) grow();
    entries_.emplace_back(std::string(name), std::move(value));
    place(h, static_cast<uint32_t>(entries_.size()));
    return &entries_.back().second;
  }

  void clear() {
    entries_.clear();
    slots_.clear();
    mask_ = 0;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t index = 0;  // entry index + 1; 0: empty
  };

  using Entry = std::pair<std::string, Value>;

  // The entry on the hash's first slot when the slot holds that hash (no compare of names).
  const Entry* first_probe(uint64_t h) const {
    if (slots_.empty()) return nullptr;
    const Slot& slot = slots_[h & mask_];
    return slot.index != 0 && slot.hash == h ? &entries_[slot.index - 1] : nullptr;
  }

  Entry* find_entry(std::string_view name, uint64_t h) {
    if (slots_.empty()) return nullptr;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.index == 0) return nullptr;
      if (slot.hash == h) {
        Entry& entry = entries_[slot.index - 1];
        if (entry.first == name) return &entry;
      }
    }
  }

  void place(uint64_t h, uint32_t index) {
    size_t i = h & mask_;
    while (slots_[i].index != 0) i = (i + 1) & mask_;
    slots_[i] = Slot{h, index};
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.index != 0) place(s.hash, s.index);
    }
  }

  std::deque<Entry> entries_;
  std::vector<Slot> slots_;  // a power of two, at most half full
  size_t mask_ = 0;
};

}  // namespace kingest::store::internal
