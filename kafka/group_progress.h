// Where a bounded run ends and how far a consumer group has got: the high watermark of every
// partition at the start of a run, and the group's committed offsets. A bounded `replay` is over
// when the group's commits reach every end, whichever member did the work (so the survivors of a
// killed member finish its partitions).
//
// Owner: the command's thread; blocking calls (metadata and offset fetches, with a timeout).
//
//   auto gp = GroupProgress::open(brokers, "my-group", {}).value();
//   auto ends = gp->end_offsets({"system-events"}).value();   // captured once, at start
//   bool done = gp->reached(ends).value();                    // polled while the run goes on
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/types.h"

namespace kingest::kafka {

using Offsets = std::map<TopicPartition, int64_t>;

class GroupProgress {
 public:
  static absl::StatusOr<std::unique_ptr<GroupProgress>> open(const std::string& brokers, const std::string& group,
                                                             const std::map<std::string, std::string>& properties);
  ~GroupProgress();
  GroupProgress(const GroupProgress&) = delete;
  GroupProgress& operator=(const GroupProgress&) = delete;

  // Which of `topics` the cluster does not have. Asks for the cluster's topic list, which (unlike a
  // request naming the topic) never creates a topic on a broker that auto-creates them.
  absl::StatusOr<std::vector<std::string>> missing_topics(const std::vector<std::string>& topics);
  // One round trip to a broker: OK when one answered within the timeout.
  absl::Status ping();
  // How long each blocking call may take (kDefaultTimeout unless set).
  static constexpr std::chrono::milliseconds kDefaultTimeout{10000};
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  // Every partition of `topics` with its high watermark (the offset after the last message).
  absl::StatusOr<Offsets> end_offsets(const std::vector<std::string>& topics);
  // The group's committed offset of each partition (-1: nothing committed).
  absl::StatusOr<Offsets> committed(const Offsets& partitions);
  // The low watermark of each partition (where retained data starts).
  absl::StatusOr<Offsets> start_offsets(const Offsets& partitions);
  // For each of `partitions` (mapped to their high watermark): the first offset whose message
  // timestamp is at or after `time_ms` (the high watermark when there is none). Asks the broker
  // (offsets for times) and, where it cannot tell (librdkafka's mock cluster), scans the
  // partition's timestamps.
  absl::StatusOr<Offsets> offsets_for_time(const Offsets& partitions, int64_t time_ms);
  // True when every partition's commit has reached its end (an empty partition is reached).
  absl::StatusOr<bool> reached(const Offsets& ends);
  // Events still to do before the ends: sum over partitions of end - max(committed, start), where
  // `from` (when given) replaces the commit of the partitions it names.
  absl::StatusOr<uint64_t> remaining(const Offsets& ends, const Offsets& from = {});

 private:
  explicit GroupProgress(void* rk) : rk_(rk) {}
  void* rk_;  // rd_kafka_t
  std::chrono::milliseconds timeout_ = kDefaultTimeout;
};

}  // namespace kingest::kafka
