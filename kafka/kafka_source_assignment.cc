// KafkaSource's partitions: the static assignment of `replay --assign`, the rebalance callback
// (start offsets, retention loss, assignment epochs, revocation) and the set of assigned partitions
// with whether a bounded run has read them all to their ends.
#include "kafka/kafka_source.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

namespace kingest::kafka {
namespace {

std::vector<TopicPartition> to_tps(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartition> out;
  out.reserve(size_t(list->cnt));
  for (int i = 0; i < list->cnt; ++i) out.push_back({list->elems[i].topic, list->elems[i].partition});
  return out;
}

}  // namespace

absl::Status KafkaSource::assign_statically() {
  // Members of the group would be given the same partitions by their own rebalances.
  const rd_kafka_group_list* groups = nullptr;
  rd_kafka_resp_err_t ge = rd_kafka_list_groups(rk_, options_.group_id.c_str(), &groups, 10000);
  if (ge == RD_KAFKA_RESP_ERR_NO_ERROR) {
    int members = 0;
    std::string state;
    for (int i = 0; i < groups->group_cnt; ++i) {
      if (options_.group_id == groups->groups[i].group) {
        members += groups->groups[i].member_cnt;
        state = groups->groups[i].state != nullptr ? groups->groups[i].state : "";
      }
    }
    rd_kafka_group_list_destroy(groups);
    if (members > 0) {
      return absl::FailedPreconditionError(
          "--assign: consumer group " + options_.group_id + " has " + std::to_string(members) +
          " active member(s) (state " + state +
          "); a static assignment would ingest their partitions too. Stop them, or drop --assign to join the group");
    }
  } else {
    // The commit probe below still tells (librdkafka's mock cluster has no ListGroups).
    spdlog::debug("--assign: listing group {}: {}", options_.group_id, rd_kafka_err2str(ge));
  }
  auto* all = rd_kafka_topic_partition_list_new(16);
  for (const auto& topic : options_.topics) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk_, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(all);
      return absl::UnavailableError("Kafka metadata of topic " + topic + ": " + rd_kafka_err2str(e));
    }
    int found = 0;
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (md->topics[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      for (int p = 0; p < md->topics[i].partition_cnt; ++p, ++found) {
        rd_kafka_topic_partition_list_add(all, topic.c_str(), md->topics[i].partitions[p].id);
      }
    }
    rd_kafka_metadata_destroy(md);
    if (found == 0) {
      rd_kafka_topic_partition_list_destroy(all);
      return absl::NotFoundError("Kafka topic " + topic + " does not exist (or has no partitions)");
    }
  }
  // A commit outside the group (generation -1) is accepted only while the group has no members:
  // commit one partition's own position (its commit, else its oldest message, where this run
  // starts anyway) to find out before anything is ingested.
  {
    auto* probe = rd_kafka_topic_partition_list_new(1);
    auto* p = rd_kafka_topic_partition_list_add(probe, all->elems[0].topic, all->elems[0].partition);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk_, probe, 10000);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && p->offset < 0) {
      int64_t low = 0, high = 0;
      e = rd_kafka_query_watermark_offsets(rk_, p->topic, p->partition, &low, &high, 10000);
      p->offset = low;
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      e = rd_kafka_commit(rk_, probe, /*async=*/0);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = p->err;
    }
    rd_kafka_topic_partition_list_destroy(probe);
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
        e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS) {
      rd_kafka_topic_partition_list_destroy(all);
      return absl::FailedPreconditionError(
          "--assign: the broker refused a commit from outside consumer group " + options_.group_id + " (" +
          rd_kafka_err2str(e) +
          "): the group has active members, whose partitions a static assignment would ingest too (on the embedded "
          "broker, librdkafka's mock cluster: the group ever had members). Stop them or use a new --group, or drop "
          "--assign to join the group");
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(all);
      return absl::UnavailableError("--assign: committing to group " + options_.group_id + ": " + rd_kafka_err2str(e));
    }
  }
  // The polling thread has not started: the assignment runs the same path as a group's.
  handle_rebalance(RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, all);
  rd_kafka_topic_partition_list_destroy(all);
  return absl::OkStatus();
}

void KafkaSource::mark_read_to_end(const TopicPartition& tp) {
  if (!reached_end_.insert(tp).second) return;
  update_read_to_ends();
}

std::set<TopicPartition> KafkaSource::assignment() const {
  std::lock_guard lock(assignment_mu_);
  return assignment_;
}

void KafkaSource::publish_assignment() {
  {
    std::lock_guard lock(assignment_mu_);
    assignment_.clear();
    for (const auto& [tp, epoch] : epochs_) assignment_.insert(tp);
  }
  update_read_to_ends();
}

void KafkaSource::update_read_to_ends() {
  bool all = !epochs_.empty();
  for (const auto& [tp, epoch] : epochs_) {
    if (!options_.end_at.contains(tp) || !reached_end_.contains(tp)) {
      all = false;
      break;
    }
  }
  read_to_ends_.store(all);
}

void KafkaSource::handle_rebalance(int err, void* opaque_list) {
  auto* parts = static_cast<rd_kafka_topic_partition_list_t*>(opaque_list);
  // The polling thread's cursors carry epochs: none survives a rebalance.
  cursors_.clear();
  // A static assignment is no group member: "NONE" (or no answer) means plain assign.
  const char* protocol = options_.assign_all ? nullptr : rd_kafka_rebalance_protocol(rk_);
  const bool cooperative = protocol != nullptr && std::strcmp(protocol, "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    // Partitions without a committed offset start at the beginning; auto.offset.reset=error keeps
    // every other case (an out-of-range position) loud instead of silently skipping data.
    rd_kafka_resp_err_t ce = rd_kafka_committed(rk_, parts, 10000);
    if (ce != RD_KAFKA_RESP_ERR_NO_ERROR) spdlog::warn("reading committed offsets failed: {}", rd_kafka_err2str(ce));
    rd_kafka_topic_partition_list_t* rewound = rd_kafka_topic_partition_list_new(1);
    for (int i = 0; i < parts->cnt; ++i) {
      auto& p = parts->elems[i];
      if (auto it = options_.start_at.find(TopicPartition{p.topic, p.partition}); it != options_.start_at.end() &&
                                                                               std::max<int64_t>(p.offset, -1) == it->second.first) {
        p.offset = it->second.second;
        rd_kafka_topic_partition_list_add(rewound, p.topic, p.partition)->offset = p.offset;
        continue;
      }
      if (p.offset < 0) {
        p.offset = RD_KAFKA_OFFSET_BEGINNING;
        continue;
      }
      // Upstream loss: retention deleted messages this group never ingested.
      int64_t low = 0, high = 0;
      if (rd_kafka_query_watermark_offsets(rk_, p.topic, p.partition, &low, &high, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
          p.offset >= low) {
        continue;
      }
      const std::string what = std::string(p.topic) + "[" + std::to_string(p.partition) + "]: offsets " +
                               std::to_string(p.offset) + ".." + std::to_string(low - 1) + " (" +
                               std::to_string(low - p.offset) +
                               " messages) were deleted by retention before they were ingested";
      if (options_.on_data_loss == SourceOptions::DataLoss::kSkip) {
        spdlog::warn("kafka: {}; continuing from offset {} (--on-data-loss skip)", what, low);
        messages_lost_.fetch_add(uint64_t(low - p.offset), std::memory_order_relaxed);
        p.offset = low;
      } else {
        spdlog::error("kafka: {}", what);
        if (callbacks_.on_fatal) {
          callbacks_.on_fatal(absl::DataLossError(
              "kafka: " + what + "; rerun with --on-data-loss skip to go on from the oldest retained message"));
        }
      }
    }
    if (rewound->cnt > 0) {
      // The group's commit moves to the new start at once, so that nobody (a bounded run's end
      // check, a member joining later) takes the old commit for progress.
      rd_kafka_resp_err_t e = rd_kafka_commit(rk_, rewound, /*async=*/0);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) spdlog::warn("committing the --from start offsets: {}", rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(rewound);
    auto tps = to_tps(parts);
    std::erase_if(ended_, [&](const TopicPartition& tp) { return std::find(tps.begin(), tps.end(), tp) != tps.end(); });
    AssignmentEpoch epoch{next_epoch_++};
    tracker_.assign(tps, epoch);
    for (const auto& tp : tps) {
      epochs_[tp] = epoch;
      reached_end_.erase(tp);
    }
    publish_assignment();
    if (cooperative) {
      rd_kafka_error_t* e = rd_kafka_incremental_assign(rk_, parts);
      if (e != nullptr) {
        spdlog::error("incremental assign failed: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
    } else {
      rd_kafka_assign(rk_, parts);
    }
    if (paused_) rd_kafka_pause_partitions(rk_, parts);
    assigned_any_.store(true);
    spdlog::info("assigned {} partition(s), epoch {}", tps.size(), epoch.value());
    if (callbacks_.on_assign) callbacks_.on_assign(tps);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    auto tps = to_tps(parts);
    // Flush what was batched so the revoked partitions' work can finish inside the bounded wait.
    if (auto b = batcher_.flush()) emit(std::move(*b));
    if (callbacks_.on_revoke) callbacks_.on_revoke(tps);
    commit(tracker_.revoke(tps), /*sync=*/true);
    for (const auto& tp : tps) {
      epochs_.erase(tp);
      reached_end_.erase(tp);
      held_back_.erase(tp);  // (last_timestamp_ keeps its entry: the poll loop caches a pointer to it)
    }
    publish_assignment();
    if (cooperative) {
      rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk_, parts);
      if (e != nullptr) rd_kafka_error_destroy(e);
    } else {
      rd_kafka_assign(rk_, nullptr);
    }
    spdlog::info("revoked {} partition(s)", tps.size());
  } else {
    spdlog::error("rebalance error: {}", rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err)));
    rd_kafka_assign(rk_, nullptr);
  }
}

}  // namespace kingest::kafka
