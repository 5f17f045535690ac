// KafkaSource's pausing: every assigned partition while the pipeline is full, a partition at the
// end of a bounded run, and the partitions ahead in message time while the pipeline asks for the
// furthest-behind ones first (align).
#include "kafka/kafka_source.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

namespace kingest::kafka {

void KafkaSource::set_paused(bool paused) {
  if (paused == paused_) return;
  rd_kafka_topic_partition_list_t* assignment = nullptr;
  if (rd_kafka_assignment(rk_, &assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  if (paused) {
    rd_kafka_pause_partitions(rk_, assignment);
  } else {
    rd_kafka_resume_partitions(rk_, assignment);
  }
  rd_kafka_topic_partition_list_destroy(assignment);
  paused_ = paused;
  if (!paused) {
    // Partitions at their end, and those held back behind the others, stay paused.
    auto ended = ended_;
    ended_.clear();
    for (const auto& tp : ended) pause_at_end(tp);
    auto held = std::move(held_back_);
    held_back_.clear();
    if (aligning_) {
      for (const auto& tp : held) {
        held_back_.insert(tp);
        auto* list = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition);
        rd_kafka_pause_partitions(rk_, list);
        rd_kafka_topic_partition_list_destroy(list);
      }
    }
  }
}

void KafkaSource::align(bool on) {
  auto change = [&](const std::vector<TopicPartition>& tps, bool pause) {
    if (tps.empty()) return;
    auto* list = rd_kafka_topic_partition_list_new(int(tps.size()));
    for (const auto& tp : tps) rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition);
    if (pause) {
      rd_kafka_pause_partitions(rk_, list);
    } else {
      rd_kafka_resume_partitions(rk_, list);
    }
    rd_kafka_topic_partition_list_destroy(list);
  };
  auto is_ended = [&](const TopicPartition& tp) { return std::find(ended_.begin(), ended_.end(), tp) != ended_.end(); };
  std::vector<TopicPartition> pause, resume;
  if (on) {
    // The earliest message time among the partitions still to be read.
    int64_t earliest = INT64_MAX;
    for (const auto& [tp, epoch] : epochs_) {
      if (is_ended(tp) || reached_end_.contains(tp)) continue;
      if (auto it = last_timestamp_.find(tp); it != last_timestamp_.end()) earliest = std::min(earliest, it->second);
    }
    // Read those within 100 ms of the earliest (and those nothing was read from yet); hold the
    // others back.
    for (const auto& [tp, epoch] : epochs_) {
      if (is_ended(tp)) continue;
      auto it = last_timestamp_.find(tp);
      const bool behind = reached_end_.contains(tp) || it == last_timestamp_.end() || it->second <= earliest + 100;
      if (!behind && held_back_.insert(tp).second) pause.push_back(tp);
      if (behind && held_back_.erase(tp) > 0) resume.push_back(tp);
    }
  } else {
    resume.assign(held_back_.begin(), held_back_.end());
    held_back_.clear();
  }
  if (!paused_) {
    change(pause, true);
    change(resume, false);
  }
  if (on != aligning_) {
    aligning_ = on;
    // The first time at info, then at debug: it may toggle every few seconds.
    static constexpr const char* kOn =
        "events waiting for missing versions are over budget: reading the partitions furthest behind in message "
        "time first";
    static constexpr const char* kOff = "waiting events back under budget: reading every partition";
    spdlog::log(aligned_before_ ? spdlog::level::debug : spdlog::level::info, on ? kOn : kOff);
    if (!on) aligned_before_ = true;
  }
}

void KafkaSource::pause_at_end(const TopicPartition& tp) {
  mark_read_to_end(tp);
  if (std::find(ended_.begin(), ended_.end(), tp) != ended_.end()) return;
  ended_.push_back(tp);
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition);
  rd_kafka_pause_partitions(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
}

}  // namespace kingest::kafka
