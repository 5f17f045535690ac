// A thin librdkafka producer for generators and dead-letter topics.
//
// Threads: `produce` may be called from any thread; delivery reports are served by `poll`/`flush`
// on the calling thread. Lifecycle: create → produce... → flush → destruction.
//
//   auto p = Producer::create(bootstrap).value();
//   p->produce("system-events", key, json, "application/json");
//   p->flush(std::chrono::seconds(30));
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

struct rd_kafka_s;

namespace kingest::kafka {

class Producer {
 public:
  static absl::StatusOr<std::unique_ptr<Producer>> create(const std::string& brokers,
                                                          const std::map<std::string, std::string>& extra = {});
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Enqueues one message (copying key and value), waiting while librdkafka's queue is full.
  // Headers are name/value pairs; an empty content_type adds no header. A key whose data() is null
  // (a default std::string_view) produces a message without a key; any other, even empty, is sent.
  absl::Status produce(const std::string& topic, std::string_view key, std::string_view value,
                       std::string_view content_type = {},
                       const std::vector<std::pair<std::string, std::string>>& headers = {});
  // Waits until every enqueued message is acknowledged (or failed), or the timeout passes.
  absl::Status flush(std::chrono::milliseconds timeout);
  [[nodiscard]] uint64_t delivered() const { return delivered_.load(); }
  [[nodiscard]] uint64_t failed() const { return failed_.load(); }
  [[nodiscard]] std::string last_error() const;

 private:
  Producer() = default;
  static void on_delivery(rd_kafka_s* rk, const void* msg, void* opaque);
  rd_kafka_s* rk_ = nullptr;
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> failed_{0};
  mutable std::atomic<int> last_error_{0};
};

}  // namespace kingest::kafka
