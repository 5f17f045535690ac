// Wakes librdkafka's fetchers after the consumer queue ran dry behind a full queue.
//
// librdkafka before 2.3 stops fetching a partition while the consumer queue holds more than
// `queued.max.messages.kbytes` (or `queued.min.messages`) and looks again only when its broker
// thread next wakes: at the latest after one second (confluentinc/librdkafka#2879, fixed by
// `fetch.queue.backoff.ms` in 2.3). A reader faster than one queue per second then waits most of
// every second for the next fetch. Any request queued to the broker thread wakes it, after which it
// sees the emptied queue and fetches again; `wake` sends one ListOffsets request per partition
// leader (`rd_kafka_offsets_for_times`, answered from the log's end, changing no position) from a
// thread of its own, at most one at a time and one per `min_interval`. The request names one
// assigned partition per leader (from a metadata request, made again when the assignment changes
// and every `kLeadersMaxAge`): a ListOffsets of every partition costs the broker threads as much
// as a fetch when thousands are assigned. Without metadata it names them all.
//
//   FetchWaker waker(rk, [&] { return assigned_partitions(); });
//   waker.wake();  // the polling thread: the queue ran dry after a backlog
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/domain_event.h"

struct rd_kafka_s;

namespace kingest::kafka {

class FetchWaker {
 public:
  FetchWaker(rd_kafka_s* rk, std::function<std::vector<TopicPartition>()> partitions,
             std::chrono::milliseconds min_interval = std::chrono::milliseconds(5));
  ~FetchWaker();  // waits for a request in flight (at most its 1 s timeout)
  FetchWaker(const FetchWaker&) = delete;
  FetchWaker& operator=(const FetchWaker&) = delete;

  // Asks for a wake-up; returns at once. Calls while one is pending or running are folded into it.
  void wake();
  [[nodiscard]] uint64_t wakes() const;  // requests sent
  [[nodiscard]] size_t last_targets() const;  // partitions named by the last request (one per leader)

 private:
  static constexpr std::chrono::seconds kLeadersMaxAge{5};
  void loop();
  // One partition of `assigned` per leader broker; all of them when the metadata request fails.
  std::vector<TopicPartition> one_per_leader(const std::vector<TopicPartition>& assigned) const;

  rd_kafka_s* rk_;
  std::function<std::vector<TopicPartition>()> partitions_;
  std::chrono::milliseconds min_interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false;   // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  uint64_t wakes_ = 0;     // guarded by mu_
  size_t last_targets_ = 0;  // guarded by mu_
  // The waker's thread only: the assignment the targets were picked for, and when.
  std::vector<TopicPartition> assigned_;
  std::vector<TopicPartition> targets_;
  std::chrono::steady_clock::time_point picked_at_{};
  std::thread thread_;
};

}  // namespace kingest::kafka
