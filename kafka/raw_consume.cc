#include "kafka/raw_consume.h"
#include "kafka/client_log.h"

#include <librdkafka/rdkafka.h>

#include <memory>

namespace kingest::kafka {

absl::StatusOr<RawConsumeResult> raw_consume(const std::string& brokers, const std::vector<std::string>& topics,
                                             uint64_t expected, std::chrono::milliseconds timeout) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  log_through_spdlog(conf);
  for (auto [k, v] : {std::pair{"bootstrap.servers", brokers.c_str()}, {"group.id", "kurrent-ingest-raw"},
                      {"enable.auto.commit", "false"}, {"enable.partition.eof", "true"}, {"queued.min.messages", "200000"},
                      {"fetch.max.bytes", "52428800"}, {"log_level", "3"}}) {
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) return absl::InvalidArgumentError(err);
  std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> guard(rk, [](rd_kafka_t* h) {
    rd_kafka_consumer_close(h);
    rd_kafka_destroy(h);
  });
  rd_kafka_poll_set_consumer(rk);

  auto* assignment = rd_kafka_topic_partition_list_new(16);
  for (const auto& topic : topics) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(assignment);
      return absl::UnavailableError("metadata for " + topic + ": " + rd_kafka_err2str(e));
    }
    for (int i = 0; i < md->topic_cnt; ++i) {
      for (int p = 0; p < md->topics[i].partition_cnt; ++p) {
        rd_kafka_topic_partition_list_add(assignment, topic.c_str(), md->topics[i].partitions[p].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
      }
    }
    rd_kafka_metadata_destroy(md);
  }
  const int partitions = assignment->cnt;
  rd_kafka_assign(rk, assignment);
  rd_kafka_topic_partition_list_destroy(assignment);

  RawConsumeResult r;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::chrono::steady_clock::time_point first{}, last{};
  int at_end = 0;  // partitions that reached their end (data is fully produced before this runs)
  while (r.messages < expected && at_end < partitions && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++at_end;
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (r.messages == 0) first = std::chrono::steady_clock::now();
      ++r.messages;
      r.bytes += m->len;
      last = std::chrono::steady_clock::now();
    }
    rd_kafka_message_destroy(m);
  }
  r.seconds = std::chrono::duration<double>(last - first).count();
  return r;
}

}  // namespace kingest::kafka
