#include "kafka/dead_letter_topic.h"

#include <gtest/gtest.h>

#include "kafka/embedded_broker.h"
#include "kafka/testing/read_topic.h"

namespace kingest::kafka {
namespace {

TEST(KafkaDeadLetterTopic, WritesTheOriginalBytesWithReasonAndSourceInHeaders) {
  auto broker = EmbeddedBroker::start().value();
  ASSERT_TRUE(broker->create_topic("ingest-dlq", 1).ok());
  auto topic = KafkaDeadLetterTopic::open(broker->bootstrap(), "ingest-dlq");
  ASSERT_TRUE(topic.ok()) << topic.status();
  DeadLetter a{"decode-error", "aggregateId: missing", "task-events", 3, 41, 1700000000000, "k1", "{bad", ""};
  DeadLetter b{"revision-conflict", "revision 0 holds another event", "task-events", 3, 42, -1, "k2",
               std::string("\x00\x01", 2), "Task-k2"};
  ASSERT_TRUE((*topic)->write({a, b}).ok());
  auto got = testing::read_topic(broker->bootstrap(), "ingest-dlq", 1, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].value, "{bad");
  EXPECT_EQ(got[0].header("dlq-reason"), "decode-error");
  EXPECT_EQ(got[0].header("dlq-detail"), "aggregateId: missing");
  EXPECT_EQ(got[0].header("dlq-source-topic"), "task-events");
  EXPECT_EQ(got[0].header("dlq-source-partition"), "3");
  EXPECT_EQ(got[0].header("dlq-source-offset"), "41");
  EXPECT_EQ(got[0].header("dlq-stream"), std::nullopt);
  EXPECT_EQ(got[1].value, std::string("\x00\x01", 2));
  EXPECT_EQ(got[1].header("dlq-reason"), "revision-conflict");
  EXPECT_EQ(got[1].header("dlq-stream"), "Task-k2");
  EXPECT_EQ((*topic)->describe(), "kafka topic ingest-dlq");
}

}  // namespace
}  // namespace kingest::kafka
