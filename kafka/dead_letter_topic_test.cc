#include "kafka/dead_letter_topic.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <map>

#include "kafka/embedded_broker.h"

namespace kingest::kafka {
namespace {

// Reads every message of a one-partition topic with its headers.
std::vector<std::pair<std::string, std::map<std::string, std::string>>> read_topic(const std::string& brokers,
                                                                                  const std::string& topic) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "dlq-test-reader", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  rd_kafka_poll_set_consumer(rk);
  auto* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> out;
  for (int i = 0; i < 100; ++i) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) continue;
    bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::map<std::string, std::string> headers;
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* value;
        size_t size;
        for (size_t h = 0; rd_kafka_header_get_all(hdrs, h, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++h) {
          headers[name] = std::string(static_cast<const char*>(value), size);
        }
      }
      out.emplace_back(std::string(static_cast<const char*>(m->payload), m->len), headers);
    }
    rd_kafka_message_destroy(m);
    if (eof) break;
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

TEST(KafkaDeadLetterTopic, WritesTheOriginalBytesWithReasonAndSourceInHeaders) {
  auto broker = EmbeddedBroker::start().value();
  ASSERT_TRUE(broker->create_topic("ingest-dlq", 1).ok());
  auto topic = KafkaDeadLetterTopic::open(broker->bootstrap(), "ingest-dlq");
  ASSERT_TRUE(topic.ok()) << topic.status();
  DeadLetter a{"decode-error", "aggregateId: missing", "task-events", 3, 41, 1700000000000, "k1", "{bad", ""};
  DeadLetter b{"revision-conflict", "revision 0 holds another event", "task-events", 3, 42, -1, "k2",
               std::string("\x00\x01", 2), "Task-k2"};
  ASSERT_TRUE((*topic)->write({a, b}).ok());
  auto got = read_topic(broker->bootstrap(), "ingest-dlq");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, "{bad");
  EXPECT_EQ(got[0].second["dlq-reason"], "decode-error");
  EXPECT_EQ(got[0].second["dlq-detail"], "aggregateId: missing");
  EXPECT_EQ(got[0].second["dlq-source-topic"], "task-events");
  EXPECT_EQ(got[0].second["dlq-source-partition"], "3");
  EXPECT_EQ(got[0].second["dlq-source-offset"], "41");
  EXPECT_EQ(got[0].second.count("dlq-stream"), 0u);
  EXPECT_EQ(got[1].first, std::string("\x00\x01", 2));
  EXPECT_EQ(got[1].second["dlq-reason"], "revision-conflict");
  EXPECT_EQ(got[1].second["dlq-stream"], "Task-k2");
  EXPECT_EQ((*topic)->describe(), "kafka topic ingest-dlq");
}

}  // namespace
}  // namespace kingest::kafka
