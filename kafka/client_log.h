// librdkafka's own log lines, through the process's log (spdlog) instead of straight to stderr:
// with its time stamp and level, as "kafka: FACILITY: text", and at most one line per facility
// every few seconds (an outage makes librdkafka repeat the same failure several times a second,
// e.g. COMMITFAIL per asynchronous commit); the lines left out are counted on the next one.
//
// Threads: the callback runs on librdkafka's threads; the limiter is shared and locked.
//
//   rd_kafka_conf_t* conf = rd_kafka_conf_new();
//   log_through_spdlog(conf);   // before rd_kafka_new
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

struct rd_kafka_conf_s;

namespace kingest::kafka {

// Sets `conf`'s log callback to the one below.
void log_through_spdlog(rd_kafka_conf_s* conf);

// The limiter behind it, apart for its tests: `admit` says whether a line of `facility` at `now`
// is written, and how many of that facility's lines were left out since the last one written.
class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds every) : every_(every) {}
  struct Verdict {
    bool write = false;
    uint64_t left_out = 0;  // since the facility's previous line written
  };
  Verdict admit(const std::string& facility, std::chrono::steady_clock::time_point now);

 private:
  struct Facility {
    std::chrono::steady_clock::time_point last_written{};
    uint64_t left_out = 0;
    bool written = false;
  };
  std::chrono::milliseconds every_;
  std::mutex mu_;
  std::map<std::string, Facility> facilities_;
};

}  // namespace kingest::kafka
