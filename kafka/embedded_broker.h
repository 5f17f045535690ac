// The embedded Kafka: librdkafka's mock cluster, speaking the real Kafka protocol on loopback, so
// any client (librdkafka, kcat, kafkajs) can connect to `bootstrap()`.
//
// Owner: the demo, the `broker` command and tests. Threads: create topics from one thread; the
// cluster runs on librdkafka's own threads. Lifecycle: start → create_topic → ... → destruction
// stops the cluster and drops its data.
//
// Mock facts that callers must respect (docs/design.md "The embedded broker"): each partition keeps only ~5 MiB or
// 100,000 message sets (older data is dropped from the head, silently), offset-by-time lookups
// return -1, and topics are created here (the mock has no CreateTopics).
//
//   auto broker = EmbeddedBroker::start().value();
//   broker->create_topic("system-events", 8);
//   connect(broker->bootstrap());
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace kingest::kafka {

class EmbeddedBroker {
 public:
  static absl::StatusOr<std::unique_ptr<EmbeddedBroker>> start(int broker_count = 1);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  absl::Status create_topic(const std::string& topic, int partitions);
  [[nodiscard]] const std::string& bootstrap() const { return bootstrap_; }

 private:
  EmbeddedBroker() = default;
  rd_kafka_s* handle_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::string bootstrap_;
};

}  // namespace kingest::kafka
