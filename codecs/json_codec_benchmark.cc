// Google Benchmark of the JSON envelope codec (not registered in CMake; bench/ decides how to build
// it). Links ki_codecs and benchmark::benchmark_main. Events are realistic flat NestJS envelopes
// of 300-600 bytes, prepared as SourceMessage values (padding capacity, so parsed in place).
// Items/s is events/s; bytes/s is input JSON decoded per second.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "codecs/json_codec.h"

namespace {

using namespace kingest;
using namespace kingest::codecs;

std::vector<std::string> make_events(size_t n, JsonShape shape) {
  std::mt19937_64 rng(42);
  const char* types[] = {"OrderPlaced", "OrderShipped", "PaymentCaptured", "CustomerRegistered", "StockAdjusted"};
  const char* names[] = {"Alice Martin", "Bob Dupont", "山田太郎", "José García", "Zoë Müller"};
  std::vector<std::string> out;
  out.reserve(n);
  while (out.size() < n) {
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "%08llx-%04llx-4%03llx-a%03llx-%012llx",
                  static_cast<unsigned long long>(rng() & 0xffffffff), static_cast<unsigned long long>(rng() & 0xffff),
                  static_cast<unsigned long long>(rng() & 0xfff), static_cast<unsigned long long>(rng() & 0xfff),
                  static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
    DomainEvent e;
    e.event_id = uuid;
    e.event_type = types[rng() % 5];
    e.aggregate_id = "order-" + std::to_string(rng() % 1000000);
    e.aggregate_type = "Order";
    e.aggregate_version = static_cast<int64_t>(rng() % 500);
    if (rng() % 2) {
      e.correlation_id = uuid;
      e.causation_id = uuid;
    }
    e.occurred_at = "2024-01-02T03:04:05.678Z";
    e.payload = "{\"customerId\":\"cust-" + std::to_string(rng() % 100000) + "\",\"customerName\":\"" +
                names[rng() % 5] + "\",\"currency\":\"EUR\",\"total\":" + std::to_string(rng() % 100000) + ".5" +
                ",\"lines\":[";
    const int lines = static_cast<int>(rng() % 4);
    for (int i = 0; i < lines; ++i) {
      if (i) e.payload += ',';
      e.payload += "{\"sku\":\"SKU-" + std::to_string(rng() % 99999) + "\",\"qty\":" + std::to_string(1 + rng() % 9) +
                   ",\"price\":" + std::to_string(rng() % 10000) + ".99}";
    }
    e.payload += "],\"gift\":false,\"note\":null}";
    const std::string json = encode_json(e, shape);
    if (json.size() < 200 || json.size() > 600) continue;
    SourceMessage msg;
    msg.assign_value(json.data(), json.size());
    out.push_back(std::move(msg.value));
  }
  return out;
}

template <bool kInPlace>
void run_decode(benchmark::State& state, JsonShape shape) {
  const std::vector<std::string> events = make_events(4096, shape);
  size_t bytes = 0;
  size_t i = 0;
  for (auto _ : state) {
    const std::string& e = events[i++ & 4095];
    DecodeResult r = kInPlace ? decode_json(e) : decode_json(std::string_view(e));
    if (!std::holds_alternative<DomainEvent>(r)) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(r);
    bytes += e.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

void BM_DecodeFlatInPlace(benchmark::State& state) { run_decode<true>(state, JsonShape::kFlat); }
void BM_DecodeFlatCopied(benchmark::State& state) { run_decode<false>(state, JsonShape::kFlat); }
void BM_DecodeNestedInPlace(benchmark::State& state) { run_decode<true>(state, JsonShape::kNested); }

void BM_EncodeFlat(benchmark::State& state) {
  const std::vector<std::string> events = make_events(4096, JsonShape::kFlat);
  std::vector<DomainEvent> decoded;
  for (const auto& e : events) decoded.push_back(std::get<DomainEvent>(decode_json(e)));
  size_t i = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    std::string json = encode_json(decoded[i++ & 4095]);
    bytes += json.size();
    benchmark::DoNotOptimize(json);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

BENCHMARK(BM_DecodeFlatInPlace)->ThreadRange(1, 2)->UseRealTime();
BENCHMARK(BM_DecodeFlatCopied);
BENCHMARK(BM_DecodeNestedInPlace);
BENCHMARK(BM_EncodeFlat);

}  // namespace
