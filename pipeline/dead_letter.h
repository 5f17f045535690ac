// Dead letters on the pipeline's side: the reasons it writes, the NDJSON file sink and a tee. The
// record and the sink contract are core/dead_letter.h (threads, durability: fsync for files); the
// Kafka topic sink is kafka/dead_letter_topic.h.
//
//   auto dlq = NdjsonDeadLetterFile::open("/var/tmp/dlq.ndjson").value();
//   dlq->write({DeadLetter{.reason = "decode-error", ...}});
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dead_letter.h"

namespace kingest::pipeline {

// Reasons, as written in the `reason` field (stable: scripts filter on them).
namespace reason {
inline constexpr const char* kDecodeError = "decode-error";
inline constexpr const char* kVersionBelowBase = "version-below-base";
inline constexpr const char* kVersionGap = "version-gap";
inline constexpr const char* kRevisionConflict = "revision-conflict";
inline constexpr const char* kRevisionGap = "revision-gap";
inline constexpr const char* kAfterDeadLetter = "after-dead-letter";
inline constexpr const char* kEventTooLarge = "event-too-large";
inline constexpr const char* kStreamDeleted = "stream-deleted";
inline constexpr const char* kAccessDenied = "access-denied";
inline constexpr const char* kRejectedByServer = "rejected-by-server";
inline constexpr const char* kSystemStream = "system-stream";
}  // namespace reason

using kingest::DeadLetter;
using kingest::DeadLetterSink;

// One JSON object per line: reason, detail, topic, partition, offset, timestamp_ms, key, stream,
// content_type and the original bytes, lossless: `value` when they are valid UTF-8 (a JSON string
// then carries them byte for byte, and can be edited), else `value_base64`. Likewise `key`
// (null for a message without a key) or `key_base64`.
//
// A write appends whole lines or nothing: when a write or its fsync fails, the file is cut back to
// its last complete line before the error is returned. A file whose last line is partial (a crash
// in the middle of a write) is repaired at open: the partial line is cut off and logged. Processes
// sharing the file take an exclusive flock for each write and for the repair, so neither ever
// cuts another's line.
class NdjsonDeadLetterFile final : public DeadLetterSink {
 public:
  static absl::StatusOr<std::unique_ptr<NdjsonDeadLetterFile>> open(const std::string& path);
  ~NdjsonDeadLetterFile() override;
  absl::Status write(const std::vector<DeadLetter>& letters) override;
  [[nodiscard]] std::string describe() const override { return path_; }
  // Bytes of a partial last line cut off at open (0 when the file ended with a complete line).
  [[nodiscard]] uint64_t repaired_bytes() const { return repaired_bytes_; }

 private:
  NdjsonDeadLetterFile() = default;
  std::mutex mu_;
  int fd_ = -1;
  std::string path_;
  uint64_t repaired_bytes_ = 0;
};

// Writes every letter to each sink in turn (an NDJSON file and a topic, say); durable when all are.
class TeeDeadLetters final : public DeadLetterSink {
 public:
  explicit TeeDeadLetters(std::vector<DeadLetterSink*> sinks) : sinks_(std::move(sinks)) {}
  absl::Status write(const std::vector<DeadLetter>& letters) override;
  [[nodiscard]] std::string describe() const override;

 private:
  std::vector<DeadLetterSink*> sinks_;
};

std::string base64_encode(std::string_view bytes);
std::string dead_letter_to_json(const DeadLetter& letter);

}  // namespace kingest::pipeline
