// Micro-benchmark of the embedded store's group-commit append path (not registered in CMake; the
// bench/ folder decides how to build it). Usage:
//   event_store_benchmark [memory|file] [events_per_append] [appends] [streams] [db_path]
// Submits every append asynchronously, each with the exact expected revision of its stream (append
// i goes to stream i % streams), and reports events/s from the first submit to the last callback
// and the writer thread's CPU time per event (Linux).
//   event_store_benchmark multi [memory|file] [events] [streams] [records_per_request] [db_path]
// The same events (event i to stream i % streams), written with `append_multi`: requests of many
// streams' records, no checks. The store's ceiling for bulk writes.
//   event_store_benchmark waves [memory|file] [appends] [streams] [wave] [read_interval_us] [db_path]
// The pipeline's pattern: appends of 1-3 events (~500 B data, ~250 B metadata) with exact expected
// revisions (no_stream first) over `streams` streams, submitted in waves of `wave` appends to
// distinct streams, each wave once the previous one is answered; meanwhile another thread reads
// one event backwards from the end of random streams every `read_interval_us`. Reports appends/s,
// the writer thread's CPU time per append (Linux) and the read latencies.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include "store/event_store.h"

using namespace kingest;
using namespace kingest::store;

namespace {

// CPU seconds (user + system) of this process's threads named `name`; 0 where /proc is missing.
double thread_cpu_seconds(const std::string& name) {
  double total = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm_file(task.path() / "comm");
    std::string comm;
    std::getline(comm_file, comm);
    if (comm != name) continue;
    std::ifstream stat_file(task.path() / "stat");
    std::string line;
    std::getline(stat_file, line);
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::string field;
    unsigned long long user = 0;
    unsigned long long sys = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14) user = std::stoull(field);
      if (i == 15) sys = std::stoull(field);
    }
    total += static_cast<double>(user + sys) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return total;
}

// CPU seconds (user + system) of the whole process so far: the store's threads and the appending one.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Opens the store the benchmark writes to (a file starts empty); null after printing why not.
std::unique_ptr<EventStore> open_store(bool in_memory, const std::string& path) {
  if (!in_memory) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
  StoreOptions options;
  options.in_memory = in_memory;
  options.path = path;
  auto opened = EventStore::open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", std::string(opened.status().message()).c_str());
    return nullptr;
  }
  return std::move(*opened);
}

// One append, prepared before the clock starts so that the timing measures the store, not the
// generator.
struct Request {
  std::string stream;
  ExpectedRevision expected;
  std::vector<ProposedEvent> events;
};

// Wall time, the writer thread's CPU and the whole process's CPU from construction to `stop`.
class Measure {
 public:
  Measure()
      : writer_before_(thread_cpu_seconds("ki-store-write")),
        process_before_(process_cpu_seconds()),
        start_(std::chrono::steady_clock::now()) {}
  void stop() {
    secs_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    writer_cpu_ = thread_cpu_seconds("ki-store-write") - writer_before_;
    process_cpu_ = process_cpu_seconds() - process_before_;
  }
  // Seconds of wall time, of the writer's CPU and of the process's CPU.
  [[nodiscard]] std::tuple<double, double, double> result() const { return {secs_, writer_cpu_, process_cpu_}; }

 private:
  double writer_before_;
  double process_before_;
  std::chrono::steady_clock::time_point start_;
  double secs_ = 0;
  double writer_cpu_ = 0;
  double process_cpu_ = 0;
};

// Submits every request at once and waits for every answer; the number that failed.
int append_all(EventStore& store, std::vector<Request>& requests) {
  std::latch done(static_cast<std::ptrdiff_t>(requests.size()));
  std::atomic<int> failures{0};
  for (auto& r : requests) {
    store.append(std::move(r.stream), r.expected, std::move(r.events), [&](AppendResult res) {
      if (res.status != AppendStatus::kSuccess) failures.fetch_add(1);
      done.count_down();
    });
  }
  done.wait();
  return failures.load();
}

int run_waves(int argc, char** argv) {
  const bool in_memory = argc < 3 || std::string(argv[2]) != "file";
  const int total = argc > 3 ? std::atoi(argv[3]) : 100000;
  const int streams = argc > 4 ? std::atoi(argv[4]) : 20000;
  const int wave = std::min(argc > 5 ? std::atoi(argv[5]) : 4000, streams);
  const int read_interval_us = argc > 6 ? std::atoi(argv[6]) : 200;
  const std::string path = argc > 7 ? argv[7] : "/tmp/ki-store-bench-waves.db";
  auto store = open_store(in_memory, path);
  if (!store) return 1;

  std::mt19937_64 rng(42);
  std::string pool(1 << 20, ' ');
  for (char& c : pool) c = "abcdefghijklmnopqrstuvwxyz0123456789"[rng() % 36];
  auto json = [&](size_t n) {
    std::string s = R"({"orderId":"5f0c6d1e-6f53-4a44-9f3e-2b1f0a9c7d11","note":")";
    s.append(pool, rng() % (pool.size() - n), n - s.size() - 2);
    s += "\"}";
    return s;
  };
  std::vector<std::vector<Request>> waves;
  std::vector<int64_t> last(streams, -1);
  std::vector<int> order(streams);
  std::iota(order.begin(), order.end(), 0);
  size_t cursor = order.size();
  uint64_t events_total = 0;
  for (int made = 0; made < total;) {
    std::vector<Request> w;
    const int n = std::min(wave, total - made);
    for (int k = 0; k < n; ++k) {
      if (cursor == order.size()) {  // a new permutation: streams within a wave are distinct
        std::shuffle(order.begin(), order.end(), rng);
        cursor = 0;
      }
      const int s = order[cursor++];
      Request r;
      r.stream = "Order-" + std::to_string(s);
      r.expected = last[s] < 0 ? ExpectedRevision{ExpectNoStream{}}
                               : ExpectedRevision{StreamRevision{static_cast<uint64_t>(last[s])}};
      const int count = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < count; ++e) {
        r.events.push_back(ProposedEvent{Uuid::v4(), "OrderLinePlacedEvent", "application/json", json(500), json(250)});
      }
      last[s] += count;
      events_total += count;
      w.push_back(std::move(r));
    }
    made += n;
    waves.push_back(std::move(w));
  }

  std::atomic<bool> running{true};
  std::vector<double> latencies;
  std::thread reader([&] {
    std::mt19937_64 r(7);
    while (running.load()) {
      const std::string s = "Order-" + std::to_string(r() % streams);
      const auto t0 = std::chrono::steady_clock::now();
      auto res = store->read(s, ReadFrom::end(), 1, ReadDirection::kBackwards);
      latencies.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      if (!res.ok()) std::fprintf(stderr, "read: %s\n", std::string(res.status().message()).c_str());
      if (read_interval_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(read_interval_us));
    }
  });

  int failures = 0;
  Measure measure;
  for (auto& w : waves) failures += append_all(*store, w);
  measure.stop();
  const auto [secs, writer_cpu, process_cpu] = measure.result();
  running = false;
  reader.join();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1, size_t(p * latencies.size()))];
  };
  std::printf("%s waves: %d appends (%llu events, %d streams, waves of %d): %.0f appends/s, %.0f events/s, "
              "%.2f us/append, writer CPU %.2f us/append, process CPU %.2f us/append, %llu transactions, %d failures | %zu reads: p50 %.0f us, "
              "p99 %.0f us, max %.0f us\n",
              in_memory ? "memory" : "file", total, static_cast<unsigned long long>(events_total), streams, wave,
              total / secs, events_total / secs, secs * 1e6 / total, writer_cpu * 1e6 / total, process_cpu * 1e6 / total,
              static_cast<unsigned long long>(store->stats().transactions), failures, latencies.size(), pct(0.5),
              pct(0.99), latencies.empty() ? 0.0 : latencies.back());
  store->close();
  return failures == 0 ? 0 : 1;
}

// ~250-byte JSON payload and ~60 bytes of metadata, like the seed's domain events.
std::string bench_payload() {
  std::string payload = R"({"orderId":"5f0c6d1e-6f53-4a44-9f3e-2b1f0a9c7d11","customerId":"c-1042",)"
                        R"("lines":[{"sku":"SKU-123","qty":2,"price":1999}],"currency":"EUR",)"
                        R"("occurredAt":"2024-05-01T12:00:00.000Z","note":")";
  payload.append(250 - payload.size() - 2, 'x');
  payload += "\"}";
  return payload;
}
const char* const kBenchMetadata = R"({"$correlationId":"5f0c6d1e-6f53-4a44-9f3e-2b1f0a9c7d11"})";

int run_multi(int argc, char** argv) {
  const bool in_memory = argc < 3 || std::string(argv[2]) != "file";
  const int events = argc > 3 ? std::atoi(argv[3]) : 1000000;
  const int streams = argc > 4 ? std::atoi(argv[4]) : 250000;
  const int per_request = std::max(argc > 5 ? std::atoi(argv[5]) : 1000, 1);
  const std::string path = argc > 6 ? argv[6] : "/tmp/ki-store-bench-multi.db";
  auto store = open_store(in_memory, path);
  if (!store) return 1;
  const std::string payload = bench_payload();
  std::vector<MultiAppend> requests;
  for (int i = 0; i < events;) {
    MultiAppend m;
    const int n = std::min(per_request, events - i);
    // Stream i % streams under its own index: the request names each of its streams once.
    std::vector<int32_t> index_of;
    const int first = i % streams;
    for (int k = 0; k < n; ++k, ++i) {
      const int s = i % streams;
      const int slot = (s - first + streams) % streams;
      if (slot >= static_cast<int>(index_of.size())) index_of.resize(slot + 1, -1);
      if (index_of[slot] < 0) {
        index_of[slot] = static_cast<int32_t>(m.streams.size());
        m.streams.push_back("Order-" + std::to_string(s));
      }
      m.records.push_back(RecordWrite{static_cast<uint32_t>(index_of[slot]),
                                      ProposedEvent{Uuid::v4(), "OrderPlaced", "application/json", payload,
                                                    kBenchMetadata}});
    }
    requests.push_back(std::move(m));
  }
  std::latch done(static_cast<std::ptrdiff_t>(requests.size()));
  std::atomic<int> failures{0};
  Measure measure;
  for (auto& m : requests) {
    store->append_multi(std::move(m), [&](MultiAppendResult res) {
      if (res.status != AppendStatus::kSuccess) failures.fetch_add(1);
      done.count_down();
    });
  }
  done.wait();
  measure.stop();
  const auto [secs, writer_cpu, process_cpu] = measure.result();
  std::printf("%s multi: %d events (%d streams, %d records/request): %.0f events/s, writer CPU %.2f us/event, "
              "process CPU %.2f us/event, %llu transactions, %d failures, %.3f s\n",
              in_memory ? "memory" : "file", events, streams, per_request, events / secs, writer_cpu * 1e6 / events,
              process_cpu * 1e6 / events,
              static_cast<unsigned long long>(store->stats().transactions), failures.load(), secs);
  store->close();
  return failures.load() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "waves") return run_waves(argc, argv);
  if (argc > 1 && std::string(argv[1]) == "multi") return run_multi(argc, argv);
  const bool in_memory = argc < 2 || std::string(argv[1]) != "file";
  const int per_append = argc > 2 ? std::atoi(argv[2]) : 50;
  const int appends = argc > 3 ? std::atoi(argv[3]) : 4000;
  const int streams = argc > 4 ? std::atoi(argv[4]) : 1000;
  const std::string path = argc > 5 ? argv[5] : "/tmp/ki-store-bench.db";
  auto store = open_store(in_memory, path);
  if (!store) return 1;

  const std::string payload = bench_payload();
  const std::string metadata = kBenchMetadata;

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

  Measure measure;
  const int failures = append_all(*store, requests);
  measure.stop();
  const auto [secs, writer_cpu, process_cpu] = measure.result();
  const auto stats = store->stats();
  const double events = double(appends) * per_append;
  std::printf("%s: %d appends x %d events (%d streams): %.0f events/s, %.0f appends/s, writer CPU %.2f us/event, "
              "process CPU %.2f us/event, %llu transactions, %d failures, %.3f s\n",
              in_memory ? "memory" : "file", appends, per_append, streams, events / secs, appends / secs,
              writer_cpu * 1e6 / events, process_cpu * 1e6 / events, static_cast<unsigned long long>(stats.transactions), failures, secs);
  store->close();
  return failures == 0 ? 0 : 1;
}
