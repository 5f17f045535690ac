// Integration-test helpers that run `kurrent-ingest` the way users do, one process per part: the
// embedded Kafka (`broker`), the store behind its gRPC server (`serve-store`, a file database) and
// the commands under test, each writing to a file in the test's own temporary folder (removed when
// the test passes).
//
// Threads: the test's thread only. The processes are tests/processes.h's.
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
#include "tests/processes.h"

namespace kingest::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline const std::string kSeedTopics = "system-events,vulnerability-events,task-events,relationship-events";

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
