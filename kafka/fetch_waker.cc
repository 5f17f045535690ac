// FetchWaker: see fetch_waker.h.
#include "kafka/fetch_waker.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>

#include <utility>

#include <spdlog/spdlog.h>

namespace kingest::kafka {

FetchWaker::FetchWaker(rd_kafka_s* rk, std::function<std::vector<TopicPartition>()> partitions,
                       std::chrono::milliseconds min_interval)
    : rk_(rk), partitions_(std::move(partitions)), min_interval_(min_interval) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ki-kafka-wake");
    loop();
  });
}

FetchWaker::~FetchWaker() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  spdlog::debug("kafka: {} fetch wake-up(s) sent", wakes_);
}

void FetchWaker::wake() {
  {
    std::lock_guard lk(mu_);
    if (wanted_) return;
    wanted_ = true;
  }
  cv_.notify_one();
}

uint64_t FetchWaker::wakes() const {
  std::lock_guard lk(mu_);
  return wakes_;
}

void FetchWaker::loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stopping_ || wanted_; });
    if (stopping_) return;
    lk.unlock();
    const std::vector<TopicPartition> tps = partitions_();
    if (!tps.empty()) {
      // The log's end (timestamp -1) of every partition: librdkafka sends one request per leader.
      rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(int(tps.size()));
      for (const TopicPartition& tp : tps) {
        rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition)->offset = -1;
      }
      (void)rd_kafka_offsets_for_times(rk_, list, 1000);
      rd_kafka_topic_partition_list_destroy(list);
    }
    lk.lock();
    if (!tps.empty()) ++wakes_;
    // Wake-ups asked for meanwhile are answered by this one; then at most one per interval.
    wanted_ = false;
    cv_.wait_for(lk, min_interval_, [&] { return stopping_; });
  }
}

}  // namespace kingest::kafka
