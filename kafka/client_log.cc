#include "kafka/client_log.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

namespace kingest::kafka {

LogLimiter::Verdict LogLimiter::admit(const std::string& facility, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  Facility& f = facilities_[facility];
  if (f.written && now - f.last_written < every_) {
    f.left_out++;
    return {};
  }
  Verdict v{.write = true, .left_out = f.left_out};
  f.written = true;
  f.last_written = now;
  f.left_out = 0;
  return v;
}

namespace {

// syslog levels, as librdkafka gives them.
spdlog::level::level_enum level_of(int syslog_level) {
  if (syslog_level <= 3) return spdlog::level::err;
  if (syslog_level == 4) return spdlog::level::warn;
  if (syslog_level <= 6) return spdlog::level::info;
  return spdlog::level::debug;
}

void on_log(const rd_kafka_t* /*rk*/, int level, const char* facility, const char* text) {
  static LogLimiter limiter(std::chrono::seconds(5));
  const auto v = limiter.admit(facility, std::chrono::steady_clock::now());
  if (!v.write) return;
  if (v.left_out > 0) {
    spdlog::log(level_of(level), "kafka: {}: {} ({} more like it since the last one shown)", facility, text,
                v.left_out);
  } else {
    spdlog::log(level_of(level), "kafka: {}: {}", facility, text);
  }
}

}  // namespace

void log_through_spdlog(rd_kafka_conf_s* conf) { rd_kafka_conf_set_log_cb(conf, on_log); }

}  // namespace kingest::kafka
