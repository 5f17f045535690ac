#include "kafka/offset_tracker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

namespace kingest::kafka {
namespace {

const TopicPartition kTp{"system-events", 0};
const AssignmentEpoch kE1{1};

std::optional<int64_t> take(OffsetTracker& t, const TopicPartition& tp) {
  for (const auto& c : t.take_commits()) {
    if (c.tp == tp) return c.next_offset.value();
  }
  return std::nullopt;
}

TEST(OffsetTracker, CommitsAfterLastDoneMessageInDeliveryOrderAcrossHoles) {
  OffsetTracker t;
  t.assign({kTp}, kE1);
  // Offsets 3 and 6 are holes (e.g. transaction markers): never delivered.
  for (int64_t o : {0, 1, 2, 4, 5, 7}) t.delivered(kTp, KafkaOffset{o}, kE1);
  EXPECT_EQ(t.done({{kTp, KafkaOffset{4}, kE1}, {kTp, KafkaOffset{5}, kE1}}), 2u);
  EXPECT_EQ(take(t, kTp), std::nullopt) << "0..2 are not done yet";
  t.done({{kTp, KafkaOffset{0}, kE1}, {kTp, KafkaOffset{1}, kE1}});
  EXPECT_EQ(take(t, kTp), 2);
  t.done({{kTp, KafkaOffset{2}, kE1}});
  EXPECT_EQ(take(t, kTp), 6) << "after offset 5, the last done message; not 'highest contiguous + 1'";
  EXPECT_EQ(take(t, kTp), std::nullopt) << "unchanged positions are not committed again";
  t.done({{kTp, KafkaOffset{7}, kE1}});
  EXPECT_EQ(take(t, kTp), 8);
  EXPECT_EQ(t.in_flight(), 0u);
}

TEST(OffsetTracker, RandomCompletionOrderEndsAtLastOffset) {
  OffsetTracker t;
  t.assign({kTp}, kE1);
  std::vector<OffsetRef> refs;
  for (int64_t o = 0; o < 1000; o += 1 + (o % 3 == 0)) {
    t.delivered(kTp, KafkaOffset{o}, kE1);
    refs.push_back({kTp, KafkaOffset{o}, kE1});
  }
  std::mt19937 rng(7);
  std::shuffle(refs.begin(), refs.end(), rng);
  int64_t last_committed = -1;
  for (size_t i = 0; i < refs.size(); i += 17) {
    std::vector<OffsetRef> chunk(refs.begin() + long(i), refs.begin() + long(std::min(refs.size(), i + 17)));
    t.done(chunk);
    if (auto c = take(t, kTp)) {
      EXPECT_GT(*c, last_committed) << "commits only move forward";
      last_committed = *c;
    }
  }
  EXPECT_EQ(last_committed, refs.empty() ? -1 : 1000);
}

TEST(OffsetTracker, IgnoresCompletionsFromARevokedAssignment) {
  OffsetTracker t;
  t.assign({kTp}, kE1);
  t.delivered(kTp, KafkaOffset{10}, kE1);
  auto left = t.revoke({kTp});
  EXPECT_TRUE(left.empty());
  const AssignmentEpoch e2{2};
  t.assign({kTp}, e2);
  t.delivered(kTp, KafkaOffset{10}, e2);
  EXPECT_EQ(t.done({{kTp, KafkaOffset{10}, kE1}}), 0u) << "old epoch must not commit";
  EXPECT_EQ(take(t, kTp), std::nullopt);
  EXPECT_EQ(t.done({{kTp, KafkaOffset{10}, e2}}), 1u);
  EXPECT_EQ(take(t, kTp), 11);
}

TEST(OffsetTracker, RevokeReturnsUntakenPositionAndDuplicateDoneIsIgnored) {
  OffsetTracker t;
  t.assign({kTp}, kE1);
  t.delivered(kTp, KafkaOffset{0}, kE1);
  t.delivered(kTp, KafkaOffset{1}, kE1);
  EXPECT_EQ(t.done({{kTp, KafkaOffset{0}, kE1}, {kTp, KafkaOffset{0}, kE1}}), 1u);
  EXPECT_EQ(t.done({{kTp, KafkaOffset{99}, kE1}}), 0u);
  auto left = t.revoke({kTp});
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].next_offset.value(), 1);
  EXPECT_TRUE(t.all_positions().empty());
}

TEST(OffsetTracker, TakesAWholeBatchOfMessages) {
  OffsetTracker t;
  const TopicPartition other{"task-events", 1};
  t.assign({kTp, other}, kE1);
  std::vector<SourceMessage> batch;
  for (int64_t o : {0, 1, 2}) {
    t.delivered(kTp, KafkaOffset{o}, kE1);
    t.delivered(other, KafkaOffset{o + 10}, kE1);
    SourceMessage a, b;
    a.tp = kTp;
    a.offset = KafkaOffset{o};
    a.epoch = kE1;
    b.tp = other;
    b.offset = KafkaOffset{o + 10};
    b.epoch = kE1;
    batch.push_back(a);
    batch.push_back(b);
  }
  EXPECT_EQ(t.done_messages(batch), 6u);
  std::map<TopicPartition, int64_t> positions;
  for (const auto& c : t.take_commits()) positions[c.tp] = c.next_offset.value();
  EXPECT_EQ(positions[kTp], 3);
  EXPECT_EQ(positions[other], 13);
}

TEST(OffsetTracker, RunsOfABatchRecordTheSameAsItsMessages) {
  const TopicPartition a{"a", 0}, b{"b", 0}, a1{"a", 1};
  std::vector<SourceMessage> batch;
  auto add = [&](const TopicPartition& tp, int64_t o, AssignmentEpoch e) {
    SourceMessage m;
    m.tp = tp;
    m.offset = KafkaOffset{o};
    m.epoch = e;
    batch.push_back(m);
  };
  // Runs of a, b, a (again), a[1] of an old epoch (not recorded), then a.
  add(a, 0, kE1);
  add(a, 1, kE1);
  add(b, 5, kE1);
  add(a, 2, kE1);
  add(a1, 7, AssignmentEpoch{9});
  add(a, 3, kE1);
  auto positions = [&](OffsetTracker& t) {
    EXPECT_EQ(t.done_messages(batch), 5u) << "a[1]'s old epoch is not recorded";
    std::map<TopicPartition, int64_t> out;
    for (const auto& c : t.take_commits()) out[c.tp] = c.next_offset.value();
    return out;
  };
  OffsetTracker by_runs, by_messages, bad_runs;
  for (auto* t : {&by_runs, &by_messages, &bad_runs}) t->assign({a, b, a1}, kE1);
  by_runs.delivered_runs(batch, {2, 1, 1, 1, 1});
  by_messages.delivered_messages(batch);
  bad_runs.delivered_runs(batch, {2, 1});  // short of the batch: recorded message by message
  const std::map<TopicPartition, int64_t> want = {{a, 4}, {b, 6}};
  EXPECT_EQ(positions(by_runs), want);
  EXPECT_EQ(positions(by_messages), want);
  EXPECT_EQ(positions(bad_runs), want);
}

}  // namespace
}  // namespace kingest::kafka
