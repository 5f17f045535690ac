// The bounded Kafka read: every partition from its start to its end, assigned directly (no group
// membership, no commits), in batches.
#include "audit/audit.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"

namespace kingest::audit {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

absl::Status read_bounded(const std::string& brokers, const std::map<std::string, std::string>& properties,
                          const kafka::Offsets& starts, const kafka::Offsets& ends,
                          const std::function<void(std::vector<SourceMessage>)>& sink) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // A group id is required by librdkafka's consumer, but partitions are assigned directly: the
  // group is never joined and nothing is committed.
  std::map<std::string, std::string> conf_items = {{"group.id", "kurrent-ingest-audit"},
                                                   {"queued.min.messages", "200000"},
                                                   {"fetch.max.bytes", "52428800"},
                                                   {"log_level", "3"}};
  for (const auto& [k, v] : properties) conf_items[k] = v;
  conf_items["bootstrap.servers"] = brokers;
  conf_items["enable.auto.commit"] = "false";
  conf_items["enable.auto.offset.store"] = "false";
  conf_items["enable.partition.eof"] = "true";
  for (const auto& [k, v] : conf_items) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("Kafka property ", k, ": ", err));
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) return absl::InvalidArgumentError(err);
  std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> guard(rk, [](rd_kafka_t* h) {
    rd_kafka_consumer_close(h);
    rd_kafka_destroy(h);
  });
  rd_kafka_poll_set_consumer(rk);

  std::map<TopicPartition, int64_t> left;  // partition → its end, for partitions not done yet
  auto* assignment = rd_kafka_topic_partition_list_new(int(ends.size()) + 1);
  for (const auto& [tp, end] : ends) {
    auto s = starts.find(tp);
    int64_t start = s == starts.end() ? RD_KAFKA_OFFSET_BEGINNING : s->second;
    if (s != starts.end() && start >= end) continue;
    if (end <= 0) continue;
    rd_kafka_topic_partition_list_add(assignment, tp.topic.c_str(), tp.partition)->offset = start;
    left[tp] = end;
  }
  if (left.empty()) {
    rd_kafka_topic_partition_list_destroy(assignment);
    return absl::OkStatus();
  }
  rd_kafka_resp_err_t e = rd_kafka_assign(rk, assignment);
  rd_kafka_topic_partition_list_destroy(assignment);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::UnavailableError(absl::StrCat("assign: ", rd_kafka_err2str(e)));

  constexpr size_t kBatch = 8192;
  std::vector<SourceMessage> batch;
  batch.reserve(kBatch);
  auto last_progress = Clock::now();
  // Messages come in batches from the consumer queue: fewer calls into librdkafka per message.
  std::unique_ptr<rd_kafka_queue_t, void (*)(rd_kafka_queue_t*)> queue(rd_kafka_queue_get_consumer(rk),
                                                                       rd_kafka_queue_destroy);
  std::vector<rd_kafka_message_t*> polled(4096);
  // What one message means; an error the read cannot go on from ends it.
  auto handle = [&](rd_kafka_message_t* m) -> absl::Status {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // Compaction or transaction markers can leave the last offsets before the end without a
      // message: reaching the log's end at or past the captured end finishes the partition too.
      if (m->rkt != nullptr) {
        auto it = left.find(TopicPartition{rd_kafka_topic_name(m->rkt), m->partition});
        if (it != left.end() && m->offset >= it->second) left.erase(it);
      }
      return absl::OkStatus();
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::string what = rd_kafka_message_errstr(m);
      if (m->rkt != nullptr)
        what = std::string(rd_kafka_topic_name(m->rkt)) + "[" + std::to_string(m->partition) + "]: " + what;
      if (m->err == RD_KAFKA_RESP_ERR__TRANSPORT || m->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        return absl::OkStatus();
      return absl::UnavailableError("kafka: " + what);
    }
    last_progress = Clock::now();
    TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
    auto it = left.find(tp);
    if (it == left.end() || m->offset >= it->second) return absl::OkStatus();
    SourceMessage msg;
    msg.tp = std::move(tp);
    msg.offset = KafkaOffset{m->offset};
    rd_kafka_timestamp_type_t tst;
    msg.timestamp_ms = rd_kafka_message_timestamp(m, &tst);
    if (m->key != nullptr) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
    msg.assign_value(m->payload != nullptr ? m->payload : "", m->payload != nullptr ? m->len : 0);
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const void* v = nullptr;
      size_t n = 0;
      if (rd_kafka_header_get_last(hdrs, "content-type", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v != nullptr) {
        msg.content_type.assign(static_cast<const char*>(v), n);
      }
    }
    if (m->offset + 1 >= it->second) left.erase(it);
    batch.push_back(std::move(msg));
    if (batch.size() >= kBatch) {
      sink(std::move(batch));
      batch = {};
      batch.reserve(kBatch);
    }
    return absl::OkStatus();
  };
  while (!left.empty()) {
    ssize_t n = rd_kafka_consume_batch_queue(queue.get(), 100, polled.data(), polled.size());
    if (n <= 0) {
      if (!batch.empty()) {
        sink(std::move(batch));
        batch = {};
        batch.reserve(kBatch);
      }
      if (Clock::now() - last_progress > std::chrono::seconds(60)) {
        std::string which;
        for (const auto& [tp, end] : left) which += " " + to_string(tp) + " (end " + std::to_string(end) + ")";
        return absl::DeadlineExceededError("no message from Kafka for 60 s; partitions not read to their end:" + which);
      }
      continue;
    }
    absl::Status failed;
    for (ssize_t i = 0; i < n; ++i) {
      if (failed.ok()) failed = handle(polled[size_t(i)]);
      rd_kafka_message_destroy(polled[size_t(i)]);
    }
    if (!failed.ok()) return failed;
  }
  if (!batch.empty()) sink(std::move(batch));
  return absl::OkStatus();
}

}  // namespace kingest::audit
