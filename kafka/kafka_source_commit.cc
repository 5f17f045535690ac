// KafkaSource's offset commits: the positions the OffsetTracker says are done, periodically, and
// every position again at the recommit interval.
#include "kafka/kafka_source.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <vector>

#include <spdlog/spdlog.h>

namespace kingest::kafka {
namespace {

rd_kafka_topic_partition_list_t* to_list(const std::vector<CommitPosition>& positions) {
  auto* list = rd_kafka_topic_partition_list_new(int(positions.size()));
  for (const auto& p : positions) {
    rd_kafka_topic_partition_list_add(list, p.tp.topic.c_str(), p.tp.partition)->offset = p.next_offset.value();
  }
  return list;
}

}  // namespace

void KafkaSource::commit(const std::vector<CommitPosition>& positions, bool sync) {
  if (positions.empty()) return;
  // Whatever must reach Kafka before these offsets do (replies): the positions were taken after
  // the messages they cover were done, so everything those messages queued is flushed here.
  if (callbacks_.before_commit && !callbacks_.before_commit()) return;
  auto* list = to_list(positions);
  rd_kafka_resp_err_t e = rd_kafka_commit(rk_, list, sync ? 0 : 1);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    spdlog::warn("offset commit failed: {}", rd_kafka_err2str(e));
  } else {
    commits_.fetch_add(1, std::memory_order_relaxed);
  }
}

void KafkaSource::commit_due(std::chrono::steady_clock::time_point now,
                             std::chrono::steady_clock::time_point& next_commit,
                             std::chrono::steady_clock::time_point& next_recommit) {
  if (now >= next_recommit) {
    // Every position of the current assignment again: an asynchronous commit can fail (during a
    // rebalance the group generation changes under it) and nothing else would repeat it once a
    // partition has no more messages, leaving the group's commit short of its end for good.
    commit(tracker_.all_positions(), /*sync=*/false);
    (void)tracker_.take_commits();
    next_recommit = now + options_.recommit_interval;
  } else {
    commit(tracker_.take_commits(), /*sync=*/false);
  }
  next_commit = now + options_.commit_interval;
}

}  // namespace kingest::kafka
