#include "kafka/batcher.h"

#include <gtest/gtest.h>

namespace kingest::kafka {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(Batcher, ClosesOnMaxEvents) {
  Batcher<int> b({.max_events = 3, .max_bytes = 1000, .max_age = 1s});
  auto t = Clock::time_point{};
  EXPECT_FALSE(b.add(1, 1, t));
  EXPECT_FALSE(b.add(2, 1, t));
  auto full = b.add(3, 1, t);
  ASSERT_TRUE(full);
  EXPECT_EQ(full->items, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(full->bytes, 3u);
  EXPECT_TRUE(b.empty());
}

TEST(Batcher, ClosesOnMaxBytes) {
  Batcher<int> b({.max_events = 100, .max_bytes = 10, .max_age = 1s});
  auto t = Clock::time_point{};
  EXPECT_FALSE(b.add(1, 6, t));
  auto full = b.add(2, 6, t);
  ASSERT_TRUE(full);
  EXPECT_EQ(full->items.size(), 2u);
}

TEST(Batcher, ItemsBuiltInPlaceCloseLikeAddedOnes) {
  Batcher<int> b({.max_events = 3, .max_bytes = 10, .max_age = 50ms});
  auto t0 = Clock::time_point{} + 1h;
  b.next(t0) = 1;
  EXPECT_FALSE(b.added(4));
  b.next(t0 + 40ms) = 2;
  EXPECT_FALSE(b.added(4));
  EXPECT_FALSE(b.flush_if_aged(t0 + 49ms)) << "the age counts from the first item";
  b.next(t0 + 45ms) = 3;
  auto full = b.added(4);
  ASSERT_TRUE(full) << "12 bytes of at most 10";
  EXPECT_EQ(full->items, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(full->bytes, 12u);
  EXPECT_TRUE(b.empty());
  b.next(t0 + 2h) = 4;
  EXPECT_FALSE(b.added(1));
  EXPECT_FALSE(b.flush_if_aged(t0 + 2h + 49ms));
  EXPECT_TRUE(b.flush_if_aged(t0 + 2h + 50ms));
}

TEST(Batcher, ClosesOnAgeMeasuredFromFirstItem) {
  Batcher<int> b({.max_events = 100, .max_bytes = 1000, .max_age = 50ms});
  auto t0 = Clock::time_point{} + 1h;
  EXPECT_FALSE(b.flush_if_aged(t0 + 1h)) << "an empty batch never closes";
  EXPECT_FALSE(b.add(1, 1, t0));
  EXPECT_FALSE(b.add(2, 1, t0 + 40ms));
  EXPECT_FALSE(b.flush_if_aged(t0 + 49ms));
  auto aged = b.flush_if_aged(t0 + 50ms);
  ASSERT_TRUE(aged);
  EXPECT_EQ(aged->items.size(), 2u);
  EXPECT_FALSE(b.flush());
}

}  // namespace
}  // namespace kingest::kafka
