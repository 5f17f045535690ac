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

namespace kingest::store::internal {

template <typename Value>
class StreamMap {
 public:
  [[nodiscard]] size_t size() const { return entries_.size(); }

  Value* find(std::string_view name) {
    Entry* e = find_entry(name);
    return e == nullptr ? nullptr : &e->second;
  }

  // The map's own copy of `name`, which must be present: it stays where it is until `clear`.
  std::string_view stored_name(std::string_view name) {
    Entry* e = find_entry(name);
    assert(e != nullptr);
    return e->first;
  }

  // `name` must not be present.
  Value* insert(std::string_view name, Value value) {
    if ((entries_.size() + 1) * 2 > slots_.size()) grow();
    entries_.emplace_back(std::string(name), std::move(value));
    place(hash(name), static_cast<uint32_t>(entries_.size()));
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

  static uint64_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }

  Entry* find_entry(std::string_view name) {
    if (slots_.empty()) return nullptr;
    const uint64_t h = hash(name);
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
