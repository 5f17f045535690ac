// The stream table's index: stream name → value, open addressing (linear probing) over slots of a
// name's full hash and its node; a node holds the name and the value and is allocated on its own,
// so a value stays where it is until its stream is erased. A name of up to 55 bytes is kept in the
// node itself (`StreamName`): a lookup that compares it reads the node it has fetched, not another
// allocation. A slot keeps the whole hash, so a lookup
// reads a node only when the hash matches, and a batch's lookups can be fetched ahead in steps:
// the slot, then the node, then the name's bytes, each step reading only what the one before it
// started to load (`fetch_slot`, `fetch_node`, `fetch_name`).
//
// Owner: StreamTable, under its mutex (not thread-safe).
//
//   StreamIndex<State> index;
//   const uint64_t h = StreamIndex<State>::hash("Order-1");
//   auto [node, fresh] = index.try_emplace("Order-1", h);  // node->first: the name, node->second: the value
//   index.erase(node);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "core/prefetch.h"
#include "core/short_string.h"

namespace kingest::pipeline {

using StreamName = BasicShortString<55>;  // 64 bytes

template <typename Value>
class StreamIndex {
 public:
  // Named like a map's pair, so that `node->first` is the name and `node->second` the value.
  struct Node {
    StreamName first;
    Value second{};
    uint64_t hash = 0;
  };

  StreamIndex() = default;
  StreamIndex(const StreamIndex&) = delete;
  StreamIndex& operator=(const StreamIndex&) = delete;
  ~StreamIndex() { clear(); }

  static uint64_t hash(std::string_view name) { return absl::HashOf(name); }

  [[nodiscard]] size_t size() const { return size_; }

  Node* find(std::string_view name) { return find(name, hash(name)); }
  Node* find(std::string_view name, uint64_t h) {
    if (size_ == 0) return nullptr;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.node == nullptr) return nullptr;
      if (s.hash == h && s.node->first == name) return s.node;
    }
  }
  bool contains(std::string_view name) { return find(name) != nullptr; }

  // The node holding `value` (a node's value, whose name hashes to `h`), found by address: no
  // name is hashed or compared, and no node but the value's own is read.
  Node* node_of(const Value& value, uint64_t h) {
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Node* n = slots_[i].node;
      if (n == nullptr) return nullptr;
      if (slots_[i].hash == h && &n->second == &value) return n;
    }
  }

  // The node of `name`, made with a default value when there is none (second: true).
  std::pair<Node*, bool> try_emplace(std::string_view name) { return try_emplace(name, hash(name)); }
  std::pair<Node*, bool> try_emplace(std::string_view name, uint64_t h) {
    if (Node* n = find(name, h); n != nullptr) return {n, false};
    if ((size_ + 1) * 2 > slots_.size()) grow();
    auto* n = new Node{StreamName(name), Value{}, h};  // NOLINT(cppcoreguidelines-owning-memory): freed by erase or clear
    place(Slot{h, n});
    ++size_;
    return {n, true};
  }

  // Erases the node (which must be in the index): linear probing's deletion by shifting back the
  // slots after it that would no longer be reached.
  void erase(Node* n) {
    size_t i = n->hash & mask_;
    while (slots_[i].node != n) i = (i + 1) & mask_;
    for (size_t j = (i + 1) & mask_; slots_[j].node != nullptr; j = (j + 1) & mask_) {
      const size_t home = slots_[j].hash & mask_;
      // The slot at j stays if its home lies cyclically in (i, j].
      const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
    --size_;
    delete n;  // NOLINT(cppcoreguidelines-owning-memory)
  }

  // Calls f(Node&) for every node; f must not add or erase.
  template <typename F>
  void for_each(F&& f) {
    for (const Slot& s : slots_) {
      if (s.node != nullptr) f(*s.node);
    }
  }

  void clear() {
    for (Slot& s : slots_) {
      delete s.node;  // NOLINT(cppcoreguidelines-owning-memory)
      s = Slot{};
    }
    size_ = 0;
  }

  // Fetching ahead: hints only (nothing changes). A name whose node is not on one of the first
  // few slots of its probe is not followed.
  void fetch_slot(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h & mask_]);
  }
  void fetch_node(uint64_t h) const {
    if (const Node* n = probe(h); n != nullptr) prefetch_bytes(n, sizeof(Node));
  }
  void fetch_name(uint64_t h) const {
    if (const Node* n = probe(h); n != nullptr) __builtin_prefetch(n->first.data());
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    Node* node = nullptr;  // null: empty
  };
  static constexpr size_t kFetchProbes = 4;

  // The first node among the probe's first slots whose hash is `h` (its name not compared).
  const Node* probe(uint64_t h) const {
    if (slots_.empty()) return nullptr;
    size_t i = h & mask_;
    for (size_t k = 0; k < kFetchProbes && slots_[i].node != nullptr; ++k, i = (i + 1) & mask_) {
      if (slots_[i].hash == h) return slots_[i].node;
    }
    return nullptr;
  }

  void place(Slot s) {
    size_t i = s.hash & mask_;
    while (slots_[i].node != nullptr) i = (i + 1) & mask_;
    slots_[i] = s;
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.node != nullptr) place(s);
    }
  }

  std::vector<Slot> slots_;  // a power of two, at most half full
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace kingest::pipeline
