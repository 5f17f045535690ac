// The embedded store as a pipeline Sink, called in-process (no network): sink "embedded-store",
// append mode "direct". The gRPC path to the same store is the `kurrentdb-grpc` sink.
//
// Threads: `append` from any thread. `done` runs on the store's writer thread after the commit, so
// it must only hand work over (the ingest engine queues it into its own arena).
// Lifecycle: must outlive every pipeline writing to it.
#pragma once

#include "core/sink.h"
#include "store/event_store.h"

namespace kingest::store {

class StoreSink final : public Sink {
 public:
  explicit StoreSink(EventStore& store) : store_(store) {}

  [[nodiscard]] std::string name() const override { return "embedded-store"; }
  [[nodiscard]] std::string append_mode() const override { return "direct"; }
  // The store reports idempotent re-appends (AppendResult::idempotent).
  [[nodiscard]] bool exact_answers() const override { return true; }
  void append(AppendRequest request, AppendDone done) override;
  absl::StatusOr<StreamTail> read_tail(const std::string& stream) override;
  absl::StatusOr<std::vector<RecordedEventData>> read_forwards(const std::string& stream, StreamRevision from,
                                                               uint64_t max_count) override;

 private:
  EventStore& store_;
};

// The store's answer in the sink's vocabulary.
AppendOutcome to_outcome(const AppendResult& r);

}  // namespace kingest::store
