// Decode throughput of the three envelope formats (JSON, protobuf, FlatBuffers), each beside a
// copy-only baseline over exactly the same bytes: the ratio decode / copy is the distance to
// memory speed. Items/s is events/s; bytes/s is input bytes per second.
//
// Events: the seed-domain generator's (workload/: System, Vulnerability, Task, Relationship, the
// NestJS flat JSON shape), kept when the JSON message is 200-600 bytes. The binary envelopes carry
// the same events with the JSON payload inside (payload_content_type application/json), so every
// format validates the same payload JSON. `*_binary_payload` variants declare the payload
// application/octet-stream instead: the envelope alone, without payload validation.
// Inputs are SourceMessage values (padding capacity: JSON is parsed in place, as in the pipeline).
//
//   build/bin/codec_formats_benchmark --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "codecs/codec.h"
#include "workload/generator.h"

namespace {

using namespace kingest;
using namespace kingest::codecs;

constexpr size_t kEvents = 4096;  // a power of two (index mask), ~1.6 MB per format: beyond L2

enum class Variant { kJson, kProtobuf, kFlatBuffers, kProtobufBinaryPayload, kFlatBuffersBinaryPayload };

struct Corpus {
  std::vector<std::string> messages;  // padded like SourceMessage::value
  size_t bytes = 0;
  size_t max_size = 0;
};

const std::vector<DomainEvent>& seed_events() {
  static const std::vector<DomainEvent> events = [] {
    workload::Generator g({.events = 100000, .aggregates = 2000, .seed = 7, .payload_min = 60, .payload_max = 360});
    std::vector<DomainEvent> out;
    workload::GeneratedEvent e;
    while (out.size() < kEvents && g.next(e)) {
      if (e.value.size() < 200 || e.value.size() > 600) continue;
      out.push_back(e.event);
    }
    return out;
  }();
  return events;
}

const Corpus& corpus(Variant v) {
  static const auto all = [] {
    std::vector<Corpus> c(5);
    for (const DomainEvent& event : seed_events()) {
      DomainEvent binary = event;
      binary.content_type = "application/octet-stream";
      const std::string encoded[] = {encode_json(event), encode_protobuf(event), encode_flatbuffers(event),
                                     encode_protobuf(binary), encode_flatbuffers(binary)};
      for (size_t i = 0; i < 5; ++i) {
        SourceMessage m;
        m.assign_value(encoded[i].data(), encoded[i].size());
        c[i].bytes += m.value.size();
        c[i].max_size = std::max(c[i].max_size, m.value.size());
        c[i].messages.push_back(std::move(m.value));
      }
    }
    return c;
  }();
  return all[static_cast<size_t>(v)];
}

Codec codec_of(Variant v) {
  switch (v) {
    case Variant::kJson: return Codec::kJson;
    case Variant::kProtobuf:
    case Variant::kProtobufBinaryPayload: return Codec::kProtobuf;
    case Variant::kFlatBuffers:
    case Variant::kFlatBuffersBinaryPayload: return Codec::kFlatBuffers;
  }
  return Codec::kJson;
}

void set_counters(benchmark::State& state, const Corpus& c, size_t bytes) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["avg_event_bytes"] = static_cast<double>(c.bytes) / static_cast<double>(c.messages.size());
}

void BM_Decode(benchmark::State& state, Variant v) {
  const Corpus& c = corpus(v);
  if (c.messages.size() != kEvents) {
    state.SkipWithError("not enough events in the 200-600 byte range");
    return;
  }
  // Every message must decode, and to the event it was made from.
  for (size_t i = 0; i < c.messages.size(); ++i) {
    DecodeResult r = decode(codec_of(v), c.messages[i]);
    const auto* e = std::get_if<DomainEvent>(&r);
    if (!e || e->payload != seed_events()[i].payload || e->aggregate_id != seed_events()[i].aggregate_id) {
      state.SkipWithError(e ? "decoded a different event" : std::get<DecodeError>(r).reason.c_str());
      return;
    }
  }
  const Codec codec = codec_of(v);
  size_t i = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string& m = c.messages[i++ & (kEvents - 1)];
    DecodeResult r = decode(codec, m);
    benchmark::DoNotOptimize(r);
    bytes += m.size();
  }
  set_counters(state, c, bytes);
}

// The floor: copying each message's bytes once (as the source does out of librdkafka's buffer).
void BM_CopyOnly(benchmark::State& state, Variant v) {
  const Corpus& c = corpus(v);
  std::vector<char> buffer(c.max_size);
  size_t i = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string& m = c.messages[i++ & (kEvents - 1)];
    std::memcpy(buffer.data(), m.data(), m.size());
    benchmark::DoNotOptimize(buffer.data());
    benchmark::ClobberMemory();
    bytes += m.size();
  }
  set_counters(state, c, bytes);
}

BENCHMARK_CAPTURE(BM_Decode, json, Variant::kJson);
BENCHMARK_CAPTURE(BM_CopyOnly, json, Variant::kJson);
BENCHMARK_CAPTURE(BM_Decode, protobuf, Variant::kProtobuf);
BENCHMARK_CAPTURE(BM_CopyOnly, protobuf, Variant::kProtobuf);
BENCHMARK_CAPTURE(BM_Decode, flatbuffers, Variant::kFlatBuffers);
BENCHMARK_CAPTURE(BM_CopyOnly, flatbuffers, Variant::kFlatBuffers);
BENCHMARK_CAPTURE(BM_Decode, protobuf_binary_payload, Variant::kProtobufBinaryPayload);
BENCHMARK_CAPTURE(BM_Decode, flatbuffers_binary_payload, Variant::kFlatBuffersBinaryPayload);

}  // namespace
