#include "kafka/embedded_broker.h"
#include "kafka/client_log.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace kingest::kafka {

absl::StatusOr<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::start(int broker_count) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  log_through_spdlog(conf);
  // The handle only owns the mock cluster; it never produces. Keep its logs quiet.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) return absl::InternalError(std::string("embedded broker: ") + err);
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, broker_count);
  if (cluster == nullptr) {
    rd_kafka_destroy(rk);
    return absl::InternalError("embedded broker: could not start librdkafka's mock cluster");
  }
  std::unique_ptr<EmbeddedBroker> b(new EmbeddedBroker());
  b->handle_ = rk;
  b->cluster_ = cluster;
  b->bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster);
  return b;
}

EmbeddedBroker::~EmbeddedBroker() {
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  if (handle_ != nullptr) rd_kafka_destroy(handle_);
}

absl::Status EmbeddedBroker::create_topic(const std::string& topic, int partitions) {
  if (partitions < 1) return absl::InvalidArgumentError("partitions must be at least 1");
  rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError("create topic " + topic + ": " + rd_kafka_err2str(e));
  }
  return absl::OkStatus();
}

}  // namespace kingest::kafka
