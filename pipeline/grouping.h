// Grouping one batch by stream: each decoded event's index goes to its stream's list, streams in
// the order they were first seen, events in delivery order. The engine's serial stage runs this
// for every batch (bench/grouping_benchmark measures it).
//
// Threads: one owner. Memory: one list entry per event, one key per stream of the batch.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace kingest::pipeline {

struct BatchGroups {
  std::vector<std::string> order;                                   // streams in first-seen order
  std::unordered_map<std::string, std::vector<uint32_t>> by_stream;  // stream → event indexes

  // Adds the event at `index` (indexes arrive in delivery order) to `stream`'s group.
  void add(std::string&& stream, uint32_t index) {
    auto [it, fresh] = by_stream.try_emplace(std::move(stream));
    if (fresh) order.push_back(it->first);
    it->second.push_back(index);
  }
  [[nodiscard]] const std::vector<uint32_t>& members(const std::string& stream) const { return by_stream.at(stream); }
};

}  // namespace kingest::pipeline
