// Micro-benchmark of the embedded store's group-commit append path (not registered in CMake; the
// bench/ folder decides how to build it). Usage:
//   event_store_benchmark [memory|file] [events_per_append] [appends] [streams] [db_path]
// Submits every append asynchronously, each with the exact expected revision of its stream, and
// reports events/s from the first submit to the last callback.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <latch>
#include <string>
#include <vector>

#include "store/event_store.h"

using namespace kingest;
using namespace kingest::store;

int main(int argc, char** argv) {
  const bool in_memory = argc < 2 || std::string(argv[1]) != "file";
  const int per_append = argc > 2 ? std::atoi(argv[2]) : 50;
  const int appends = argc > 3 ? std::atoi(argv[3]) : 4000;
  const int streams = argc > 4 ? std::atoi(argv[4]) : 1000;
  const std::string path = argc > 5 ? argv[5] : "/tmp/ki-store-bench.db";
  if (!in_memory) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }

  StoreOptions options;
  options.in_memory = in_memory;
  options.path = path;
  auto opened = EventStore::open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", std::string(opened.status().message()).c_str());
    return 1;
  }
  auto& store = *opened;

  // ~250-byte JSON payload, like the seed's domain events.
  std::string payload = R"({"orderId":"5f0c6d1e-6f53-4a44-9f3e-2b1f0a9c7d11","customerId":"c-1042",)"
                        R"("lines":[{"sku":"SKU-123","qty":2,"price":1999}],"currency":"EUR",)"
                        R"("occurredAt":"2024-05-01T12:00:00.000Z","note":")";
  payload.append(250 - payload.size() - 2, 'x');
  payload += "\"}";
  const std::string metadata = R"({"$correlationId":"5f0c6d1e-6f53-4a44-9f3e-2b1f0a9c7d11"})";

  // Prepare every request first so the timing measures the store, not the generator.
  struct Request {
    std::string stream;
    ExpectedRevision expected;
    std::vector<ProposedEvent> events;
  };
  std::vector<Request> requests;
  requests.reserve(appends);
  std::vector<int64_t> last(streams, -1);
  for (int i = 0; i < appends; ++i) {
    const int s = i % streams;
    Request r;
    r.stream = "Order-" + std::to_string(s);
    r.expected = last[s] < 0 ? ExpectedRevision{ExpectNoStream{}} : ExpectedRevision{StreamRevision{uint64_t(last[s])}};
    for (int k = 0; k < per_append; ++k) {
      r.events.push_back(ProposedEvent{Uuid::v4(), "OrderPlaced", "application/json", payload, metadata});
    }
    last[s] += per_append;
    requests.push_back(std::move(r));
  }

  std::latch done(appends);
  std::atomic<int> failures{0};
  const auto start = std::chrono::steady_clock::now();
  for (auto& r : requests) {
    store->append(std::move(r.stream), r.expected, std::move(r.events), [&](AppendResult res) {
      if (res.status != AppendStatus::kSuccess) failures.fetch_add(1);
      done.count_down();
    });
  }
  done.wait();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto stats = store->stats();
  const double events = double(appends) * per_append;
  std::printf("%s: %d appends x %d events (%d streams): %.0f events/s, %.0f appends/s, %llu transactions, "
              "%d failures, %.3f s\n",
              in_memory ? "memory" : "file", appends, per_append, streams, events / secs, appends / secs,
              static_cast<unsigned long long>(stats.transactions), failures.load(), secs);
  store->close();
  return failures.load() == 0 ? 0 : 1;
}
