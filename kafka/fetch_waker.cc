// FetchWaker: see fetch_waker.h.
#include "kafka/fetch_waker.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>

#include <set>
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

size_t FetchWaker::last_targets() const {
  std::lock_guard lk(mu_);
  return last_targets_;
}

std::vector<TopicPartition> FetchWaker::one_per_leader(const std::vector<TopicPartition>& assigned) const {
  const rd_kafka_metadata_t* md = nullptr;
  // The topics this client knows (its subscription's), not the whole cluster's.
  if (rd_kafka_metadata(rk_, 0, nullptr, &md, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR || md == nullptr) {
    return assigned;
  }
  const std::set<TopicPartition> wanted(assigned.begin(), assigned.end());
  std::set<int32_t> leaders;
  std::set<TopicPartition> covered;
  std::vector<TopicPartition> out;
  for (int t = 0; t < md->topic_cnt; ++t) {
    const rd_kafka_metadata_topic_t& topic = md->topics[t];
    for (int p = 0; p < topic.partition_cnt; ++p) {
      TopicPartition tp{topic.topic, topic.partitions[p].id};
      if (!wanted.contains(tp)) continue;
      covered.insert(tp);
      if (leaders.insert(topic.partitions[p].leader).second) out.push_back(std::move(tp));
    }
  }
  rd_kafka_metadata_destroy(md);
  // A partition the metadata did not name (or named without a leader) is asked for itself.
  for (const TopicPartition& tp : assigned) {
    if (!covered.contains(tp)) out.push_back(tp);
  }
  return out;
}

void FetchWaker::loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stopping_ || wanted_; });
    if (stopping_) return;
    lk.unlock();
    std::vector<TopicPartition> assigned = partitions_();
    const auto now = std::chrono::steady_clock::now();
    if (assigned != assigned_ || now - picked_at_ > kLeadersMaxAge) {
      targets_ = assigned.empty() ? assigned : one_per_leader(assigned);
      spdlog::debug("kafka: fetch wake-ups name {} of {} assigned partition(s), one per leader", targets_.size(),
                    assigned.size());
      assigned_ = std::move(assigned);
      picked_at_ = now;
    }
    if (!targets_.empty()) {
      // The log's end (timestamp -1): librdkafka sends one request to each partition's leader.
      rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(int(targets_.size()));
      for (const TopicPartition& tp : targets_) {
        rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition)->offset = -1;
      }
      (void)rd_kafka_offsets_for_times(rk_, list, 1000);
      rd_kafka_topic_partition_list_destroy(list);
    }
    lk.lock();
    last_targets_ = targets_.size();
    if (!targets_.empty()) ++wakes_;
    // Wake-ups asked for meanwhile are answered by this one; then at most one per interval.
    wanted_ = false;
    cv_.wait_for(lk, min_interval_, [&] { return stopping_; });
  }
}

}  // namespace kingest::kafka
