// The Prometheus text exposition format (version 0.0.4): metric families with HELP and TYPE lines,
// then their samples, families sorted by name, each family's samples together. Small enough to
// write by hand; tests run `promtool check metrics` on it.
//
// Threads: one Exposition is filled by one thread at a time (a Registry renders into a fresh one
// per scrape).
//
//   Exposition e;
//   e.counter("kurrent_ingest_events_read_total", "Kafka messages read", 42);
//   e.gauge("kurrent_ingest_consumer_lag", "...", 7, {{"topic", "t"}, {"partition", "0"}});
//   std::string body = e.text();
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kingest::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A histogram's cumulative buckets: (upper bound `le`, observations at or below it), ascending.
struct HistogramSnapshot {
  std::vector<std::pair<double, uint64_t>> buckets;
  uint64_t count = 0;
  double sum = 0;
};

class Exposition {
 public:
  void counter(std::string_view name, std::string_view help, uint64_t value, const Labels& labels = {});
  void counter(std::string_view name, std::string_view help, double value, const Labels& labels = {});
  void gauge(std::string_view name, std::string_view help, double value, const Labels& labels = {});
  void histogram(std::string_view name, std::string_view help, const HistogramSnapshot& h, const Labels& labels = {});
  // Declares a family without samples yet (so HELP and TYPE appear even when it is empty).
  void declare(std::string_view name, std::string_view type, std::string_view help);

  [[nodiscard]] std::string text() const;

 private:
  struct Family {
    std::string type;
    std::string help;
    std::string samples;
  };
  Family& family(std::string_view name, std::string_view type, std::string_view help);
  std::map<std::string, Family, std::less<>> families_;
};

// Formats a sample value the way Prometheus parses it (NaN, +Inf, -Inf, shortest round trip).
std::string format_value(double v);
// `name{k="v",...}` with label values escaped.
std::string sample_name(std::string_view name, const Labels& labels);

// Collectors add their families to each rendering. Thread-safe: collectors are added at set-up,
// render() may run on any thread (the HTTP server's, the textfile writer's).
class Registry {
 public:
  using Collector = std::function<void(Exposition&)>;
  void add(Collector collector);
  [[nodiscard]] std::string render() const;

 private:
  mutable std::mutex mu_;
  std::vector<Collector> collectors_;
};

}  // namespace kingest::metrics
