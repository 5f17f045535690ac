// Grouping a batch by stream, as the engine's serial stage does it: render each decoded event's
// stream name from the template and add its index to that stream's group (BatchGroups), beside a
// copy-only baseline that copies the same bytes (aggregate type and id) into one buffer.
// Items/s is events/s.
//
// Events: the seed-domain generator's, decoded, in batches of 4096 (the default --batch-max-events)
// over 1,000, 10,000 and 100,000 streams (how many streams a batch touches changes the cost).
//
//   build/bin/grouping_benchmark --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "pipeline/grouping.h"
#include "pipeline/naming.h"
#include "workload/generator.h"

namespace {

using namespace kingest;

constexpr size_t kBatch = 4096;

std::vector<DomainEvent> decoded_batch(uint64_t streams) {
  workload::Generator g({.events = kBatch * 4, .aggregates = streams, .seed = 11, .payload_min = 200, .payload_max = 600});
  std::vector<DomainEvent> out;
  workload::GeneratedEvent e;
  while (out.size() < kBatch && g.next(e)) out.push_back(std::move(e.event));
  return out;
}

void BM_GroupByStream(benchmark::State& state) {
  const auto batch = decoded_batch(uint64_t(state.range(0)));
  const auto names = pipeline::StreamNameTemplate::parse("{AggregateType}-{AggregateId}").value();
  size_t streams = 0;
  for (auto _ : state) {
    pipeline::BatchGroups grouped(batch.size());
    for (uint32_t i = 0; i < batch.size(); ++i) grouped.add(names.render(batch[i]), i);
    streams = grouped.streams.size();
    benchmark::DoNotOptimize(grouped.streams.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(batch.size()));
  state.counters["streams_per_batch"] = double(streams);
}

// The baseline: the bytes the stream names are made of, copied into one buffer.
void BM_CopyOnly(benchmark::State& state) {
  const auto batch = decoded_batch(uint64_t(state.range(0)));
  std::string buf;
  for (auto _ : state) {
    buf.clear();
    for (const auto& e : batch) buf.append(e.aggregate_type).append(1, '-').append(e.aggregate_id);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(batch.size()));
}

BENCHMARK(BM_GroupByStream)->Arg(1000)->Arg(10000)->Arg(100000);
BENCHMARK(BM_CopyOnly)->Arg(1000)->Arg(10000)->Arg(100000);

}  // namespace
