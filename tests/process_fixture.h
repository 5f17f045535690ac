// Integration-test helpers that run `kurrent-ingest` the way users do, one process per part: the
// embedded Kafka (`broker`), the store behind its gRPC server (`serve-store`, a file database) and
// the commands under test, each writing to a file in the test's own temporary folder (removed when
// the test passes).
//
// Threads: the test's thread only. KI_BINARY names the binary (set by tests/CMakeLists.txt).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/testing/eventually.h"
#include "kafka/group_progress.h"

namespace kingest::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline const std::string kSeedTopics = "system-events,vulnerability-events,task-events,relationship-events";

// A child process running `kurrent-ingest ARGS` (through sh, output appended to a file).
class Process {
 public:
  Process(const std::string& args, const std::string& out) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string cmd = "exec " + std::string(KI_BINARY) + " " + args + " >> " + out + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      ::_exit(127);
    }
  }
  ~Process() {
    if (pid_ > 0) kill(SIGKILL);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Exit code (or 128 + signal), waiting up to `timeout`; -1 when still running.
  int wait(std::chrono::milliseconds timeout) {
    auto end = Clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (Clock::now() >= end) return -1;
      std::this_thread::sleep_for(20ms);  // polling a child's exit, not waiting for a result
    }
    return code_;
  }
  int kill(int sig) {
    if (pid_ <= 0) return code_;
    ::kill(pid_, sig);
    return wait(60s);
  }

 private:
  pid_t pid_ = -1;
  int code_ = -1;
};

inline std::string slurp(const std::string& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The first line of `file` once it has one, or "" after `timeout`.
inline std::string read_line(const std::string& file, std::chrono::milliseconds timeout) {
  std::string line;
  const bool found = eventually(
      [&] {
        std::ifstream in(file);
        return std::getline(in, line) && !line.empty();
      },
      timeout);
  return found ? line : std::string();
}

// Waits until `file` holds `text`.
inline ::testing::AssertionResult wait_for_text(const std::string& file, const std::string& text,
                                                std::chrono::milliseconds timeout) {
  return eventually([&] { return slurp(file).find(text) != std::string::npos; }, timeout,
                    "\"" + text + "\" in " + file);
}

// Waits until consumer group `group` has committed an offset past the start of a partition of
// `topics` (comma-separated): its run has read, written and acknowledged events, and is under way.
inline ::testing::AssertionResult wait_for_first_commit(const std::string& brokers, const std::string& group,
                                                        const std::string& topics, std::chrono::milliseconds timeout) {
  auto progress = kafka::GroupProgress::open(brokers, group, {});
  if (!progress.ok()) return ::testing::AssertionFailure() << progress.status();
  std::vector<std::string> names;
  for (size_t start = 0, end; start <= topics.size(); start = end + 1) {
    end = std::min(topics.find(',', start), topics.size());
    names.push_back(topics.substr(start, end - start));
  }
  auto ends = (*progress)->end_offsets(names);
  if (!ends.ok()) return ::testing::AssertionFailure() << ends.status();
  return eventually(
      [&] {
        auto committed = (*progress)->committed(*ends);
        if (!committed.ok()) return false;
        for (const auto& [tp, offset] : *committed) {
          if (offset > 0) return true;
        }
        return false;
      },
      timeout, "a commit by consumer group " + group);
}

// Occurrences of `what` in `text`.
inline size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A number `"key": value` of a JSON report; ~0 when absent.
inline uint64_t field(const std::string& report, const std::string& key) {
  auto at = report.find("\"" + key + "\":");
  if (at == std::string::npos) return ~uint64_t{0};
  return std::stoull(report.substr(at + key.size() + 3));
}

// A broker with the seed's topics (`partitions_` each, 8 unless a derived fixture's constructor sets
// more: the embedded Kafka keeps about 5 MiB per partition and silently drops older data) and, on
// demand, a store server.
class ProcessFixture : public ::testing::Test {
 protected:
  explicit ProcessFixture(std::string name)
      : dir_(std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()))) {}

  void SetUp() override {
    std::filesystem::create_directories(dir_);
    broker_ = std::make_unique<Process>("broker --topics " + kSeedTopics + " --partitions " +
                                            std::to_string(partitions_) + " --bootstrap-file " + dir_ + "/bootstrap",
                                        dir_ + "/broker.out");
    bootstrap_ = read_line(dir_ + "/bootstrap", 20s);
    ASSERT_FALSE(bootstrap_.empty()) << slurp(dir_ + "/broker.out");
  }
  void TearDown() override {
    store_.reset();
    broker_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  void start_store(const std::string& listen = "127.0.0.1:0", const std::string& extra = "") {
    std::filesystem::remove(dir_ + "/address");
    store_ = std::make_unique<Process>("serve-store --db " + dir_ + "/events.db --listen " + listen +
                                           " --address-file " + dir_ + "/address " + extra,
                                       dir_ + "/store.out");
    address_ = read_line(dir_ + "/address", 20s);
    ASSERT_FALSE(address_.empty()) << slurp(dir_ + "/store.out");
  }

  // Runs `kurrent-ingest ARGS` to its end (killed after `timeout`); its output goes to run.out.
  int run(const std::string& args, std::chrono::milliseconds timeout = 120s) {
    Process p(args, dir_ + "/run.out");
    int code = p.wait(timeout);
    return code < 0 ? p.kill(SIGKILL) : code;
  }

  [[nodiscard]] std::string url() const { return "'kurrentdb://" + address_ + "?tls=false'"; }

  [[nodiscard]] std::string replay_args(const std::string& group, const std::string& report = "report.json") const {
    return "replay --brokers " + bootstrap_ + " --topics " + kSeedTopics + " --group " + group + " --kurrent " + url() +
           " --dlq-file " + dir_ + "/dead-letters.ndjson --report " + dir_ + "/" + report + " --progress-s 2" +
           " -X session.timeout.ms=4000 -X heartbeat.interval.ms=500 --retry-for-s 120";
  }

  [[nodiscard]] std::string output() const { return slurp(dir_ + "/run.out"); }
  [[nodiscard]] std::string report(const std::string& name = "report.json") const { return slurp(dir_ + "/" + name); }

  std::string dir_;
  int partitions_ = 8;
  std::unique_ptr<Process> broker_;
  std::unique_ptr<Process> store_;
  std::string bootstrap_;
  std::string address_;
};

}  // namespace kingest::testing
