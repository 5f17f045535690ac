// Replies in NestJS's wire format, against the embedded broker: what lands on the reply topic, and
// that the source reads the request headers and flushes before committing.
#include "kafka/replier.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "core/testing/eventually.h"
#include "kafka/embedded_broker.h"
#include "kafka/kafka_source.h"
#include "kafka/producer.h"
#include "kafka/testing/read_topic.h"

namespace kingest::kafka {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testing::read_topic;
using Received = testing::ReadBack;

SourceMessage request(const std::string& reply_topic, const std::string& correlation_id, int32_t partition) {
  SourceMessage m;
  m.tp = {"system-events", 0};
  m.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  m.reply_topic = reply_topic;
  m.reply_correlation_id = correlation_id;
  m.reply_partition = partition;
  return m;
}

TEST(Replier, SendsNestJsSuccessAndErrorRepliesToTheRequestedPartition) {
  auto broker = EmbeddedBroker::start().value();
  ASSERT_TRUE(broker->create_topic("system-events.reply", 3).ok());
  auto replier = Replier::create(broker->bootstrap()).value();
  const Uuid id = Uuid::parse("0b5e2a4c-7d1f-4e8a-9c3b-2f6d8e1a4b7c").value();

  replier->reply_success(request("system-events.reply", "corr-1", 2), id);
  replier->reply_error(request("system-events.reply", "corr-2", 1), "invalid JSON",
                       "got the text \"[object Object]\" (15 bytes)");
  // No reply awaited: neither without a topic nor without a correlation id.
  replier->reply_success(request("", "corr-3", 0), id);
  replier->reply_success(request("system-events.reply", "", 0), id);
  ASSERT_TRUE(replier->flush(10s).ok());
  const ReplierStats st = replier->stats();
  EXPECT_EQ(st.sent, 2u);
  EXPECT_EQ(st.delivered, 2u);
  EXPECT_EQ(st.failed, 0u);
  EXPECT_GE(st.latency_p99_ms, st.latency_p50_ms);

  auto got = read_topic(broker->bootstrap(), "system-events.reply", 3, 2);
  ASSERT_EQ(got.size(), 2u);
  std::sort(got.begin(), got.end(), [](const Received& a, const Received& b) { return a.partition > b.partition; });
  const std::string disposed(1, '\0');
  EXPECT_EQ(got[0].partition, 2);
  EXPECT_TRUE(got[0].key_null);
  EXPECT_EQ(got[0].value, R"({"success":true,"eventId":"0b5e2a4c-7d1f-4e8a-9c3b-2f6d8e1a4b7c"})");
  EXPECT_EQ(got[0].headers, (std::vector<std::pair<std::string, std::string>>{{"kafka_correlationId", "corr-1"},
                                                                              {"kafka_nest-is-disposed", disposed}}));
  EXPECT_EQ(got[1].partition, 1);
  EXPECT_TRUE(got[1].key_null);
  EXPECT_EQ(got[1].value, std::nullopt);
  EXPECT_EQ(got[1].headers,
            (std::vector<std::pair<std::string, std::string>>{
                {"kafka_correlationId", "corr-2"},
                {"kafka_nest-err",
                 R"j({"status":"error","message":"invalid JSON: got the text \"[object Object]\" (15 bytes)"})j"},
                {"kafka_nest-is-disposed", disposed}}));
}

TEST(Replier, ReplyToAMissingTopicIsCountedAsFailedNotHung) {
  auto broker = EmbeddedBroker::start().value();
  auto replier =
      Replier::create(broker->bootstrap(), {{"client.id", "replier-test"}}).value();
  // The mock cluster creates unknown topics on produce unless told otherwise; a partition that
  // does not exist fails either way.
  replier->reply_success(request("nowhere.reply", "c", 7), Uuid::parse("0b5e2a4c-7d1f-4e8a-9c3b-2f6d8e1a4b7c").value());
  ASSERT_TRUE(replier->flush(30s).ok());
  EXPECT_EQ(replier->stats().failed, 1u);
  EXPECT_EQ(replier->stats().delivered, 0u);
}

TEST(KafkaSource, KeepsReplyHeadersAndCallsBeforeCommitAfterTheMessagesAreDone) {
  auto broker = EmbeddedBroker::start().value();
  ASSERT_TRUE(broker->create_topic("requests", 1).ok());
  auto p = Producer::create(broker->bootstrap()).value();
  ASSERT_TRUE(p->produce("requests", "k", "{}", "application/json",
                         {{"kafka_correlationId", "c-1"}, {"kafka_replyTopic", "requests.reply"},
                          {"kafka_replyPartition", "3"}})
                  .ok());
  ASSERT_TRUE(p->produce("requests", "k", "{}", {}, {{"kafka_correlationId", "c-2"}}).ok());  // an emit()
  ASSERT_TRUE(p->produce("requests", "k", "{}", {}, {{"kafka_correlationId", "c-3"},
                                                      {"kafka_replyTopic", "requests.reply"},
                                                      {"kafka_replyPartition", "x"}})
                  .ok());
  ASSERT_TRUE(p->flush(10s).ok());

  std::mutex mu;
  std::vector<SourceMessage> got;
  std::atomic<int> before_commit{0};
  SourceCallbacks cb;
  cb.has_room = [] { return true; };
  cb.on_batch = [&](std::vector<SourceMessage>&& msgs, size_t) {
    std::lock_guard lock(mu);
    for (auto& m : msgs) got.push_back(std::move(m));
  };
  cb.before_commit = [&] {
    before_commit.fetch_add(1);
    return true;
  };
  SourceOptions o;
  o.brokers = broker->bootstrap();
  o.group_id = "reply-headers";
  o.topics = {"requests"};
  o.properties = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
  o.batch = {.max_events = 100, .max_bytes = 1 << 20, .max_age = 5ms};
  o.commit_interval = 50ms;
  auto source = KafkaSource::create(o, cb).value();
  ASSERT_TRUE(source->start().ok());
  ASSERT_TRUE(kingest::testing::eventually(
      [&] {
        std::lock_guard lock(mu);
        return got.size() == 3;
      },
      30s, "three requests read"));
  std::vector<OffsetRef> done;
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].reply_topic, "requests.reply");
    EXPECT_EQ(got[0].reply_correlation_id, "c-1");
    EXPECT_EQ(got[0].reply_partition, 3);
    EXPECT_EQ(got[1].reply_topic, "");
    EXPECT_EQ(got[1].reply_correlation_id, "");
    EXPECT_EQ(got[2].reply_topic, "requests.reply");
    EXPECT_EQ(got[2].reply_partition, -1);
    for (const auto& m : got) done.push_back({m.tp, m.offset, m.epoch});
  }
  EXPECT_EQ(before_commit.load(), 0) << "nothing was done, so nothing was committed";
  EXPECT_EQ(source->tracker().done(done), 3u);
  EXPECT_TRUE(kingest::testing::eventually([&] { return source->commits() > 0; }, 10s, "a commit"));
  EXPECT_GE(before_commit.load(), 1);
  ASSERT_TRUE(source->close().ok());
}

}  // namespace
}  // namespace kingest::kafka
