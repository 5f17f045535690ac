// Dead letters to a Kafka topic (`--dlq-topic`): the message keeps the original key and bytes;
// headers carry `dlq-reason`, `dlq-detail`, `dlq-source-topic`, `dlq-source-partition`,
// `dlq-source-offset`, `dlq-stream` (when known) and `dlq-source-timestamp`. `write` returns once
// the broker acknowledged every record (acks=all), so an offset never counts as done before its
// dead letter is safe.
//
// Threads: `write` from any thread (serialized). Lifecycle: owned by the command that wires the
// engine; outlives it.
//
//   auto dlq = kafka::KafkaDeadLetterTopic::open(brokers, "ingest-dlq").value();
//   dlq->write({DeadLetter{.reason = "decode-error", ...}});
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dead_letter.h"
#include "kafka/producer.h"

namespace kingest::kafka {

class KafkaDeadLetterTopic final : public DeadLetterSink {
 public:
  static absl::StatusOr<std::unique_ptr<KafkaDeadLetterTopic>> open(
      const std::string& brokers, const std::string& topic, const std::map<std::string, std::string>& properties = {});
  ~KafkaDeadLetterTopic() override;
  absl::Status write(const std::vector<DeadLetter>& letters) override;
  [[nodiscard]] std::string describe() const override { return "kafka topic " + topic_; }

 private:
  KafkaDeadLetterTopic() = default;
  std::mutex mu_;
  std::unique_ptr<Producer> producer_;
  std::string topic_;
};

}  // namespace kingest::kafka
