// KafkaSource's polling thread: takes messages from the consumer queue a batch at a time, copies
// them into SourceMessages, closes batches on count, bytes or age, and between takes pauses, aligns
// and commits when due.
#include "kafka/kafka_source.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <sys/types.h>

#include <spdlog/spdlog.h>

namespace kingest::kafka {
namespace {

// The headers the source keeps, in one walk over the message's headers (the last of a name wins,
// as with rd_kafka_header_get_last): `content-type`, and NestJS ClientKafka's request headers, of
// which a reply is awaited only when both topic and id are set.
void read_headers(rd_kafka_headers_t* hdrs, SourceMessage& msg) {
  std::string_view content_type, reply_topic, correlation_id, reply_partition;
  bool has_content_type = false, has_reply_partition = false;
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
    const std::string_view n(name);
    const std::string_view v =
        value != nullptr ? std::string_view(static_cast<const char*>(value), size) : std::string_view();
    if (n == "content-type") {
      // A header without a value counts as absent, as before.
      has_content_type = value != nullptr;
      content_type = v;
    } else if (n.starts_with("kafka_")) {
      if (n == "kafka_replyTopic") {
        reply_topic = value != nullptr ? v : std::string_view();
      } else if (n == "kafka_correlationId") {
        correlation_id = value != nullptr ? v : std::string_view();
      } else if (n == "kafka_replyPartition") {
        has_reply_partition = value != nullptr;
        reply_partition = v;
      }
    }
  }
  if (has_content_type) msg.content_type.assign(content_type);
  if (reply_topic.empty() || correlation_id.empty()) return;
  msg.reply_topic.assign(reply_topic);
  msg.reply_correlation_id.assign(correlation_id);
  if (has_reply_partition) {
    // Sent as decimal text; anything else leaves the partition to the partitioner.
    int32_t partition = 0;
    const char* text = reply_partition.data();
    auto [end, ec] = std::from_chars(text, text + reply_partition.size(), partition);
    if (ec == std::errc() && end == text + reply_partition.size() && partition >= 0) msg.reply_partition = partition;
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
  tracker_.delivered_runs(batch.items, runs_);
  runs_.clear();
  callbacks_.on_batch(std::move(batch.items), batch.bytes);
}

void KafkaSource::on_rebalance_event(int err, void* partitions) {
  if (!in_take_) {
    handle_rebalance(err, partitions);
    return;
  }
  // Inside a take the messages taken before this event are not handed over yet: handling it now
  // would revoke their partitions before they are delivered (and librdkafka would go on filling
  // the take behind it). Assigning later, from this thread, is what librdkafka's rebalance event
  // API does too; the group waits for it.
  deferred_.emplace_back(err,
                         rd_kafka_topic_partition_list_copy(static_cast<rd_kafka_topic_partition_list_t*>(partitions)));
}

void KafkaSource::take(size_t want, int timeout_ms) {
  if (taken_head_ == taken_.size()) {
    taken_.clear();
    taken_head_ = 0;
  }
  if (take_room_size_ < want) {
    take_room_.reset(new rd_kafka_message_t*[want]);  // NOLINT(cppcoreguidelines-owning-memory): uninitialised on purpose
    take_room_size_ = want;
  }
  rd_kafka_message_t** room = take_room_.get();
  in_take_ = true;
  // What is queued now, without waiting; when nothing is, wait up to the timeout for one message
  // (as one poll would) and then take whatever came with it. (librdkafka before 2.1 advances a
  // partition's position past messages that a take then drops at a version barrier, which a
  // pause, resume, seek or (un)assign made during the take puts in the queue: every such call
  // here is made on this thread between takes, the rebalance's included, so none falls inside.)
  ssize_t n = rd_kafka_consume_batch_queue(queue_, 0, room, want);
  if (n == 0) {
    n = rd_kafka_consume_batch_queue(queue_, timeout_ms, room, 1);
    if (n == 1 && want > 1) {
      const ssize_t more = rd_kafka_consume_batch_queue(queue_, 0, room + 1, want - 1);
      if (more > 0) n += more;
    }
  }
  in_take_ = false;
  if (n > 0) taken_.insert(taken_.end(), room, room + n);
}

void KafkaSource::wake_fetchers_if_draining(size_t took, size_t took_bytes) {
  // librdkafka stops fetching once a fetch leaves its queue at or over either limit; only this
  // thread takes from the queue, so what it held before this take is what the fetchers last saw.
  // Once it is under half of both, wake them (a live tail's queue never nears the limits: no
  // wake-ups). Messages are counted at the size of this take's average.
  const size_t queued = rd_kafka_queue_length(queue_);
  if (took > 0) queued_message_bytes_ = took_bytes / took;
  const size_t before = took + queued;
  const size_t before_bytes = took_bytes + queued * queued_message_bytes_;
  if (before * 4 >= queue_limit_messages_ * 3 || before_bytes * 4 >= queue_limit_bytes_ * 3) fetchers_may_wait_ = true;
  if (!fetchers_may_wait_ || queued * 2 > queue_limit_messages_ || queued * queued_message_bytes_ * 2 > queue_limit_bytes_) {
    return;
  }
  fetchers_may_wait_ = false;
  if (waker_) waker_->wake();
}

void KafkaSource::release_taken() {
  for (size_t i = taken_head_; i < taken_.size(); ++i) rd_kafka_message_destroy(taken_[i]);
  taken_.clear();
  taken_head_ = 0;
}

KafkaSource::Cursor& KafkaSource::cursor(const rd_kafka_message_t* m) {
  if (last_cursor_ < cursors_.size()) {
    Cursor& c = cursors_[last_cursor_];
    if (c.rkt == m->rkt && c.partition == m->partition) return c;
  }
  for (size_t i = 0; i < cursors_.size(); ++i) {
    if (cursors_[i].rkt == m->rkt && cursors_[i].partition == m->partition) {
      last_cursor_ = i;
      return cursors_[i];
    }
  }
  Cursor c;
  c.rkt = m->rkt;
  c.partition = m->partition;
  c.tp = TopicPartition{rd_kafka_topic_name(m->rkt), m->partition};
  auto it = epochs_.find(c.tp);
  c.epoch = it == epochs_.end() ? AssignmentEpoch{0} : it->second;
  auto end = options_.end_at.find(c.tp);
  c.end = end == options_.end_at.end() ? INT64_MAX : end->second;
  if (callbacks_.behind_first) c.last_timestamp = &last_timestamp_[c.tp];
  cursors_.push_back(std::move(c));
  last_cursor_ = cursors_.size() - 1;
  return cursors_.back();
}

bool KafkaSource::handle_taken(rd_kafka_message_t* m, bool stopped_fetching,
                               std::chrono::steady_clock::time_point now) {
  bool emitted = false;
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && !stopped_fetching) {
    Cursor& c = cursor(m);
    if (m->offset >= c.end) {
      pause_at_end(c.tp);  // past the end of a bounded run: not delivered
      rd_kafka_message_destroy(m);
      return false;
    }
    // Built in its place in the open batch (a SourceMessage is seven strings: moving it twice
    // per message showed in the profile).
    SourceMessage& msg = batcher_.next(now);
    msg.tp = c.tp;
    msg.offset = KafkaOffset{m->offset};
    msg.epoch = c.epoch;
    rd_kafka_timestamp_type_t tst;
    msg.timestamp_ms = rd_kafka_message_timestamp(m, &tst);
    if (c.last_timestamp != nullptr) *c.last_timestamp = msg.timestamp_ms;
    if (m->key != nullptr) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
    msg.key_null = m->key == nullptr;
    msg.assign_value(m->payload != nullptr ? m->payload : "", m->payload != nullptr ? m->len : 0);
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) read_headers(hdrs, msg);
    messages_read_.fetch_add(1, std::memory_order_relaxed);
    // The open batch's runs of one partition and epoch, for the tracker.
    if (runs_.empty() || run_rkt_ != c.rkt || run_partition_ != c.partition || run_epoch_ != c.epoch) {
      runs_.push_back(0);
      run_rkt_ = c.rkt;
      run_partition_ = c.partition;
      run_epoch_ = c.epoch;
    }
    ++runs_.back();
    const size_t bytes = msg.byte_size();
    largest_since_take_ = std::max(largest_since_take_, bytes);
    if (auto b = batcher_.added(bytes)) {
      emit(std::move(*b));
      emitted = true;
    }
  } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (m->rkt != nullptr) {
      TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
      if (auto end = options_.end_at.find(tp); end != options_.end_at.end() && m->offset >= end->second) {
        mark_read_to_end(tp);
      }
    }
  } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::string what = rd_kafka_message_errstr(m);
    if (m->rkt != nullptr)
      what = std::string(rd_kafka_topic_name(m->rkt)) + "[" + std::to_string(m->partition) + "]: " + what;
    if (is_fatal(m->err)) {
      spdlog::error("kafka: {}", what);
      if (callbacks_.on_fatal) callbacks_.on_fatal(absl::FailedPreconditionError("kafka: " + what));
    } else {
      spdlog::warn("kafka: {}", what);
    }
  }
  rd_kafka_message_destroy(m);
  return emitted;
}

bool KafkaSource::hand_over(bool stopped_fetching) {
  const auto now = std::chrono::steady_clock::now();
  while (taken_head_ < taken_.size()) {
    rd_kafka_message_t* m = taken_[taken_head_++];
    if (handle_taken(m, stopped_fetching, now)) return true;
  }
  return false;
}

void KafkaSource::handle_errors_now() {
  size_t kept = taken_head_;
  for (size_t i = taken_head_; i < taken_.size(); ++i) {
    rd_kafka_message_t* m = taken_[i];
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      (void)handle_taken(m, /*stopped_fetching=*/false, std::chrono::steady_clock::now());
    } else {
      taken_[kept++] = m;
    }
  }
  taken_.resize(kept);
}

void KafkaSource::run_deferred_rebalances(bool can_hand_over, bool stopped_fetching) {
  auto deferred = std::move(deferred_);
  deferred_.clear();
  for (auto& [err, parts] : deferred) {
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      // What was taken before the revocation is delivered first, as long as the budget has room;
      // one poll at a time would have delivered it before the rebalance too.
      while (can_hand_over && taken_head_ < taken_.size()) {
        if (!hand_over(stopped_fetching) || (callbacks_.has_room && !callbacks_.has_room())) break;
      }
      std::vector<rd_kafka_message_t*> kept;
      for (size_t i = taken_head_; i < taken_.size(); ++i) {
        rd_kafka_message_t* m = taken_[i];
        bool revoked = false;
        for (int j = 0; j < parts->cnt && m->rkt != nullptr; ++j) {
          revoked = revoked || (m->partition == parts->elems[j].partition &&
                                std::strcmp(rd_kafka_topic_name(m->rkt), parts->elems[j].topic) == 0);
        }
        if (revoked) {
          rd_kafka_message_destroy(m);
        } else {
          kept.push_back(m);
        }
      }
      taken_ = std::move(kept);
      taken_head_ = 0;
    }
    handle_rebalance(err, parts);
    rd_kafka_topic_partition_list_destroy(parts);
  }
}

void KafkaSource::poll_loop() {
  using Clock = std::chrono::steady_clock;
  auto next_commit = Clock::now() + options_.commit_interval;
  auto next_recommit = Clock::now() + options_.recommit_interval;
  bool stopped_fetching = false;
  Clock::time_point full_since{};  // when the pipeline became full (epoch: not full)
  auto next_align = Clock::now();
  queue_ = rd_kafka_queue_get_consumer(rk_);
  const BatchLimits& limits = batcher_.limits();
  taken_.reserve(std::max<size_t>(limits.max_events, 1));

  while (!closing_.load()) {
    if (!fetching_.load() && !stopped_fetching) {
      stopped_fetching = true;
      if (auto b = batcher_.flush()) emit(std::move(*b));
      // Taken but not handed over: never delivered, so never committed; the next run reads them.
      release_taken();
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
          // A short stall: leave the messages in librdkafka's queue and look again when a batch
          // completes (or shortly, so commits stay on time).
          if (callbacks_.wait_for_room) {
            (void)callbacks_.wait_for_room(std::chrono::milliseconds(5));
          } else {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
          }
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

    const bool can_hand_over = !stopped_fetching && !paused_;
    if (!can_hand_over || taken_head_ == taken_.size()) {
      // Up to what the open batch can still take: by count, and by bytes at the largest message
      // of the last take, so that a batch closes on the last message taken and the budget is
      // asked again before more are taken. (A larger message can still close it earlier; the
      // rest then waits in `taken_` until the budget has room.)
      size_t want = limits.max_events > batcher_.size() ? limits.max_events - batcher_.size() : 1;
      if (largest_since_take_ > 0) largest_message_ = largest_since_take_;
      largest_since_take_ = 0;
      if (largest_message_ > 0) {
        const size_t bytes_left = limits.max_bytes > batcher_.bytes() ? limits.max_bytes - batcher_.bytes() : 0;
        want = std::min(want, std::max<size_t>(1, bytes_left / largest_message_));
      }
      // While paused (or stopped) wait longer: the group protocol still needs us, and commits go on.
      const int timeout_ms = (paused_ || stopped_fetching) ? 20 : 5;
      const size_t before = taken_.size();
      take(want, batcher_.empty() ? timeout_ms : 1);
      if (can_hand_over) {
        size_t bytes = 0;
        for (size_t i = before; i < taken_.size(); ++i) bytes += taken_[i]->len + taken_[i]->key_len;
        wake_fetchers_if_draining(taken_.size() - before, bytes);
      }
      if (!deferred_.empty()) run_deferred_rebalances(can_hand_over, stopped_fetching);
    }
    if (can_hand_over || stopped_fetching) {
      (void)hand_over(stopped_fetching);
    } else {
      // Paused with messages waiting for room: errors are not held back behind them (a fatal one
      // must stop the run now, not once the pipeline has drained); end-of-partition events stay
      // in order behind the messages before them.
      handle_errors_now();
    }
    const auto now = Clock::now();
    if (auto b = batcher_.flush_if_aged(now)) emit(std::move(*b));
    if (now >= next_commit) commit_due(now, next_commit, next_recommit);
  }
  if (auto b = batcher_.flush()) emit(std::move(*b));
  release_taken();
  for (auto& [err, parts] : deferred_) rd_kafka_topic_partition_list_destroy(parts);
  deferred_.clear();
  rd_kafka_queue_destroy(queue_);
  queue_ = nullptr;
  std::lock_guard lock(stop_mu_);
  fetch_stopped_ = true;
  stop_cv_.notify_all();
}

}  // namespace kingest::kafka
