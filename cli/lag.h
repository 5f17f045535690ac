// Consumer lag: per topic-partition, the high watermark minus the group's committed offset (the
// partition's low watermark when nothing is committed), refreshed on its own thread and once more
// at the end of a run, so a bounded replay ends with its true remainder (0 when it got everything).
//
// Owner: replay / run. Threads: a refresh thread; `snapshot` from any thread; `refresh` from the
// owner's thread (serialized with the refresh thread). Lifecycle: start → snapshot... → refresh
// (final) → stop (or destruction).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "kafka/group_progress.h"

namespace kingest::cli {

struct PartitionLag {
  int64_t end = 0;        // high watermark
  int64_t committed = -1;  // the group's commit, -1: none
  int64_t lag = 0;
};

struct LagSnapshot {
  std::map<TopicPartition, PartitionLag> partitions;
  std::optional<std::chrono::steady_clock::time_point> at;  // nullopt: never measured

  [[nodiscard]] uint64_t total() const;
  [[nodiscard]] std::map<std::string, uint64_t> by_topic() const;
};

class LagWatcher {
 public:
  static absl::StatusOr<std::unique_ptr<LagWatcher>> start(const std::string& brokers, const std::string& group,
                                                           const std::map<std::string, std::string>& properties,
                                                           std::vector<std::string> topics,
                                                           std::chrono::milliseconds every);
  ~LagWatcher();
  LagWatcher(const LagWatcher&) = delete;
  LagWatcher& operator=(const LagWatcher&) = delete;

  [[nodiscard]] LagSnapshot snapshot() const;
  // Measures now, on the caller's thread.
  absl::Status refresh();
  void stop();

 private:
  LagWatcher(std::unique_ptr<kafka::GroupProgress> progress, std::vector<std::string> topics,
             std::chrono::milliseconds every)
      : progress_(std::move(progress)), topics_(std::move(topics)), every_(every) {}
  void loop();

  std::unique_ptr<kafka::GroupProgress> progress_;  // used under refresh_mu_
  std::vector<std::string> topics_;
  std::chrono::milliseconds every_;
  std::mutex refresh_mu_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  LagSnapshot snapshot_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace kingest::cli
