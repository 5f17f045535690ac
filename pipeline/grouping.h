// Grouping one batch by stream: each decoded event's index goes to its stream's list, streams in
// the order they were first seen, events in delivery order. The engine's worker that decodes a
// batch runs this for it, event by event (bench/grouping_benchmark measures it).
//
// Threads: one owner. Memory: one entry per stream of the batch (its name, copied in, and its first
// few indexes inline) and one index slot; nothing per event in the common case of a few events per
// stream.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"

namespace kingest::pipeline {

struct BatchGroups {
  struct Stream {
    std::string name;
    absl::InlinedVector<uint32_t, 4> members;  // event indexes, in delivery order
    uint64_t hash = 0;                         // the name's hash, as the caller gave it
  };
  std::vector<Stream> streams;  // in first-seen order

  // `events`: how many events the batch holds at most (the streams never outnumber them).
  explicit BatchGroups(size_t events = 0) {
    streams.reserve(events);
    index_.reserve(events);
  }

  // The index views the names where they are: moving keeps them in place, a copy would not.
  BatchGroups(const BatchGroups&) = delete;
  BatchGroups& operator=(const BatchGroups&) = delete;
  BatchGroups(BatchGroups&&) = default;
  BatchGroups& operator=(BatchGroups&&) = default;

  // Adds the event at `index` (indexes arrive in delivery order) to `stream`'s group; the name is
  // copied only for a stream new to the batch. `hash` is the name's hash as the caller keeps it
  // (the engine: the stream table's), equal for equal names; the index uses it as it is, so that
  // a name is hashed once for both (each stream's `hash`).
  // One lookup either way: a new stream's entry is made where the lookup found room, keyed by
  // the copy of its name (wide data's events are mostly new to their batch).
  void add(std::string_view stream, uint64_t hash, uint32_t index) {
    if (streams.size() == streams.capacity()) grow();
    bool fresh = false;
    auto it = index_.lazy_emplace(Key{stream, hash}, [&](const Index::constructor& make) {
      fresh = true;
      streams.push_back(Stream{std::string(stream), {index}, hash});
      make(Key{streams.back().name, hash}, uint32_t(streams.size() - 1));
    });
    if (!fresh) streams[it->second].members.push_back(index);
  }

 private:
  // The index's keys view the names in `streams`: a short name lives inside its string, so the
  // vector may not move under them. Reserved up front; growing past that rebuilds the index.
  void grow() {
    streams.reserve(streams.empty() ? 16 : streams.size() * 2);
    index_.clear();
    for (uint32_t k = 0; k < streams.size(); ++k) index_.emplace(Key{streams[k].name, streams[k].hash}, k);
  }

  struct Key {
    std::string_view name;
    uint64_t hash;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return k.hash; }
  };
  struct KeyEq {
    bool operator()(const Key& a, const Key& b) const { return a.hash == b.hash && a.name == b.name; }
  };
  using Index = absl::flat_hash_map<Key, uint32_t, KeyHash, KeyEq>;
  Index index_;
};

}  // namespace kingest::pipeline
