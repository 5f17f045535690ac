#include "workload/verifier.h"

#include <oneapi/tbb/parallel_for.h>
#include <simdjson.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace kingest::workload {
namespace {

struct Expected {
  Uuid id;
  size_t content_hash = 0;  // of type and payload bytes
  std::string correlation;
};

size_t content_hash(std::string_view type, std::string_view data) {
  return std::hash<std::string_view>{}(type) * 1000003u ^ std::hash<std::string_view>{}(data);
}

}  // namespace

VerifyResult verify(const GeneratorOptions& produced, Sink& sink) {
  std::unordered_map<std::string, std::vector<Expected>> expected;
  {
    Generator g(produced);
    GeneratedEvent e;
    while (g.next(e)) {
      auto& list = expected[e.stream];
      if (list.size() + 1 != uint64_t(e.event.aggregate_version)) {
        // The generator guarantees versions 1..k in order; anything else is a bug here.
        return VerifyResult{false, 0, 0, 1, {"generator produced " + e.stream + " out of order"}};
      }
      list.push_back({*Uuid::parse(e.event.event_id), content_hash(e.event.event_type, e.event.payload),
                      e.event.correlation_id.str()});
    }
  }
  std::vector<const std::pair<const std::string, std::vector<Expected>>*> streams;
  streams.reserve(expected.size());
  for (const auto& kv : expected) streams.push_back(&kv);

  std::mutex mu;
  VerifyResult result;
  std::atomic<uint64_t> events_checked{0};
  auto problem = [&](std::string what) {
    std::lock_guard lock(mu);
    ++result.problem_count;
    if (result.problems.size() < 20) result.problems.push_back(std::move(what));
  };
  oneapi::tbb::parallel_for(size_t(0), streams.size(), [&](size_t si) {
    const auto& [name, want] = *streams[si];
    auto got = sink.read_forwards(name, StreamRevision{0}, want.size() + 1);
    if (!got.ok()) {
      problem(name + ": read failed: " + std::string(got.status().message()));
      return;
    }
    if (got->size() != want.size()) {
      problem(name + ": " + std::to_string(got->size()) + " events, expected " + std::to_string(want.size()));
      return;
    }
    simdjson::dom::parser parser;
    for (size_t r = 0; r < want.size(); ++r) {
      const auto& g = (*got)[r];
      const auto& w = want[r];
      std::string at = name + "@" + std::to_string(r) + ": ";
      if (g.revision.value() != r) problem(at + "revision " + std::to_string(g.revision.value()));
      if (g.id != w.id) problem(at + "id " + g.id.to_string() + ", expected " + w.id.to_string());
      if (content_hash(g.type, g.data) != w.content_hash) problem(at + "type or payload differs (type " + g.type + ")");
      auto doc = parser.parse(g.metadata);
      std::string_view corr, cause;
      if (doc.error() || doc["$correlationId"].get(corr) || doc["$causationId"].get(cause)) {
        problem(at + "metadata lacks $correlationId/$causationId: " + g.metadata);
        continue;
      }
      if (corr != w.correlation) problem(at + "$correlationId " + std::string(corr));
      std::string want_cause = r == 0 ? w.correlation : want[r - 1].id.to_string();
      if (cause != want_cause) problem(at + "$causationId " + std::string(cause) + ", expected " + want_cause);
    }
    events_checked.fetch_add(want.size());
  });
  result.streams_checked = streams.size();
  result.events_checked = events_checked.load();
  result.ok = result.problem_count == 0;
  return result;
}

}  // namespace kingest::workload
