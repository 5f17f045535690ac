#include "pipeline/dead_letter.h"

#include "kafka/embedded_broker.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <librdkafka/rdkafka.h>

#include <filesystem>
#include <map>
#include <fstream>

namespace kingest::pipeline {
namespace {

TEST(Base64, EncodesAllPaddingCases) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode(std::string("\xff\x00\x10", 3)), "/wAQ");
}

TEST(NdjsonDeadLetterFile, AppendsOneParsableLinePerLetterWithTheOriginalBytes) {
  auto dir = std::filesystem::temp_directory_path() / ("ki-dlq-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "dlq.ndjson").string();
  std::filesystem::remove(path);
  {
    auto f = NdjsonDeadLetterFile::open(path).value();
    DeadLetter d{reason::kDecodeError, "aggregateId: missing", "task-events", 2, 17, 1700000000000, "k",
                 std::string("{\"x\":\xff", 6), ""};
    ASSERT_TRUE(f->write({d, d}).ok());
  }
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  simdjson::dom::parser p;
  while (std::getline(in, line)) {
    ++lines;
    auto doc = p.parse(line);
    ASSERT_FALSE(doc.error()) << line;
    EXPECT_EQ(std::string_view(doc["reason"]), "decode-error");
    EXPECT_EQ(std::string_view(doc["topic"]), "task-events");
    EXPECT_EQ(int64_t(doc["partition"]), 2);
    EXPECT_EQ(int64_t(doc["offset"]), 17);
    EXPECT_EQ(std::string_view(doc["value_base64"]), base64_encode(std::string("{\"x\":\xff", 6)));
  }
  EXPECT_EQ(lines, 2);
  std::filesystem::remove_all(dir);
}

TEST(NdjsonDeadLetterFile, OpenFailureNamesThePath) {
  auto f = NdjsonDeadLetterFile::open("/nonexistent-dir/x.ndjson");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("/nonexistent-dir/x.ndjson"), std::string::npos);
}

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
  auto broker = kafka::EmbeddedBroker::start().value();
  ASSERT_TRUE(broker->create_topic("ingest-dlq", 1).ok());
  auto topic = KafkaDeadLetterTopic::open(broker->bootstrap(), "ingest-dlq");
  ASSERT_TRUE(topic.ok()) << topic.status();
  DeadLetter a{reason::kDecodeError, "aggregateId: missing", "task-events", 3, 41, 1700000000000, "k1", "{bad", ""};
  DeadLetter b{reason::kRevisionConflict, "revision 0 holds another event", "task-events", 3, 42, -1, "k2",
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

TEST(TeeDeadLetters, WritesToEverySinkAndStopsAtTheFirstFailure) {
  struct Recorder final : DeadLetterSink {
    explicit Recorder(bool fail) : fail(fail) {}
    absl::Status write(const std::vector<DeadLetter>& l) override {
      seen += l.size();
      return fail ? absl::UnavailableError("disk full") : absl::OkStatus();
    }
    std::string describe() const override { return "recorder"; }
    bool fail;
    size_t seen = 0;
  };
  Recorder ok1(false), bad(true), ok2(false);
  TeeDeadLetters both({&ok1, &ok2});
  DeadLetter d{reason::kDecodeError, "x", "t", 0, 0, -1, "", "v", ""};
  EXPECT_TRUE(both.write({d, d}).ok());
  EXPECT_EQ(ok1.seen, 2u);
  EXPECT_EQ(ok2.seen, 2u);
  TeeDeadLetters failing({&bad, &ok1});
  EXPECT_FALSE(failing.write({d}).ok());
  EXPECT_EQ(ok1.seen, 2u) << "nothing after a failed sink";
  EXPECT_EQ(both.describe(), "recorder and recorder");
}

}  // namespace
}  // namespace kingest::pipeline
