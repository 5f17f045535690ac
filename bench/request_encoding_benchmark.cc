// Encoding of the gRPC sink's requests: the BatchAppend messages of one stream group, built and
// serialized as they go on the wire, and its AppendRecords fragment (records mode), beside a
// copy-only baseline of the same bytes (type, data and metadata copied into one buffer); and the
// metadata's way from an envelope into a one-event fragment, as JSON text that the encoder parses
// back or as properties written from the values (what the engine hands a records sink).
// Items/s is events/s; bytes/s is event bytes (data + metadata) per second.
//
// Events: the seed-domain generator's payloads (200-600 bytes of JSON) with metadata of the shape
// the pipeline writes; groups of 1, 8 and 64 events (the demo's interleaved data gives about 5).
//
//   build/bin/request_encoding_benchmark --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "core/sink.h"
#include "kurrent/wire.h"
#include "pipeline/naming.h"
#include "proto/kurrentdb/records_wire.h"
#include "workload/generator.h"

namespace {

using namespace kingest;

constexpr size_t kEvents = 4096;

const std::vector<EventData>& events() {
  static const std::vector<EventData> all = [] {
    workload::Generator g({.events = 100000, .aggregates = 2000, .seed = 7, .payload_min = 200, .payload_max = 600});
    std::vector<EventData> out;
    workload::GeneratedEvent e;
    while (out.size() < kEvents && g.next(e)) {
      out.push_back(EventData{
          .id = Uuid::v4(),
          .type = e.event.event_type.str(),
          .content_type = "application/json",
          .data = e.event.payload,
          .metadata = R"({"$correlationId":")" + Uuid::v4().to_string() + R"(","$causationId":")" +
                      Uuid::v4().to_string() + R"(","occurredAt":"2026-11-27T09:00:00.000Z","source":{"topic":")" +
                      e.topic + R"(","partition":3,"offset":123456}})"});
    }
    return out;
  }();
  return all;
}

size_t event_bytes(size_t first, size_t n) {
  size_t b = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto& e = events()[(first + i) % kEvents];
    b += e.data.size() + e.metadata.size();
  }
  return b;
}

// Runs `encode(group)` over consecutive groups of `state.range(0)` events; it returns false to stop
// with an error. Items are events, bytes their data and metadata.
template <typename Encode>
void over_groups(benchmark::State& state, Encode&& encode) {
  const size_t group = size_t(state.range(0));
  const std::span<const EventData> all(events());
  size_t at = 0, bytes = 0;
  for (auto _ : state) {
    if (at + group > kEvents) at = 0;
    if (!encode(all.subspan(at, group))) {
      state.SkipWithError("the encoder refused the events");
      break;
    }
    bytes += event_bytes(at, group);
    at += group;
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(group));
  state.SetBytesProcessed(int64_t(bytes));
}

// Build the group's BatchAppend messages and serialize them.
void BM_BatchAppendEncode(benchmark::State& state) {
  std::string wire;
  over_groups(state, [&](std::span<const EventData> group) {
    auto msgs = kurrent::wire::batch_append_messages(Uuid::v4(), "Vulnerability-0b5e2a4c", StreamRevision{41}, group,
                                                     std::chrono::seconds(10), size_t{1} << 20);
    for (const auto& m : msgs) {
      wire.clear();
      m->SerializeToString(&wire);
      benchmark::DoNotOptimize(wire.data());
    }
    return true;
  });
}

// The group's AppendRecords fragment (its check and records), as the client encodes it once per group.
void BM_AppendRecordsFragment(benchmark::State& state) {
  std::string wire;
  over_groups(state, [&](std::span<const EventData> group) {
    wire.clear();
    const bool ok = !wire::append_records_fragment("Vulnerability-0b5e2a4c", 41, group, &wire).has_value();
    benchmark::DoNotOptimize(wire.data());
    return ok;
  });
}

// The baseline: the same bytes copied into one buffer.
void BM_CopyOnly(benchmark::State& state) {
  std::string buf;
  over_groups(state, [&](std::span<const EventData> group) {
    buf.clear();
    for (const EventData& e : group) buf.append(e.type).append(e.data).append(e.metadata);
    benchmark::DoNotOptimize(buf.data());
    return true;
  });
}

// One event's metadata built and encoded into its fragment: `kProperties` false, JSON text that the
// encoder parses back; true, properties written from the envelope's values.
template <bool kProperties>
void BM_MetadataIntoFragment(benchmark::State& state) {
  static const std::vector<workload::GeneratedEvent> all = [] {
    workload::Generator g({.events = 100000, .aggregates = 2000, .seed = 7, .payload_min = 200, .payload_max = 600});
    std::vector<workload::GeneratedEvent> out(kEvents);
    for (auto& e : out) g.next(e);
    return out;
  }();
  const Uuid previous = Uuid::v4();
  std::string wire;
  size_t at = 0;
  for (auto _ : state) {
    const workload::GeneratedEvent& ge = all[at % kEvents];
    const DomainEvent& e = ge.event;
    EventData ev{.id = pipeline::derive_event_id(e, "Vulnerability-0b5e2a4c", 41),
                 .type = e.event_type.str(),
                 .content_type = "application/json",
                 .data = e.payload};
    const pipeline::SourceRef source{ge.topic, 3, int64_t(123456 + at)};
    if (kProperties) {
      pipeline::build_properties(e, ev.id, previous, source, nullptr, &ev.properties);
    } else {
      ev.metadata = pipeline::build_metadata(e, ev.id, previous, source);
    }
    wire.clear();
    if (wire::append_records_fragment("Vulnerability-0b5e2a4c", 41, std::span(&ev, 1), &wire)) {
      state.SkipWithError("the encoder refused the event");
      break;
    }
    benchmark::DoNotOptimize(wire.data());
    ++at;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

BENCHMARK(BM_MetadataIntoFragment<false>)->Name("BM_MetadataIntoFragment/json");
BENCHMARK(BM_MetadataIntoFragment<true>)->Name("BM_MetadataIntoFragment/properties");
BENCHMARK(BM_BatchAppendEncode)->Arg(1)->Arg(8)->Arg(64);
BENCHMARK(BM_AppendRecordsFragment)->Arg(1)->Arg(8)->Arg(64);
BENCHMARK(BM_CopyOnly)->Arg(1)->Arg(8)->Arg(64);

}  // namespace
