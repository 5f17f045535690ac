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
    uint64_t hash = 0;                         // the owner's hash of the name, when it sets one
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
  // copied only for a stream new to the batch.
  // One lookup either way: a new stream's entry is made where the lookup found room, keyed by
  // the copy of its name (wide data's events are mostly new to their batch).
  void add(std::string_view stream, uint32_t index) {
    if (streams.size() == streams.capacity()) grow();
    bool fresh = false;
    auto it = index_.lazy_emplace(stream, [&](const Index::constructor& make) {
      fresh = true;
      streams.push_back(Stream{std::string(stream), {index}, 0});
      make(std::string_view(streams.back().name), uint32_t(streams.size() - 1));
    });
    if (!fresh) streams[it->second].members.push_back(index);
  }

 private:
  // The index's keys view the names in `streams`: a short name lives inside its string, so the
  // vector may not move under them. Reserved up front; growing past that rebuilds the index.
  void grow() {
    streams.reserve(streams.empty() ? 16 : streams.size() * 2);
    index_.clear();
    for (uint32_t k = 0; k < streams.size(); ++k) index_.emplace(streams[k].name, k);
  }

  using Index = absl::flat_hash_map<std::string_view, uint32_t>;
  Index index_;
};

}  // namespace kingest::pipeline
