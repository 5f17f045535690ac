#include "store/internal/stream_map.h"

#include <gtest/gtest.h>

#include <string>

namespace kingest::store::internal {
namespace {

std::string name_of(int i) { return "Order-" + std::to_string(i) + "-0f8fad5b-d9cb-469f-a165-70867728950e"; }

TEST(StreamMap, FindsEachNameWithOrWithoutItsHashAcrossGrowth) {
  StreamMap<int> m;
  EXPECT_EQ(m.find("Order-1"), nullptr);
  for (int i = 0; i < 5000; ++i) {
    const std::string name = name_of(i);
    ASSERT_EQ(m.find(name), nullptr);
    *m.insert(name, 0) = i;
  }
  ASSERT_EQ(m.size(), 5000u);
  for (int i = 0; i < 5000; ++i) {
    const std::string name = name_of(i);
    int* by_name = m.find(name);
    ASSERT_NE(by_name, nullptr);
    EXPECT_EQ(*by_name, i);
    EXPECT_EQ(m.find(name, StreamMap<int>::hash(name)), by_name);
    EXPECT_EQ(m.stored_name(name), name);
  }
  EXPECT_EQ(m.find(name_of(5000)), nullptr);
  EXPECT_EQ(m.find(name_of(5000), StreamMap<int>::hash(name_of(5000))), nullptr);
}

TEST(StreamMap, FetchStepsChangeNothing) {
  StreamMap<int> m;
  // On an empty map, and for names present, absent, or sharing a hash's first slot.
  m.fetch_slot(StreamMap<int>::hash("a"));
  m.fetch_entry(StreamMap<int>::hash("a"));
  m.fetch_name(StreamMap<int>::hash("a"));
  for (int i = 0; i < 3000; ++i) *m.insert(name_of(i), 0) = i;
  for (int i = 0; i < 6000; ++i) {
    const uint64_t h = StreamMap<int>::hash(name_of(i));
    m.fetch_slot(h);
    m.fetch_entry(h);
    m.fetch_name(h);
    m.fetch_entry(h ^ 1);
    m.fetch_name(h + 1);
  }
  ASSERT_EQ(m.size(), 3000u);
  for (int i = 0; i < 6000; ++i) {
    int* v = m.find(name_of(i), StreamMap<int>::hash(name_of(i)));
    if (i < 3000) {
      ASSERT_NE(v, nullptr);
      EXPECT_EQ(*v, i);
    } else {
      EXPECT_EQ(v, nullptr);
    }
  }
}

}  // namespace
}  // namespace kingest::store::internal
