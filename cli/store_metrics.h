// serve-store's metrics, taken from the outside: the store the gRPC server writes through is
// wrapped, so every append (with its wait for the group commit) and every read is counted and
// timed on its way in, and the store's own figures (transactions, events written) and the database
// file's size are read when scraped.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "metrics/exposition.h"
#include "pipeline/timed_sink.h"
#include "store/event_store.h"

namespace kingest::cli {

class MeteredEventStore final : public store::EventStore {
 public:
  // `db_path` empty: an in-memory store (no size to report).
  MeteredEventStore(store::EventStore& inner, std::string db_path) : inner_(inner), db_path_(std::move(db_path)) {}

  void append(std::string stream, ExpectedRevision expected, std::vector<store::ProposedEvent> events,
              AppendCallback done) override;
  void append_multi(store::MultiAppend request, std::function<void(store::MultiAppendResult)> done) override;
  absl::StatusOr<store::ReadResult> read(const std::string& stream, store::ReadFrom from, uint64_t max_count,
                                         store::ReadDirection direction) override;
  absl::StatusOr<std::vector<store::RecordedEvent>> read_all(uint64_t after_position, uint64_t max_count) override;
  store::AppendResult tombstone(const std::string& stream, ExpectedRevision expected) override {
    return inner_.tombstone(stream, expected);
  }
  [[nodiscard]] store::StoreStats stats() const override { return inner_.stats(); }
  void close() override { inner_.close(); }

  // Adds the store's families to `registry`; the store must outlive its renders.
  void add_metrics(metrics::Registry& registry) const;

 private:
  store::EventStore& inner_;
  std::string db_path_;
  pipeline::LatencyHistogram append_latency_;
  pipeline::LatencyHistogram read_latency_;
  std::atomic<uint64_t> appends_{0};
  std::atomic<uint64_t> events_proposed_{0};
  std::atomic<uint64_t> append_failures_{0};
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> events_read_{0};
  std::atomic<uint64_t> appends_in_flight_{0};
};

}  // namespace kingest::cli
