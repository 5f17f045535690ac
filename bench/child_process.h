// A child process of a command (bench runs the broker, the store, each measured run and the
// Node.js peer as processes of their own), with its exit status, CPU time and peak RSS.
//
// Threads: one owner. Lifecycle: spawn → wait (or stop); the destructor kills a child still running
// (and a child also gets SIGTERM when this process dies).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kingest::bench {

struct ChildExit {
  int exit_code = -1;        // the code, or 128 + signal
  double cpu_s = 0;          // user + system, every thread
  double peak_rss_mib = 0;
};

class ChildProcess {
 public:
  // Starts argv[0] with stdout and stderr appended to `log_path`.
  static absl::StatusOr<ChildProcess> spawn(const std::vector<std::string>& argv, const std::string& log_path);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const std::string& log_path() const { return log_path_; }
  // Waits up to `timeout` (polling, so that SIGINT of this process is noticed); nullopt if the child
  // still runs (timeout or interrupted).
  std::optional<ChildExit> wait(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL after `grace`; returns how it ended.
  ChildExit stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // The last `lines` lines of the log, for error messages.
  [[nodiscard]] std::string log_tail(size_t lines = 15) const;

 private:
  ChildProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_ = -1;
  std::string log_path_;
};

// Waits until `path` exists and is not empty; returns its first line.
absl::StatusOr<std::string> wait_for_file_line(const std::string& path, std::chrono::milliseconds timeout,
                                               ChildProcess* writer);

}  // namespace kingest::bench
