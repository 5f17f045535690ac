// A dead letter and the contract of the sinks that keep them: bad input and events that cannot
// keep their revision go there with the reason and the original bytes, so nothing is ever silently
// dropped. The pipeline decides what becomes a dead letter (pipeline/dead_letter.h: the reasons,
// the NDJSON file); kafka/dead_letter_topic.h writes them to a topic.
//
// Threads: `write` may be called from any thread (a sink serializes internally). Durability:
// `write` returns only after the records are durable, because a dead letter's offset counts as done
// as soon as `write` returns. Lifecycle: owned by the engine's owner, outlives the engine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kingest {

struct DeadLetter {
  std::string reason;
  std::string detail;
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = -1;
  std::string key;
  std::string value;   // the original bytes
  std::string stream;  // when known
  bool key_null = false;     // the message had no key (as opposed to an empty one)
  std::string content_type;  // the message's content-type header, empty when absent
};

class DeadLetterSink {
 public:
  virtual ~DeadLetterSink() = default;
  // Durable before it returns.
  virtual absl::Status write(const std::vector<DeadLetter>& letters) = 0;
  [[nodiscard]] virtual std::string describe() const = 0;
};

}  // namespace kingest
