#include "metrics/output.h"

#include <httplib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>

namespace kingest::metrics {

absl::StatusOr<std::pair<std::string, int>> parse_listen(const std::string& text) {
  std::string host = "127.0.0.1";
  std::string port_text = text;
  if (auto colon = text.rfind(':'); colon != std::string::npos) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "127.0.0.1";
  }
  int port = -1;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return absl::InvalidArgumentError("--metrics-listen '" + text +
                                      "': expected HOST:PORT, e.g. 127.0.0.1:9464 (port 0 picks a free one)");
  }
  return std::pair{host, port};
}

absl::Status write_textfile(const std::string& path, const std::string& text) {
  // Beside the target (rename is atomic only within one file system), with a name node_exporter's
  // collector ignores (it reads *.prom only).
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    out << text;
    if (!out.flush()) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      return absl::UnavailableError("--metrics-textfile: cannot write " + tmp + " (is the directory writable?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::UnavailableError("--metrics-textfile: cannot rename " + tmp + " to " + path + ": " + ec.message());
  }
  return absl::OkStatus();
}

MetricsOutput::MetricsOutput(const Registry& registry, OutputOptions options)
    : registry_(registry), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<MetricsOutput>> MetricsOutput::start(const Registry& registry, OutputOptions options) {
  std::unique_ptr<MetricsOutput> out(new MetricsOutput(registry, std::move(options)));
  if (!out->options_.listen.empty()) {
    auto hp = parse_listen(out->options_.listen);
    if (!hp.ok()) return hp.status();
    auto server = std::make_unique<httplib::Server>();
    // Scrapes come one at a time; one worker is plenty.
    server->new_task_queue = [] { return new httplib::ThreadPool(1); };
    const Registry* reg = &registry;
    server->Get("/metrics", [reg](const httplib::Request&, httplib::Response& res) {
      res.set_content(reg->render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    int port = hp->second;
    if (port == 0) {
      port = server->bind_to_any_port(hp->first);
    } else if (!server->bind_to_port(hp->first, port)) {
      port = -1;
    }
    if (port <= 0) {
      return absl::InvalidArgumentError("--metrics-listen " + out->options_.listen +
                                        ": cannot listen there (port in use, or not an address of this machine)");
    }
    const bool v6 = hp->first.find(':') != std::string::npos;
    out->url_ = "http://" + (v6 ? "[" + hp->first + "]" : hp->first) + ":" + std::to_string(port) + "/metrics";
    out->server_ = std::move(server);
    out->server_thread_ = std::thread([s = out->server_.get()] { s->listen_after_bind(); });
  }
  if (!out->options_.textfile.empty()) {
    if (auto s = write_textfile(out->options_.textfile, registry.render()); !s.ok()) {
      (void)out->stop();
      return s;
    }
    out->textfile_thread_ = std::thread([o = out.get()] { o->textfile_loop(); });
  }
  return out;
}

void MetricsOutput::textfile_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (cv_.wait_for(lock, options_.textfile_every, [this] { return stopping_; })) break;
    lock.unlock();
    (void)write_textfile(options_.textfile, registry_.render());
    lock.lock();
  }
}

absl::Status MetricsOutput::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return absl::OkStatus();
    stopped_ = true;
    stopping_ = true;
  }
  cv_.notify_all();
  if (textfile_thread_.joinable()) textfile_thread_.join();
  if (server_) {
    server_->stop();
    if (server_thread_.joinable()) server_thread_.join();
  }
  if (!options_.textfile.empty()) return write_textfile(options_.textfile, registry_.render());
  return absl::OkStatus();
}

MetricsOutput::~MetricsOutput() { (void)stop(); }

void add_process_metrics(Registry& registry) {
  static const double start_time = [] {
    return double(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count()) /
           1000.0;
  }();
  registry.add([](Exposition& e) {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu = double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    e.counter("process_cpu_seconds_total", "User and system CPU time of this process, every thread", cpu);
    long pages_total = 0, pages_resident = 0;
    if (std::ifstream statm("/proc/self/statm"); statm >> pages_total >> pages_resident) {
      const double page = double(::sysconf(_SC_PAGESIZE));
      e.gauge("process_resident_memory_bytes", "Resident memory of this process", double(pages_resident) * page);
      e.gauge("process_virtual_memory_bytes", "Virtual memory of this process", double(pages_total) * page);
    }
    e.gauge("process_max_resident_memory_bytes", "Peak resident memory of this process so far",
            double(ru.ru_maxrss) * 1024.0);
    e.gauge("process_start_time_seconds", "When this process's metrics began, seconds since the Unix epoch",
            start_time);
    size_t fds = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++fds;
    }
    if (fds > 0) e.gauge("process_open_fds", "Open file descriptors of this process", double(fds));
  });
}

}  // namespace kingest::metrics
