// DiscardSink: a sink that encodes each append as the gRPC sink does in its default mode (the
// group's records and revision check as a fragment of an AppendRecords request) and then drops it,
// answering success (an append whose metadata is not a JSON object is rejected, as the gRPC sink
// rejects it). It measures the pipeline's own cost (decode, order, group, encode) without a
// server: `--sink discard`.
//
// Every stream starts empty; the answers carry the revisions the appends would have reached, and
// reads answer each stream's tail (its last revision and id, kept per stream by a 64-bit hash of
// its name), so an engine that drops a stream's state and reads it again finds it where it was.
// Threads: `append` queues; one thread ("ki-discard") encodes and answers, so `done` never runs on
// the caller's stack. Lifecycle: answers everything queued before the destructor returns.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/sink.h"

namespace kingest::cli {

class DiscardSink final : public Sink {
 public:
  DiscardSink();
  ~DiscardSink() override;
  DiscardSink(const DiscardSink&) = delete;
  DiscardSink& operator=(const DiscardSink&) = delete;

  [[nodiscard]] std::string name() const override { return "discard"; }
  [[nodiscard]] std::string append_mode() const override { return "records"; }
  // Every stream starts empty and every append succeeds: nothing to read first.
  [[nodiscard]] bool exact_answers() const override { return true; }
  // It encodes records, as the gRPC sink's records mode sends them.
  [[nodiscard]] bool wants_record_properties() const override { return true; }
  // The tail; the events themselves are not kept (read_forwards answers nothing).
  void append(AppendRequest request, AppendDone done) override;
  void append_many(std::vector<PendingAppend>& appends) override;
  absl::StatusOr<StreamTail> read_tail(const std::string& stream) override;
  absl::StatusOr<std::vector<RecordedEventData>> read_forwards(const std::string& stream, StreamRevision from,
                                                               uint64_t max_count) override;
  // Bytes the encoded requests would have put on the wire.
  [[nodiscard]] uint64_t encoded_bytes() const;

 private:
  void run();

  std::mutex mu_;  // the queue's
  std::condition_variable cv_;
  // Swapped with the worker's, whose room it gets back once answered: no allocation per append.
  std::vector<std::pair<AppendRequest, AppendDone>> queue_;
  bool stopping_ = false;
  // The tails and the bytes count, apart from the queue's lock: appends are queued while the
  // worker records the tails of the ones before.
  mutable std::mutex tails_mu_;
  uint64_t encoded_bytes_ = 0;
  struct Tail {
    uint64_t revision = 0;
    Uuid last_id;
  };
  absl::flat_hash_map<uint64_t, Tail> tails_;  // by hash of the stream name; written by the worker only
  std::thread worker_;
};

}  // namespace kingest::cli
