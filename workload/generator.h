// Seed-domain workload: deterministic streams of System / Vulnerability / Task / Relationship
// events in the NestJS publisher's JSON shape, keyed by aggregate id, versions 1..k per aggregate,
// many aggregates interleaved (never stream by stream). The same options and seed always yield the
// same bytes, so a verifier can regenerate what was produced instead of keeping it.
//
// Threads: one generator per thread. Memory: O(aggregates), not O(events).
//
//   Generator g({.events = 1000, .aggregates = 50, .seed = 7});
//   GeneratedEvent e;
//   while (g.next(e)) producer.produce(e.topic, e.key, e.value, "application/json");
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string_view>
#include <string>
#include <vector>

#include "core/domain_event.h"

namespace kingest::workload {

struct AggregateKind {
  std::string type;    // e.g. "System"
  std::string topic;   // e.g. "system-events"
  std::string created; // the type of version 1, e.g. "SystemRegistered"
  std::vector<std::string> updates;  // types of later versions
};

// The seed's four aggregates and topics.
const std::vector<AggregateKind>& seed_domain();

// How events are encoded: the NestJS JSON shape, a binary envelope (with the JSON payload inside),
// or a deterministic rotation of the three.
enum class Format { kJson, kProtobuf, kFlatBuffers, kMixed };
std::optional<Format> parse_format(std::string_view name);  // "json|protobuf|flatbuffers|mixed"

struct GeneratorOptions {
  uint64_t events = 200000;
  uint64_t aggregates = 0;        // 0: events / 20 (at least 1)
  uint64_t seed = 1;
  size_t payload_min = 200;       // bytes of the payload object
  size_t payload_max = 600;
  std::vector<std::string> topics;  // empty: the seed's topic per aggregate kind; else round-robin
  Format format = Format::kJson;
  // Messages keyed by aggregate id (one aggregate, one partition), or with no key, as NestJS's
  // `emit(topic, event)` sends them (the producer then spreads an aggregate over partitions).
  bool keyed = true;
  // Each aggregate's versions produced together, one after another (as a request handler emits
  // them), instead of aggregates interleaved at random.
  bool burst = false;
};

struct GeneratedEvent {
  std::string topic;
  std::string key;          // aggregate id
  bool keyed = true;        // false: the message has no key (`key_view()` is null)
  std::string value;        // the message bytes in the chosen format
  std::string content_type; // the content-type header that names the format
  std::string stream;       // {AggregateType}-{AggregateId}
  DomainEvent event;        // what the value encodes

  // The key to produce: null (data() == nullptr) for an unkeyed message.
  [[nodiscard]] std::string_view key_view() const { return keyed ? std::string_view(key) : std::string_view(); }
};

class Generator {
 public:
  explicit Generator(GeneratorOptions options);
  // Fills `out` with the next event; false when all events were generated.
  bool next(GeneratedEvent& out);
  [[nodiscard]] uint64_t aggregates() const { return aggregate_count_; }
  [[nodiscard]] std::vector<std::string> topics() const;

 private:
  const std::string& aggregate_id(uint64_t index);
  std::string payload_for(const AggregateKind& kind, uint64_t aggregate, int64_t version);

  GeneratorOptions options_;
  uint64_t aggregate_count_ = 0;
  uint64_t produced_ = 0;
  std::mt19937_64 rng_;
  std::vector<uint32_t> next_version_;  // per aggregate
  std::vector<uint32_t> remaining_;     // per aggregate
  std::vector<uint64_t> live_;          // aggregates with events left
  std::optional<size_t> burst_pick_;    // burst: the aggregate being produced (index into live_)
  std::vector<std::string> aggregate_ids_;  // filled on first use
};

}  // namespace kingest::workload
