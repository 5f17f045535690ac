// Replies to request/reply messages in NestJS's Kafka wire format, so that a publisher calling
// ClientKafka `send()` gets the answer a `@MessagePattern` handler would give.
//
// A message carrying `kafka_replyTopic` and `kafka_correlationId` (SourceMessage::reply_*) gets
// one reply on that topic (partition `kafka_replyPartition` when given), key null, with headers
// `kafka_correlationId` and `kafka_nest-is-disposed` (one zero byte):
//   written or already written: value {"success":true,"eventId":"<the stored event's id>"}
//   dead-lettered:              value null and header `kafka_nest-err`
//                               {"status":"error","message":"<reason>: <detail>"} (what NestJS
//                               sends for an RpcException; the caller's promise rejects with it)
//
// Owner: one ingest run. Threads: `reply_*` from any thread (engine threads), never blocking
// unless librdkafka's queue (1,000,000 replies) is full; `flush` from the thread that commits
// offsets, before each commit, so a reply always reaches Kafka before the offset that covers it
// (a crash between the two may send it twice, never lose it). One producer batches all replies.
// Lifecycle: create → reply_*... / flush... → destruction (flushes what is left, bounded).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/domain_event.h"
#include "core/uuid.h"

struct rd_kafka_s;

namespace kingest::kafka {

struct ReplierStats {
  uint64_t sent = 0;       // replies queued
  uint64_t delivered = 0;  // acknowledged by the broker
  uint64_t failed = 0;     // given up by librdkafka (e.g. the reply topic does not exist)
  // From the request's Kafka timestamp to the broker's acknowledgement of the reply (wall clock,
  // so only meaningful when producer and broker clocks agree, as on one machine); 0 when none.
  double latency_p50_ms = 0;
  double latency_p99_ms = 0;
};

class Replier {
 public:
  // `properties`: librdkafka producer properties (e.g. the security settings of the consumer).
  static absl::StatusOr<std::unique_ptr<Replier>> create(const std::string& brokers,
                                                         const std::map<std::string, std::string>& properties = {});
  ~Replier();
  Replier(const Replier&) = delete;
  Replier& operator=(const Replier&) = delete;

  static bool wants_reply(const SourceMessage& m) { return !m.reply_topic.empty() && !m.reply_correlation_id.empty(); }

  // The event is durably written, or was already (a retry answers with the same id).
  void reply_success(const SourceMessage& m, const Uuid& event_id);
  // The message was dead-lettered: the caller's promise rejects with this reason.
  void reply_error(const SourceMessage& m, std::string_view reason, std::string_view detail);

  // Waits until every queued reply is acknowledged or failed (failures are counted and logged,
  // not retried further: librdkafka already retried for message.timeout.ms).
  absl::Status flush(std::chrono::milliseconds timeout);
  [[nodiscard]] ReplierStats stats() const;

 private:
  Replier() = default;
  void produce(const SourceMessage& m, const std::string* value, std::string_view error);
  static void on_delivery(rd_kafka_s* rk, const void* msg, void* opaque);

  rd_kafka_s* rk_ = nullptr;
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> failed_{0};
  mutable std::mutex latency_mu_;
  std::vector<float> latency_ms_;  // one per delivered reply whose request had a timestamp
};

}  // namespace kingest::kafka
