// The embedded store as a pipeline Sink, called in-process (no network): sink "embedded-store",
// append mode "direct". The gRPC path to the same store is the `kurrentdb-grpc` sink.
//
// Threads: `append` from any thread. Append callbacks are moved off the store's writer thread onto
// oneTBB workers, so the pipeline's follow-up work never delays the next group commit.
// Lifecycle: must outlive every pipeline writing to it; the destructor waits for running callbacks.
#pragma once

#include <oneapi/tbb/task_group.h>

#include <memory>

#include "core/sink.h"
#include "store/event_store.h"

namespace kingest::store {

class StoreSink final : public Sink {
 public:
  explicit StoreSink(EventStore& store) : store_(store) {}
  ~StoreSink() override;

  [[nodiscard]] std::string name() const override { return "embedded-store"; }
  [[nodiscard]] std::string append_mode() const override { return "direct"; }
  void append(AppendRequest request, AppendDone done) override;
  absl::StatusOr<StreamTail> read_tail(const std::string& stream) override;
  absl::StatusOr<std::vector<RecordedEventData>> read_forwards(const std::string& stream, StreamRevision from,
                                                               uint64_t max_count) override;

 private:
  EventStore& store_;
  // Behind a pointer: task_group's destructor may throw, which a Sink destructor must not.
  std::unique_ptr<oneapi::tbb::task_group> callbacks_ = std::make_unique<oneapi::tbb::task_group>();
};

// The store's answer in the sink's vocabulary.
AppendOutcome to_outcome(const AppendResult& r);

}  // namespace kingest::store
