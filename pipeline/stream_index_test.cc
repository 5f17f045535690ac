#include "pipeline/stream_index.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace kingest::pipeline {
namespace {

std::string name_of(uint64_t i) { return "Task-" + std::to_string(i) + "-7c9e6679-7425-40de-944b-e07fc1f90ae7"; }

// Random inserts, lookups and erases against std::unordered_map, in a key range small enough that
// erased slots are reused and probe runs wrap around the slots' end.
TEST(StreamIndex, AgreesWithAMapThroughInsertsAndErases) {
  StreamIndex<int> index;
  std::unordered_map<std::string, int> expected;
  std::unordered_map<std::string, StreamIndex<int>::Node*> nodes;
  std::mt19937_64 rng(42);
  for (int step = 0; step < 200000; ++step) {
    const std::string name = name_of(rng() % 3000);
    const uint64_t h = StreamIndex<int>::hash(name);
    switch (rng() % 3) {
      case 0: {
        auto [node, fresh] = index.try_emplace(name, h);
        ASSERT_EQ(fresh, !expected.contains(name));
        ASSERT_EQ(node->first, name);
        if (fresh) {
          node->second = step;
          expected[name] = step;
          nodes[name] = node;
        } else {
          ASSERT_EQ(node, nodes[name]);  // a value stays where it is
        }
        break;
      }
      case 1: {
        auto* node = index.find(name, h);
        if (expected.contains(name)) {
          ASSERT_NE(node, nullptr);
          ASSERT_EQ(node->second, expected[name]);
          ASSERT_EQ(index.node_of(node->second, h), node);
        } else {
          ASSERT_EQ(node, nullptr);
        }
        break;
      }
      default:
        if (auto* node = index.find(name); node != nullptr) {
          index.erase(node);
          expected.erase(name);
          nodes.erase(name);
        }
        ASSERT_FALSE(index.contains(name));
    }
    ASSERT_EQ(index.size(), expected.size());
  }
  for (const auto& [name, value] : expected) {
    auto* node = index.find(name);
    ASSERT_NE(node, nullptr);
    EXPECT_EQ(node->second, value);
  }
  std::unordered_set<std::string> seen;
  index.for_each([&](StreamIndex<int>::Node& node) { EXPECT_TRUE(seen.insert(node.first.str()).second); });
  EXPECT_EQ(seen.size(), expected.size());
}

// Values whose names share a hash are told apart by their address, not by a name.
TEST(StreamIndex, AValuesNodeIsFoundByItsAddressAmongNamesOfOneHash) {
  StreamIndex<int> index;
  constexpr uint64_t kHash = 77;
  std::vector<StreamIndex<int>::Node*> nodes;
  for (int i = 0; i < 5; ++i) nodes.push_back(index.try_emplace(name_of(uint64_t(i)), kHash).first);
  for (auto* node : nodes) EXPECT_EQ(index.node_of(node->second, kHash), node);
  index.erase(nodes[1]);
  EXPECT_EQ(index.node_of(nodes[3]->second, kHash), nodes[3]) << "still found after an erase shifted its slot";
  const int elsewhere = 0;
  EXPECT_EQ(index.node_of(elsewhere, kHash), nullptr);
}

TEST(StreamIndex, FetchStepsChangeNothing) {
  StreamIndex<int> index;
  index.fetch_slot(StreamIndex<int>::hash("a"));
  index.fetch_node(StreamIndex<int>::hash("a"));
  index.fetch_name(StreamIndex<int>::hash("a"));
  for (uint64_t i = 0; i < 2000; ++i) index.try_emplace(name_of(i)).first->second = static_cast<int>(i);
  for (uint64_t i = 0; i < 4000; ++i) {
    const uint64_t h = StreamIndex<int>::hash(name_of(i));
    index.fetch_slot(h);
    index.fetch_node(h);
    index.fetch_name(h);
    index.fetch_node(h + 1);
  }
  ASSERT_EQ(index.size(), 2000u);
  for (uint64_t i = 0; i < 4000; ++i) {
    auto* node = index.find(name_of(i));
    if (i < 2000) {
      ASSERT_NE(node, nullptr);
      EXPECT_EQ(node->second, static_cast<int>(i));
    } else {
      EXPECT_EQ(node, nullptr);
    }
  }
}

}  // namespace
}  // namespace kingest::pipeline
