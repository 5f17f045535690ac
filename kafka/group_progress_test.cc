// GroupProgress against the embedded broker (librdkafka's mock cluster on loopback): the
// watermarks it lists in one request per leader are the ones librdkafka's per-partition query
// gives, and a run's end is reached exactly when every commit is at its partition's end.
#include "kafka/group_progress.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <memory>
#include <string>

#include "kafka/embedded_broker.h"
#include "kafka/producer.h"

namespace kingest::kafka {
namespace {

using namespace std::chrono_literals;

// Commits `offsets` for `group` as a consumer of that group would.
void commit(const std::string& brokers, const std::string& group, const Offsets& offsets) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err), RD_KAFKA_CONF_OK);
  ASSERT_EQ(rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err), RD_KAFKA_CONF_OK);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  auto* list = rd_kafka_topic_partition_list_new(int(offsets.size()));
  for (const auto& [tp, o] : offsets) rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition)->offset = o;
  EXPECT_EQ(rd_kafka_commit(rk, list, /*async=*/0), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
}

// librdkafka's own answer for one partition: two ListOffsets round trips.
std::pair<int64_t, int64_t> watermarks(const std::string& brokers, const TopicPartition& tp) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  int64_t low = -7, high = -7;
  EXPECT_EQ(rd_kafka_query_watermark_offsets(rk, tp.topic.c_str(), tp.partition, &low, &high, 10000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
  return {low, high};
}

class GroupProgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = EmbeddedBroker::start().value();
    ASSERT_TRUE(broker_->create_topic("a", 4).ok());
    ASSERT_TRUE(broker_->create_topic("b", 3).ok());
    auto p = Producer::create(broker_->bootstrap(), {{"partitioner", "murmur2_random"}}).value();
    // Uneven partitions, one of "b" left empty by the keys' spread or not: the test compares, it does
    // not assume.
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(p->produce("a", "k" + std::to_string(i % 11), "{}").ok());
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(p->produce("b", "same-key", "{}").ok());
    ASSERT_TRUE(p->flush(30s).ok());
    gp_ = GroupProgress::open(broker_->bootstrap(), "g", {}).value();
  }

  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<GroupProgress> gp_;
};

TEST_F(GroupProgressTest, ListsEveryPartitionsWatermarksAsTheOnePartitionQueryDoes) {
  auto ends = gp_->end_offsets({"a", "b"});
  ASSERT_TRUE(ends.ok()) << ends.status();
  ASSERT_EQ(ends->size(), 7u);
  int64_t total = 0;
  for (const auto& [tp, end] : *ends) {
    EXPECT_EQ(end, watermarks(broker_->bootstrap(), tp).second) << to_string(tp);
    total += end;
  }
  EXPECT_EQ(total, 340);
  auto starts = gp_->start_offsets(*ends);
  ASSERT_TRUE(starts.ok()) << starts.status();
  ASSERT_EQ(starts->size(), 7u);
  for (const auto& [tp, start] : *starts) EXPECT_EQ(start, watermarks(broker_->bootstrap(), tp).first) << to_string(tp);
}

TEST_F(GroupProgressTest, ReachedOnlyWhenEveryCommitIsAtItsEnd) {
  auto ends = gp_->end_offsets({"a", "b"}).value();
  auto r = gp_->reached(ends);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(*r);
  EXPECT_EQ(gp_->remaining(ends).value(), 340u);

  // Every partition at its end but one, which is one short (an empty partition has nothing to commit).
  Offsets almost = ends;
  TopicPartition short_one;
  for (auto& [tp, end] : almost) {
    if (end > 0) {
      short_one = tp;
      end -= 1;
      break;
    }
  }
  ASSERT_FALSE(short_one.topic.empty());
  commit(broker_->bootstrap(), "g", almost);
  EXPECT_FALSE(gp_->reached(ends).value());
  EXPECT_EQ(gp_->remaining(ends).value(), 1u);

  commit(broker_->bootstrap(), "g", ends);
  EXPECT_TRUE(gp_->reached(ends).value());
  EXPECT_EQ(gp_->remaining(ends).value(), 0u);
}

}  // namespace
}  // namespace kingest::kafka
