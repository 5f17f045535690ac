// Integration test of the source against the embedded broker (librdkafka's mock cluster on loopback).
#include "kafka/kafka_source.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
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

// librdkafka (before 2.3) stops fetching while its consumer queue is over queued.max.messages.kbytes
// and looks again only when its broker thread next wakes, at the latest a second later. Reads
// `messages` messages of 100 bytes from topic "a" of `partitions` partitions through a 1 KiB queue;
// the producer flushes after every `flush_every` messages (`keys` keys spread them over the
// partitions), so each fetch returns a small record batch that fills the queue: one stall each
// unless the source wakes the fetchers as it drains the queue.
void expect_reads_through_a_full_queue(int partitions, int messages, int keys, int flush_every) {
  auto broker = EmbeddedBroker::start().value();
  ASSERT_TRUE(broker->create_topic("a", partitions).ok());
  auto p = Producer::create(broker->bootstrap(), {{"batch.num.messages", "10"}, {"linger.ms", "0"}}).value();
  for (int i = 0; i < messages; ++i) {
    ASSERT_TRUE(p->produce("a", "key-" + std::to_string(i % keys), std::string(100, 'x'), {}).ok());
    if (i % flush_every == flush_every - 1) {
      ASSERT_TRUE(p->flush(30s).ok());
    }
  }
  std::atomic<size_t> got{0};
  SourceCallbacks cb;
  cb.has_room = [] { return true; };
  cb.on_batch = [&](std::vector<SourceMessage>&& msgs, size_t) { got += msgs.size(); };
  SourceOptions o;
  o.brokers = broker->bootstrap();
  o.group_id = "g-small-queue";
  o.topics = {"a"};
  o.properties = {{"queued.max.messages.kbytes", "1"}, {"fetch.max.bytes", "1000"},
                  {"max.partition.fetch.bytes", "1000"}, {"message.max.bytes", "1000"}};
  o.batch = {.max_events = 100, .max_bytes = 1 << 20, .max_age = 5ms};
  auto source = KafkaSource::create(o, cb).value();
  ASSERT_TRUE(source->start().ok());
  EXPECT_TRUE(wait_until([&] { return got.load() >= size_t(messages); }, 45s))
      << got.load() << " of " << messages << " messages read in 45 s";
  EXPECT_EQ(got.load(), size_t(messages));
  ASSERT_TRUE(source->close().ok());
}

// One partition, one record batch of ten messages per fetch: 200 stalls (over a minute on this
// broker, measured) without the wake-ups, a few seconds with them.
TEST(KafkaSource, KeepsFetchingWhenEachFetchFillsLibrdkafkasQueue) { expect_reads_through_a_full_queue(1, 2000, 7, 10); }

// Six partitions of one leader: a wake-up names one of them (one partition per leader), and the
// fetches of all six go on.
TEST(KafkaSource, KeepsFetchingEveryPartitionWhenAWakeUpNamesOnePerLeader) {
  expect_reads_through_a_full_queue(6, 3000, 60, 60);
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

// One partition of `count` messages whose values grow by `growth` bytes each (offset i has
// 20 + i * growth bytes), so a batch's bytes limit falls inside what one take holds.
struct OnePartition {
  std::unique_ptr<EmbeddedBroker> broker;
  explicit OnePartition(int count, int growth) {
    broker = EmbeddedBroker::start().value();
    EXPECT_TRUE(broker->create_topic("c", 1).ok());
    auto p = Producer::create(broker->bootstrap()).value();
    for (int i = 0; i < count; ++i) {
      EXPECT_TRUE(p->produce("c", "k" + std::to_string(i), std::string(size_t(20 + i * growth), 'x'), {}).ok());
    }
    EXPECT_TRUE(p->flush(30s).ok());
  }
  SourceOptions options(const std::string& group) const {
    SourceOptions o;
    o.brokers = broker->bootstrap();
    o.group_id = group;
    o.topics = {"c"};
    o.properties = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    o.commit_interval = 50ms;
    o.pause_after = 100ms;
    return o;
  }
};

// The budget has room for one batch only. Messages are taken from librdkafka many at a time, but
// what the budget has no room for is neither handed over nor counted as read: exactly one batch,
// then nothing until there is room, then every message once, in order.
void expect_one_batch_until_room(SourceOptions options, size_t total) {
  std::mutex mu;
  std::vector<size_t> batch_sizes;
  std::vector<int64_t> offsets;
  std::atomic<bool> room{false};
  using Clock = std::chrono::steady_clock;
  std::atomic<Clock::rep> first_full_ask{0};
  std::atomic<Clock::rep> last_full_ask{0};
  std::atomic<size_t> batches{0};
  SourceCallbacks cb;
  cb.has_room = [&] {
    if (room.load() || batches.load() == 0) return true;
    const auto now = Clock::now().time_since_epoch().count();
    Clock::rep zero = 0;
    first_full_ask.compare_exchange_strong(zero, now);
    last_full_ask = now;
    return false;
  };
  cb.on_batch = [&](std::vector<SourceMessage>&& msgs, size_t) {
    std::lock_guard lock(mu);
    batch_sizes.push_back(msgs.size());
    for (const auto& m : msgs) offsets.push_back(m.offset.value());
    batches.fetch_add(1);
  };
  auto source = KafkaSource::create(options, cb).value();
  ASSERT_TRUE(source->start().ok());
  // Past `pause_after` the source has paused and gone on polling: long enough to see it take more.
  ASSERT_TRUE(wait_until([&] {
    return first_full_ask.load() != 0 &&
           Clock::duration(last_full_ask.load() - first_full_ask.load()) >= options.pause_after * 5;
  })) << "the source never asked for room after its first batch";
  size_t first = 0;
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(batch_sizes.size(), 1u) << "a batch was handed over while the budget was full";
    first = batch_sizes[0];
  }
  EXPECT_LE(first, options.batch.max_events);
  EXPECT_EQ(source->messages_read(), first) << "messages beyond the budget's room were read into batches";
  room = true;
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mu);
    return offsets.size() >= total;
  }));
  ASSERT_TRUE(source->close().ok());
  std::lock_guard lock(mu);
  ASSERT_EQ(offsets.size(), total);
  for (size_t i = 0; i < total; ++i) ASSERT_EQ(offsets[i], int64_t(i)) << "lost, repeated or out of order";
}

TEST(KafkaSource, TakesNoMoreThanTheOpenBatchCanHoldWhileTheBudgetIsFull) {
  OnePartition data(1000, 0);
  SourceOptions o = data.options("g-count");
  o.batch = {.max_events = 100, .max_bytes = 1 << 20, .max_age = 5ms};
  expect_one_batch_until_room(o, 1000);
}

TEST(KafkaSource, ABatchClosedByBytesInsideATakeKeepsTheRestUntilTheBudgetHasRoom) {
  // Growing messages: a take sized by the messages before it overshoots the bytes limit, so the
  // batch closes inside the take and the rest must wait for room.
  OnePartition data(400, 8);
  SourceOptions o = data.options("g-bytes");
  o.batch = {.max_events = 1000, .max_bytes = 16 << 10, .max_age = 50ms};
  expect_one_batch_until_room(o, 400);
}

TEST(KafkaSource, ABoundedRunDeliversNothingAtOrPastTheEndOfATake) {
  OnePartition data(300, 0);
  std::mutex mu;
  std::vector<int64_t> offsets;
  SourceCallbacks cb;
  cb.has_room = [] { return true; };
  cb.on_batch = [&](std::vector<SourceMessage>&& msgs, size_t) {
    std::lock_guard lock(mu);
    for (const auto& m : msgs) offsets.push_back(m.offset.value());
  };
  SourceOptions o = data.options("g-end");
  // One take holds more than the end: the end falls inside it.
  o.batch = {.max_events = 1000, .max_bytes = 1 << 20, .max_age = 5ms};
  o.end_at = {{TopicPartition{"c", 0}, 150}};
  auto source = KafkaSource::create(o, cb).value();
  ASSERT_TRUE(source->start().ok());
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mu);
    return source->read_to_ends() && offsets.size() >= 150;
  }));
  ASSERT_TRUE(source->close().ok());
  std::lock_guard lock(mu);
  ASSERT_EQ(offsets.size(), 150u);
  for (size_t i = 0; i < offsets.size(); ++i) ASSERT_EQ(offsets[i], int64_t(i));
  EXPECT_EQ(source->messages_read(), 150u);
}

// A second member joins while the first is paused on a full budget: the first's partitions are
// rebalanced away in the middle of its takes. Every message reaches one of them and every
// partition's commit ends at its end.
TEST(KafkaSource, ARebalanceInTheMiddleOfTakesLosesNothing) {
  Fixture f(2000);
  std::mutex mu;
  std::set<std::pair<TopicPartition, int64_t>> seen;
  std::map<TopicPartition, int64_t> ends;
  std::atomic<size_t> seen_by_first{0};
  std::unique_ptr<KafkaSource> first, second;
  std::atomic<bool> second_assigned{false};
  auto callbacks = [&](std::unique_ptr<KafkaSource>& self, bool is_first) {
    SourceCallbacks cb;
    cb.has_room = [&, is_first] { return !is_first || seen_by_first.load() < 500 || second_assigned.load(); };
    cb.on_batch = [&, is_first](std::vector<SourceMessage>&& msgs, size_t) {
      {
        std::lock_guard lock(mu);
        for (const auto& m : msgs) seen.insert({m.tp, m.offset.value()});
      }
      if (is_first) seen_by_first += msgs.size();
      self->tracker().done_messages(msgs);
    };
    if (!is_first) cb.on_assign = [&](const std::vector<TopicPartition>&) { second_assigned = true; };
    return cb;
  };
  SourceOptions o = f.options("g-two");
  o.batch = {.max_events = 50, .max_bytes = 1 << 20, .max_age = 5ms};
  o.pause_after = 50ms;
  first = KafkaSource::create(o, callbacks(first, true)).value();
  ASSERT_TRUE(first->start().ok());
  ASSERT_TRUE(wait_until([&] { return seen_by_first.load() >= 500; }));
  second = KafkaSource::create(o, callbacks(second, false)).value();
  ASSERT_TRUE(second->start().ok());
  ASSERT_TRUE(wait_until([&] { return second_assigned.load(); }, 30s)) << "the second member was never assigned";
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard lock(mu);
        return seen.size() >= 4000;
      },
      30s))
      << seen.size() << " of 4000 messages";
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(seen.size(), 4000u);
    for (const auto& [tp, offset] : seen) ends[tp] = std::max(ends[tp], offset + 1);
  }
  // Before either member leaves: a member leaving starts another rebalance, in which the other's
  // final commit is refused.
  std::map<TopicPartition, int64_t> c;
  EXPECT_TRUE(wait_until(
      [&] {
        c = committed(f.broker->bootstrap(), "g-two", all_tps());
        for (const auto& tp : all_tps()) {
          if (c[tp] != ends[tp]) return false;
        }
        return true;
      },
      30s));
  for (const auto& tp : all_tps()) EXPECT_EQ(c[tp], ends[tp]) << to_string(tp);
  ASSERT_TRUE(first->close().ok());
  ASSERT_TRUE(second->close().ok());
}

TEST(KafkaSource, RejectsMissingConfiguration) {
  SourceOptions o;
  auto s = KafkaSource::create(o, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("--brokers"), std::string::npos);
}

}  // namespace
}  // namespace kingest::kafka
