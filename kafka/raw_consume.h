// The Kafka ceiling: reads topics from the beginning with librdkafka and does nothing else (no
// group, no decoding, no commits), so a run can compare its rate with simply reading Kafka.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kingest::kafka {

struct RawConsumeResult {
  uint64_t messages = 0;
  uint64_t bytes = 0;
  double seconds = 0;  // from the first message to the last
  [[nodiscard]] double messages_per_s() const { return seconds > 0 ? double(messages) / seconds : 0; }
};

// Reads every partition of `topics` from the beginning until `expected` messages arrived, every
// partition reached its end, or the timeout passed.
absl::StatusOr<RawConsumeResult> raw_consume(const std::string& brokers, const std::vector<std::string>& topics,
                                             uint64_t expected, std::chrono::milliseconds timeout);

}  // namespace kingest::kafka
