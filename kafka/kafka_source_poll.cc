// KafkaSource's polling thread: reads messages into SourceMessages, closes batches on count, bytes
// or age, and between polls pauses, aligns and commits when due.
#include "kafka/kafka_source.h"

#include <librdkafka/rdkafka.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

namespace kingest::kafka {
namespace {

// NestJS ClientKafka's request headers; a reply is awaited only when both topic and id are set.
void read_reply_headers(rd_kafka_headers_t* hdrs, SourceMessage& msg) {
  const void* topic = nullptr;
  const void* id = nullptr;
  size_t topic_n = 0, id_n = 0;
  if (rd_kafka_header_get_last(hdrs, "kafka_replyTopic", &topic, &topic_n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      topic == nullptr || topic_n == 0 ||
      rd_kafka_header_get_last(hdrs, "kafka_correlationId", &id, &id_n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      id == nullptr || id_n == 0) {
    return;
  }
  msg.reply_topic.assign(static_cast<const char*>(topic), topic_n);
  msg.reply_correlation_id.assign(static_cast<const char*>(id), id_n);
  const void* p = nullptr;
  size_t p_n = 0;
  if (rd_kafka_header_get_last(hdrs, "kafka_replyPartition", &p, &p_n) == RD_KAFKA_RESP_ERR_NO_ERROR && p != nullptr) {
    // Sent as decimal text; anything else leaves the partition to the partitioner.
    int32_t partition = 0;
    const char* text = static_cast<const char*>(p);
    auto [end, ec] = std::from_chars(text, text + p_n, partition);
    if (ec == std::errc() && end == text + p_n && partition >= 0) msg.reply_partition = partition;
  }
}

bool is_fatal(rd_kafka_resp_err_t e) {
  switch (e) {
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      return true;
    default:
      return false;
  }
}

}  // namespace

void KafkaSource::emit(Batcher<SourceMessage>::Closed&& batch) {
  // Recorded per batch (one lock), before the batch can complete.
  tracker_.delivered_messages(batch.items);
  callbacks_.on_batch(std::move(batch.items), batch.bytes);
}

void KafkaSource::poll_loop() {
  using Clock = std::chrono::steady_clock;
  auto next_commit = Clock::now() + options_.commit_interval;
  auto next_recommit = Clock::now() + options_.recommit_interval;
  const rd_kafka_topic_t* cached_topic = nullptr;
  int32_t cached_partition = -1;
  TopicPartition cached_tp;
  AssignmentEpoch cached_epoch{0};
  int64_t cached_end = INT64_MAX;
  bool stopped_fetching = false;
  Clock::time_point full_since{};  // when the pipeline became full (epoch: not full)
  int64_t* cached_last_ts = nullptr;  // last_timestamp_ of cached_tp (a std::map node: stable)
  auto next_align = Clock::now();

  while (!closing_.load()) {
    if (!fetching_.load() && !stopped_fetching) {
      stopped_fetching = true;
      if (auto b = batcher_.flush()) emit(std::move(*b));
      set_paused(true);
      std::lock_guard lock(stop_mu_);
      fetch_stopped_ = true;
      stop_cv_.notify_all();
    }
    if (!stopped_fetching) {
      const bool full = callbacks_.has_room && !callbacks_.has_room();
      if (!full) {
        full_since = Clock::time_point{};
        set_paused(false);
      } else if (!paused_) {
        const auto now = Clock::now();
        if (full_since == Clock::time_point{}) full_since = now;
        if (now - full_since < options_.pause_after) {
          // A short stall: leave the messages in librdkafka's queue and look again shortly.
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          if (now >= next_commit) commit_due(now, next_commit, next_recommit);
          continue;
        }
        set_paused(true);
      }
    }

    if (callbacks_.behind_first && !stopped_fetching && Clock::now() >= next_align) {
      next_align = Clock::now() + std::chrono::milliseconds(50);
      const bool over = callbacks_.behind_first();
      if (over || aligning_) align(over);
    }

    // While paused (or stopped) poll briefly: the group protocol still needs us, and commits go on.
    int timeout_ms = (paused_ || stopped_fetching) ? 20 : 5;
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, batcher_.empty() ? timeout_ms : 1);
    auto now = Clock::now();
    if (m != nullptr) {
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && !stopped_fetching) {
        if (m->rkt != cached_topic || m->partition != cached_partition) {
          cached_tp = TopicPartition{rd_kafka_topic_name(m->rkt), m->partition};
          auto it = epochs_.find(cached_tp);
          cached_epoch = it == epochs_.end() ? AssignmentEpoch{0} : it->second;
          cached_topic = m->rkt;
          cached_partition = m->partition;
          cached_last_ts = nullptr;
          auto end = options_.end_at.find(cached_tp);
          cached_end = end == options_.end_at.end() ? INT64_MAX : end->second;
        }
        if (m->offset >= cached_end) {
          pause_at_end(cached_tp);  // past the end of a bounded run: not delivered
          rd_kafka_message_destroy(m);
          continue;
        }
        SourceMessage msg;
        msg.tp = cached_tp;
        msg.offset = KafkaOffset{m->offset};
        msg.epoch = cached_epoch;
        rd_kafka_timestamp_type_t tst;
        msg.timestamp_ms = rd_kafka_message_timestamp(m, &tst);
        if (callbacks_.behind_first) {
          if (cached_last_ts == nullptr) cached_last_ts = &last_timestamp_[cached_tp];
          *cached_last_ts = msg.timestamp_ms;
        }
        if (m->key != nullptr) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
        msg.key_null = m->key == nullptr;
        msg.assign_value(m->payload != nullptr ? m->payload : "", m->payload != nullptr ? m->len : 0);
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          const void* v = nullptr;
          size_t n = 0;
          if (rd_kafka_header_get_last(hdrs, "content-type", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v != nullptr) {
            msg.content_type.assign(static_cast<const char*>(v), n);
          }
          read_reply_headers(hdrs, msg);
        }
        messages_read_.fetch_add(1, std::memory_order_relaxed);
        size_t bytes = msg.byte_size();
        if (auto b = batcher_.add(std::move(msg), bytes, now)) emit(std::move(*b));
      } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->rkt != nullptr) {
          TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
          if (auto end = options_.end_at.find(tp); end != options_.end_at.end() && m->offset >= end->second) {
            mark_read_to_end(tp);
          }
        }
      } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::string what = rd_kafka_message_errstr(m);
        if (m->rkt != nullptr) what = std::string(rd_kafka_topic_name(m->rkt)) + "[" + std::to_string(m->partition) + "]: " + what;
        if (is_fatal(m->err)) {
          spdlog::error("kafka: {}", what);
          if (callbacks_.on_fatal) callbacks_.on_fatal(absl::FailedPreconditionError("kafka: " + what));
        } else {
          spdlog::warn("kafka: {}", what);
        }
      }
      rd_kafka_message_destroy(m);
    }
    if (auto b = batcher_.flush_if_aged(now)) emit(std::move(*b));
    if (now >= next_commit) commit_due(now, next_commit, next_recommit);
  }
  if (auto b = batcher_.flush()) emit(std::move(*b));
  std::lock_guard lock(stop_mu_);
  fetch_stopped_ = true;
  stop_cv_.notify_all();
}

}  // namespace kingest::kafka
