// The values that travel through the pipeline: a message as read from Kafka, and the domain event a
// codec decodes from it. Both own their bytes; a batch moves them, never copies them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/short_string.h"
#include "core/types.h"

namespace kingest {

// Extra bytes reserved after a message value so that simdjson can parse it in place.
inline constexpr size_t kValuePadding = 64;

// One Kafka message, copied out of librdkafka's buffer by the polling thread.
struct SourceMessage {
  TopicPartition tp;
  KafkaOffset offset{0};
  AssignmentEpoch epoch{0};
  int64_t timestamp_ms = -1;     // Kafka message timestamp, -1 when absent
  ShortString key;
  std::string value;             // capacity() >= size() + kValuePadding (see assign_value)
  ShortString content_type;      // the `content-type` header, empty when absent
  bool key_null = false;         // the message has no key (`key` is then empty)
  // Request/reply (NestJS ClientKafka `send()`): the headers `kafka_replyTopic`,
  // `kafka_correlationId` and `kafka_replyPartition` (-1 when absent). Kept only when both the
  // topic and the correlation id are present, which is when an answer is awaited.
  std::string reply_topic;
  std::string reply_correlation_id;
  int32_t reply_partition = -1;

  void assign_value(const void* data, size_t size) {
    value.reserve(size + kValuePadding);
    value.assign(static_cast<const char*>(data), size);
  }
  [[nodiscard]] size_t byte_size() const { return key.size() + value.size() + tp.topic.size() + 32; }
};

// A decoded domain event in the seed's envelope (NestJS DomainEvent serialized with JSON.stringify).
// Optional fields are empty strings when the envelope does not carry them. The short texts are kept
// in the event itself (core/short_string.h): decoding allocates for the payload only.
struct DomainEvent {
  ShortString event_id;          // as sent; the pipeline uses it when it is a UUID
  ShortString event_type;        // required
  ShortString aggregate_id;      // required
  ShortString aggregate_type;    // required
  int64_t aggregate_version = 0; // required, integer >= 0 (the base check is the pipeline's)
  ShortString correlation_id;
  ShortString causation_id;
  ShortString occurred_at;       // ISO 8601 UTC text; numeric epoch-ms inputs are rendered as ISO 8601
  std::string payload;           // the event data bytes (a JSON object's text for JSON payloads)
  ShortString content_type = "application/json";
};

// Why a message could not be decoded; travels as a value, never as an exception.
struct DecodeError {
  std::string reason;
};

}  // namespace kingest
