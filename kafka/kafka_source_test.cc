// Integration test of the source against the embedded broker (librdkafka's mock cluster on loopback).
#include "kafka/kafka_source.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "core/testing/eventually.h"
#include "kafka/embedded_broker.h"
#include "kafka/producer.h"

namespace kingest::kafka {
namespace {

using namespace std::chrono_literals;

// The source's work runs on its own polling thread, so a test waits for a condition, never for a
// fixed time.
template <typename Pred>
::testing::AssertionResult wait_until(Pred done, std::chrono::milliseconds timeout = 15s) {
  return kingest::testing::eventually(std::move(done), timeout);
}

std::map<TopicPartition, int64_t> committed(const std::string& brokers, const std::string& group,
                                            const std::vector<TopicPartition>& tps) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  auto* list = rd_kafka_topic_partition_list_new(int(tps.size()));
  for (const auto& tp : tps) rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition);
  EXPECT_EQ(rd_kafka_committed(rk, list, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::map<TopicPartition, int64_t> out;
  for (int i = 0; i < list->cnt; ++i) out[{list->elems[i].topic, list->elems[i].partition}] = list->elems[i].offset;
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return out;
}

struct Fixture {
  std::unique_ptr<EmbeddedBroker> broker;
  std::map<TopicPartition, int64_t> produced;  // next offset per partition

  explicit Fixture(int per_topic) {
    broker = EmbeddedBroker::start().value();
    EXPECT_TRUE(broker->create_topic("a", 3).ok());
    EXPECT_TRUE(broker->create_topic("b", 2).ok());
    auto p = Producer::create(broker->bootstrap(), {{"partitioner", "murmur2_random"}}).value();
    for (int i = 0; i < per_topic; ++i) {
      EXPECT_TRUE(p->produce("a", "key-" + std::to_string(i % 17), "{\"i\":" + std::to_string(i) + "}",
                             "application/json").ok());
      EXPECT_TRUE(p->produce("b", "key-" + std::to_string(i % 13), "v", {}).ok());
    }
    EXPECT_TRUE(p->flush(30s).ok());
  }
  SourceOptions options(const std::string& group) const {
    SourceOptions o;
    o.brokers = broker->bootstrap();
    o.group_id = group;
    o.topics = {"a", "b"};
    o.properties = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    o.batch = {.max_events = 100, .max_bytes = 1 << 20, .max_age = 5ms};
    o.commit_interval = 50ms;
    return o;
  }
};

std::vector<TopicPartition> all_tps() { return {{"a", 0}, {"a", 1}, {"a", 2}, {"b", 0}, {"b", 1}}; }

TEST(KafkaSource, ReadsEveryMessageInPartitionOrderAndCommitsDonePositions) {
  Fixture f(1000);
  std::mutex mu;
  std::map<TopicPartition, std::vector<int64_t>> seen;
  std::vector<OffsetRef> to_finish;
  KafkaSource* src = nullptr;
  SourceCallbacks cb;
  cb.has_room = [] { return true; };
  cb.on_batch = [&](std::vector<SourceMessage>&& msgs, size_t) {
    std::lock_guard lock(mu);
    for (auto& m : msgs) {
      seen[m.tp].push_back(m.offset.value());
      EXPECT_GE(m.value.capacity(), m.value.size() + kValuePadding);
      if (m.tp.topic == "a") {
        EXPECT_EQ(m.content_type, "application/json");
      }
      // Everything but a's partition 0 completes: its position must stay uncommitted.
      if (!(m.tp == TopicPartition{"a", 0})) to_finish.push_back({m.tp, m.offset, m.epoch});
    }
  };
  auto source = KafkaSource::create(f.options("g1"), cb).value();
  src = source.get();
  ASSERT_TRUE(src->start().ok());
  // Wait until every message reached the batch callback (reading a message is not enough: the
  // last batch may still be open in the batcher).
  auto seen_total = [&] {
    std::lock_guard lock(mu);
    size_t n = 0;
    for (const auto& [tp, offs] : seen) n += offs.size();
    return n;
  };
  ASSERT_TRUE(wait_until([&] { return seen_total() >= 2000; })) << seen_total() << " of 2000 messages seen";
  ASSERT_EQ(src->messages_read(), 2000u);
  ASSERT_EQ(seen_total(), 2000u);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(src->tracker().done(to_finish), to_finish.size());
  }
  ASSERT_TRUE(src->close().ok());

  size_t total = 0;
  for (auto& [tp, offs] : seen) {
    total += offs.size();
    EXPECT_TRUE(std::is_sorted(offs.begin(), offs.end())) << to_string(tp);
  }
  EXPECT_EQ(total, 2000u);
  auto c = committed(f.broker->bootstrap(), "g1", all_tps());
  for (const auto& tp : all_tps()) {
    if (tp == TopicPartition{"a", 0}) {
      EXPECT_LT(c[tp], 0) << "nothing of a[0] was done, so nothing may be committed";
    } else {
      ASSERT_FALSE(seen[tp].empty());
      EXPECT_EQ(c[tp], seen[tp].back() + 1) << to_string(tp);
    }
  }
}

TEST(KafkaSource, PausesWhileTheBudgetIsFullAndResumesAfter) {
  Fixture f(200);
  std::atomic<bool> room{false};
  std::atomic<size_t> got{0};
  // How long the polling thread has been asking for room, while assigned: past `pause_after` it
  // has paused the partitions and kept polling.
  using Clock = std::chrono::steady_clock;
  std::atomic<Clock::rep> first_full_ask{0};
  std::atomic<Clock::rep> last_full_ask{0};
  KafkaSource* src = nullptr;
  SourceCallbacks cb;
  cb.has_room = [&] {
    if (src != nullptr && src->assigned_any() && !room.load()) {
      const auto now = Clock::now().time_since_epoch().count();
      Clock::rep zero = 0;
      first_full_ask.compare_exchange_strong(zero, now);
      last_full_ask = now;
    }
    return room.load();
  };
  cb.on_batch = [&](std::vector<SourceMessage>&& msgs, size_t) { got += msgs.size(); };
  SourceOptions options = f.options("g2");
  options.pause_after = 100ms;
  auto source = KafkaSource::create(options, cb).value();
  src = source.get();
  ASSERT_TRUE(source->start().ok());
  ASSERT_TRUE(wait_until([&] {
    return first_full_ask.load() != 0 &&
           Clock::duration(last_full_ask.load() - first_full_ask.load()) >= options.pause_after * 5;
  })) << "the source never kept asking for room while assigned";
  EXPECT_EQ(got.load(), 0u) << "no batch may be emitted while the in-flight budget is full";
  room = true;
  ASSERT_TRUE(wait_until([&] { return got.load() >= 400; })) << got.load() << " of 400 messages";
  EXPECT_EQ(got.load(), 400u);
  ASSERT_TRUE(source->close().ok());
}

TEST(KafkaSource, RejectsMissingConfiguration) {
  SourceOptions o;
  auto s = KafkaSource::create(o, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("--brokers"), std::string::npos);
}

}  // namespace
}  // namespace kingest::kafka
