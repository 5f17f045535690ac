#include "kafka/dead_letter_topic.h"

#include <chrono>

namespace kingest::kafka {

absl::StatusOr<std::unique_ptr<KafkaDeadLetterTopic>> KafkaDeadLetterTopic::open(
    const std::string& brokers, const std::string& topic, const std::map<std::string, std::string>& properties) {
  if (topic.empty()) return absl::InvalidArgumentError("--dlq-topic: empty topic name");
  std::map<std::string, std::string> props = {{"acks", "all"}, {"linger.ms", "0"}};
  for (const auto& [k, v] : properties) props[k] = v;
  auto producer = Producer::create(brokers, props);
  if (!producer.ok()) return producer.status();
  std::unique_ptr<KafkaDeadLetterTopic> t(new KafkaDeadLetterTopic());
  t->producer_ = std::move(*producer);
  t->topic_ = topic;
  return t;
}

KafkaDeadLetterTopic::~KafkaDeadLetterTopic() = default;

absl::Status KafkaDeadLetterTopic::write(const std::vector<DeadLetter>& letters) {
  if (letters.empty()) return absl::OkStatus();
  std::lock_guard lock(mu_);
  const uint64_t failed_before = producer_->failed();
  for (const auto& d : letters) {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"dlq-reason", d.reason},
        {"dlq-detail", d.detail},
        {"dlq-source-topic", d.topic},
        {"dlq-source-partition", std::to_string(d.partition)},
        {"dlq-source-offset", std::to_string(d.offset)},
        {"dlq-source-timestamp", std::to_string(d.timestamp_ms)},
    };
    if (!d.stream.empty()) headers.emplace_back("dlq-stream", d.stream);
    // The original message as it was: no key when it had none, its content type kept.
    const std::string_view key = d.key_null ? std::string_view() : std::string_view(d.key);
    if (auto s = producer_->produce(topic_, key, d.value, d.content_type, headers); !s.ok()) return s;
  }
  if (auto s = producer_->flush(std::chrono::seconds(30)); !s.ok()) return s;
  if (producer_->failed() != failed_before) {
    return absl::UnavailableError("dead-letter topic " + topic_ + ": " + producer_->last_error());
  }
  return absl::OkStatus();
}

}  // namespace kingest::kafka
