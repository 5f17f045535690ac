// Which Kafka offsets may be committed: per partition, the position after the last done message in
// delivery order.
//
// Offsets have holes (transaction markers, compaction), so the tracker never computes "highest
// contiguous offset + 1": it remembers the offsets it delivered, in order, and commits
// `offset + 1` of the last message of the longest done prefix. Each partition carries the epoch of
// its current assignment; completions from another epoch (a revoked assignment) are ignored.
//
// Threads: every method takes an internal mutex; `delivered` is called by the polling thread,
// `done` by the pipeline's completion stage, `take_commits` by the polling thread. One lock per
// batch, not per message.
//
//   tracker.assign({tp}, epoch);
//   tracker.delivered(tp, KafkaOffset{7}, epoch);   // in delivery order
//   tracker.done({{tp, KafkaOffset{7}, epoch}});
//   tracker.take_commits();   // → {tp, 8}
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "core/domain_event.h"
#include "core/types.h"

namespace kingest::kafka {

struct OffsetRef {
  TopicPartition tp;
  KafkaOffset offset;
  AssignmentEpoch epoch;
};

struct CommitPosition {
  TopicPartition tp;
  KafkaOffset next_offset;  // what Kafka calls the committed offset: the next message to read
};

class OffsetTracker {
 public:
  // Starts (or restarts) tracking the partitions under a new assignment epoch.
  void assign(const std::vector<TopicPartition>& tps, AssignmentEpoch epoch);
  // Stops tracking; returns each revoked partition's committable position not yet taken.
  std::vector<CommitPosition> revoke(const std::vector<TopicPartition>& tps);

  // Records a delivered message. Offsets must ascend per partition within one epoch.
  void delivered(const TopicPartition& tp, KafkaOffset offset, AssignmentEpoch epoch);
  // The same for a batch of messages in delivery order (one lock).
  void delivered_messages(const std::vector<SourceMessage>& messages);
  // The same when the caller knows the batch's runs: `runs` are the lengths of its stretches of
  // consecutive messages of one partition and epoch, in order. One lookup per run and no topic
  // name compared per message (each name is a heap string of its own, mostly out of cache by the
  // time the batch closes). Runs that do not add up to the batch are not trusted: then as above.
  void delivered_runs(const std::vector<SourceMessage>& messages, const std::vector<uint32_t>& runs);
  // Marks messages done (appended, proven written, or durably dead-lettered), in any order.
  // Returns how many were accepted (an old epoch's or an unknown message's completion is not).
  size_t done(const std::vector<OffsetRef>& refs);
  // The same for a whole batch of messages, without copying their topic names.
  size_t done_messages(const std::vector<SourceMessage>& messages);

  // Positions that advanced since the last call.
  std::vector<CommitPosition> take_commits();
  // Every partition's current committable position (advanced or not), for a final commit.
  std::vector<CommitPosition> all_positions() const;
  // Messages delivered but not yet done, across partitions.
  [[nodiscard]] size_t in_flight() const;

 private:
  struct Pending {
    KafkaOffset offset;
    bool done = false;
  };
  struct Partition {
    AssignmentEpoch epoch{0};
    std::deque<Pending> pending;  // delivery order
    std::optional<KafkaOffset> committable;
    std::optional<KafkaOffset> taken;
  };
  // Marks one message done; `last` caches the partition of the previous call. Lock held.
  size_t mark_done(const TopicPartition& tp, KafkaOffset offset, AssignmentEpoch epoch, const TopicPartition*& last_tp,
                   Partition*& last);
  mutable std::mutex mu_;
  std::map<TopicPartition, Partition> partitions_;
};

}  // namespace kingest::kafka
