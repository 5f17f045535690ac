#include "cli/store_metrics.h"

#include <chrono>
#include <filesystem>

namespace kingest::cli {
namespace {

const std::vector<double> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

metrics::HistogramSnapshot snapshot(const pipeline::LatencyHistogram& h) {
  return {.buckets = h.cumulative(kBounds), .count = h.count(), .sum = h.sum_s()};
}

}  // namespace

void MeteredEventStore::append(std::string stream, ExpectedRevision expected,
                               std::vector<store::ProposedEvent> events, AppendCallback done) {
  const auto start = std::chrono::steady_clock::now();
  appends_.fetch_add(1, std::memory_order_relaxed);
  events_proposed_.fetch_add(events.size(), std::memory_order_relaxed);
  appends_in_flight_.fetch_add(1, std::memory_order_relaxed);
  // Runs on the store's writer thread: only counters here.
  inner_.append(std::move(stream), expected, std::move(events),
                [this, start, done = std::move(done)](store::AppendResult r) {
                  append_latency_.record(std::chrono::steady_clock::now() - start);
                  appends_in_flight_.fetch_sub(1, std::memory_order_relaxed);
                  if (r.status != store::AppendStatus::kSuccess) append_failures_.fetch_add(1, std::memory_order_relaxed);
                  done(std::move(r));
                });
}

void MeteredEventStore::append_multi(store::MultiAppend request,
                                     std::function<void(store::MultiAppendResult)> done) {
  const auto start = std::chrono::steady_clock::now();
  appends_.fetch_add(1, std::memory_order_relaxed);
  events_proposed_.fetch_add(request.record_count(), std::memory_order_relaxed);
  appends_in_flight_.fetch_add(1, std::memory_order_relaxed);
  inner_.append_multi(std::move(request), [this, start, done = std::move(done)](store::MultiAppendResult r) {
    append_latency_.record(std::chrono::steady_clock::now() - start);
    appends_in_flight_.fetch_sub(1, std::memory_order_relaxed);
    if (r.status != store::AppendStatus::kSuccess) append_failures_.fetch_add(1, std::memory_order_relaxed);
    done(std::move(r));
  });
}

absl::StatusOr<store::ReadResult> MeteredEventStore::read(const std::string& stream, store::ReadFrom from,
                                                          uint64_t max_count, store::ReadDirection direction) {
  const auto start = std::chrono::steady_clock::now();
  auto r = inner_.read(stream, from, max_count, direction);
  read_latency_.record(std::chrono::steady_clock::now() - start);
  reads_.fetch_add(1, std::memory_order_relaxed);
  if (r.ok()) events_read_.fetch_add(r->events.size(), std::memory_order_relaxed);
  return r;
}

absl::StatusOr<std::vector<store::RecordedEvent>> MeteredEventStore::read_all(uint64_t after_position,
                                                                              uint64_t max_count) {
  const auto start = std::chrono::steady_clock::now();
  auto r = inner_.read_all(after_position, max_count);
  read_latency_.record(std::chrono::steady_clock::now() - start);
  reads_.fetch_add(1, std::memory_order_relaxed);
  if (r.ok()) events_read_.fetch_add(r->size(), std::memory_order_relaxed);
  return r;
}

void MeteredEventStore::add_metrics(metrics::Registry& registry) const {
  registry.add([this](metrics::Exposition& e) {
    const auto s = inner_.stats();
    e.counter("kurrent_ingest_store_appends_total", "Append requests received", appends_.load());
    e.counter("kurrent_ingest_store_append_failures_total",
              "Appends answered with anything but success (wrong expected version, deleted stream, storage error)",
              append_failures_.load());
    e.counter("kurrent_ingest_store_events_proposed_total", "Events in the append requests received",
              events_proposed_.load());
    e.counter("kurrent_ingest_store_events_written_total", "Events written (idempotent re-appends excluded)",
              s.events_written);
    e.counter("kurrent_ingest_store_transactions_total", "Write transactions committed (group commits)",
              s.transactions);
    e.gauge("kurrent_ingest_store_appends_in_flight", "Appends waiting for their transaction",
            double(appends_in_flight_.load()));
    e.histogram("kurrent_ingest_store_append_duration_seconds",
                "From an append's arrival to its answer: the wait for and the time of its group-commit transaction",
                snapshot(append_latency_));
    e.counter("kurrent_ingest_store_reads_total", "Stream and $all reads", reads_.load());
    e.counter("kurrent_ingest_store_events_read_total", "Events returned by reads", events_read_.load());
    e.histogram("kurrent_ingest_store_read_duration_seconds", "Read latency", snapshot(read_latency_));
    if (!db_path_.empty()) {
      std::error_code ec;
      uint64_t bytes = 0;
      for (const char* suffix : {"", "-wal", "-shm"}) {
        auto n = std::filesystem::file_size(db_path_ + suffix, ec);
        if (!ec) bytes += n;
      }
      e.gauge("kurrent_ingest_store_database_bytes", "Size of the SQLite database with its WAL", double(bytes));
    }
  });
}

}  // namespace kingest::cli
