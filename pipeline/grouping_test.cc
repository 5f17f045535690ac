// BatchGroups on its own: streams in first-seen order, each with its events in delivery order,
// names that outlive the index's growth.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/hash/hash.h"
#include "pipeline/grouping.h"

namespace kingest::pipeline {
namespace {

std::vector<uint32_t> members_of(const BatchGroups::Stream& s) { return {s.members.begin(), s.members.end()}; }

TEST(BatchGroups, StreamsInFirstSeenOrderEventsInDeliveryOrder) {
  BatchGroups g(8);
  std::string name;  // one buffer for every event's name, as the engine renders them: copied in
  const std::vector<std::string> order{"Task-b", "Task-a", "Task-b", "Task-c", "Task-a", "Task-b"};
  for (uint32_t i = 0; i < order.size(); ++i) {
    name = order[i];
    g.add(name, absl::HashOf(name), i);
  }
  name = "overwritten";
  ASSERT_EQ(g.streams.size(), 3u);
  EXPECT_EQ(g.streams[0].name, "Task-b");
  EXPECT_EQ(g.streams[1].name, "Task-a");
  EXPECT_EQ(g.streams[2].name, "Task-c");
  EXPECT_EQ(members_of(g.streams[0]), (std::vector<uint32_t>{0, 2, 5}));
  EXPECT_EQ(members_of(g.streams[1]), (std::vector<uint32_t>{1, 4}));
  EXPECT_EQ(members_of(g.streams[2]), (std::vector<uint32_t>{3}));
}

TEST(BatchGroups, LongNamesStayFoundWhenTheStreamsOutgrowTheirReserve) {
  // Reserved for 2 streams, given 300 with names longer than a string keeps in place, each seen
  // twice: the index is rebuilt as the streams grow, and every second sighting finds its stream.
  BatchGroups g(2);
  std::string name;
  const auto stream = [&](int k) {
    name = "Vulnerability-00000000-0000-4000-8000-" + std::to_string(100000000000 + k);
    return std::string_view(name);
  };
  uint32_t index = 0;
  for (int k = 0; k < 300; ++k) g.add(stream(k), absl::HashOf(stream(k)), index++);
  for (int k = 299; k >= 0; --k) g.add(stream(k), absl::HashOf(stream(k)), index++);
  ASSERT_EQ(g.streams.size(), 300u);
  for (int k = 0; k < 300; ++k) {
    EXPECT_EQ(g.streams[size_t(k)].name, std::string(stream(k)));
    EXPECT_EQ(members_of(g.streams[size_t(k)]), (std::vector<uint32_t>{uint32_t(k), uint32_t(599 - k)}));
  }
}

}  // namespace
}  // namespace kingest::pipeline
