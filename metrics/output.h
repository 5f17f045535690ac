// Where a registry's text goes: an HTTP endpoint serving GET /metrics (cpp-httplib, one worker
// thread), and a textfile for node_exporter's textfile collector, rewritten atomically (a
// temporary file beside it, then rename) every interval and once more when the output stops.
//
// Owner: a command (replay, run, demo, serve-store). Threads: the endpoint and the textfile writer
// run on their own threads and call Registry::render there. Lifecycle: start → ... → stop (or
// destruction): the last textfile is written after the command's final figures are in.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "metrics/exposition.h"

namespace httplib {
class Server;
}

namespace kingest::metrics {

struct OutputOptions {
  std::string listen;    // HOST:PORT (port 0: any free port); empty: no endpoint
  std::string textfile;  // PATH; empty: no textfile
  std::chrono::milliseconds textfile_every{10000};
};

// "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT" (the last two on loopback) → host and port; the
// error names --metrics-listen.
absl::StatusOr<std::pair<std::string, int>> parse_listen(const std::string& text);

// Writes `text` to `path` atomically: a reader sees the old file or the new one, never a mix.
absl::Status write_textfile(const std::string& path, const std::string& text);

class MetricsOutput {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsOutput>> start(const Registry& registry, OutputOptions options);
  ~MetricsOutput();
  MetricsOutput(const MetricsOutput&) = delete;
  MetricsOutput& operator=(const MetricsOutput&) = delete;

  // http://HOST:PORT/metrics with the bound port; empty without an endpoint.
  [[nodiscard]] const std::string& url() const { return url_; }
  // Writes the textfile a last time and stops the endpoint. Idempotent.
  absl::Status stop();

 private:
  MetricsOutput(const Registry& registry, OutputOptions options);
  void textfile_loop();

  const Registry& registry_;
  OutputOptions options_;
  std::string url_;
  std::unique_ptr<httplib::Server> server_;
  std::thread server_thread_;
  std::thread textfile_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool stopped_ = false;
};

// Process figures: resident memory, CPU seconds, start time, open file descriptors, threads.
void add_process_metrics(Registry& registry);

}  // namespace kingest::metrics
