// Grouping a batch by stream, as the worker that decodes a batch does it: render each decoded event's
// stream name from the template and add its index to that stream's group (BatchGroups), beside a
// copy-only baseline that copies the same bytes (aggregate type and id) into one buffer.
// Items/s is events/s.
//
// BM_StreamTableWide: the stream table's work per group on wide data, one event per group over
// 250,000 streams met in turn: a batch's states found or added and offered under one lock each,
// every group run and its stream released as its append's answer would, the cache evicted to the
// default 48 MiB budget. Items/s is groups/s.
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
#include "pipeline/stream_table.h"
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
  std::string name;
  for (auto _ : state) {
    pipeline::BatchGroups grouped(batch.size());
    for (uint32_t i = 0; i < batch.size(); ++i) {
      names.render_into(batch[i], name);
      grouped.add(name, pipeline::StreamTable::hash_name(name), i);
    }
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

void BM_StreamTableWide(benchmark::State& state) {
  constexpr size_t kStreams = 250000;
  std::vector<std::string> names;
  names.reserve(kStreams);
  for (size_t i = 0; i < kStreams; ++i) names.push_back("Vulnerability-" + std::to_string(1000000 + i));
  pipeline::StreamTable table(true, 1u << 20);
  auto batch = std::make_shared<pipeline::Batch>();
  batch->messages.resize(kBatch);
  for (auto& m : batch->messages) m.tp = {"vulnerability-events", 0};
  std::vector<const std::string*> streams(kBatch);
  std::vector<const TopicPartition*> tps(kBatch, &batch->messages[0].tp);
  std::vector<uint64_t> hashes(kBatch);
  size_t next = 0;
  for (auto _ : state) {
    for (size_t k = 0; k < kBatch; ++k) {
      streams[k] = &names[next];
      hashes[k] = pipeline::StreamTable::hash_name(names[next]);
      next = (next + 1) % kStreams;
    }
    const auto now = pipeline::Clock::now();
    auto found = table.find_or_add(streams, hashes, tps);
    std::vector<pipeline::GroupPtr> groups;
    groups.reserve(kBatch);
    for (uint32_t i = 0; i < kBatch; ++i) {
      auto [st, added] = found[i];
      if (added && !st->from_brief) st->presumed_new = true;
      auto g = std::make_unique<pipeline::Group>();
      g->stream = *streams[i];
      g->state = st;
      g->first_revision = st->next_revision;
      g->items.push_back({.batch = batch.get(), .index = i});
      g->batches.push_back(batch);
      groups.push_back(std::move(g));
    }
    for (auto& step : table.offer(std::move(groups), now)) {
      pipeline::StreamState& st = *step.run->state;
      st.next_revision = step.run->end_revision();
      st.presumed_new = false;
      benchmark::DoNotOptimize(table.release(st, now).run);
    }
    table.evict(48u << 20);
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(kBatch));
  state.counters["cached_streams"] = double(table.stats().cached_streams);
}

BENCHMARK(BM_StreamTableWide);
BENCHMARK(BM_GroupByStream)->Arg(1000)->Arg(10000)->Arg(100000);
BENCHMARK(BM_CopyOnly)->Arg(1000)->Arg(10000)->Arg(100000);

}  // namespace
