#include "kafka/producer.h"
#include "kafka/client_log.h"

#include <librdkafka/rdkafka.h>

namespace kingest::kafka {

absl::StatusOr<std::unique_ptr<Producer>> Producer::create(const std::string& brokers,
                                                           const std::map<std::string, std::string>& extra) {
  std::unique_ptr<Producer> p(new Producer());
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  log_through_spdlog(conf);
  std::map<std::string, std::string> props = {
      {"bootstrap.servers", brokers},
      {"linger.ms", "5"},
      {"batch.num.messages", "10000"},
      {"queue.buffering.max.messages", "500000"},
      {"compression.type", "none"},
      {"enable.idempotence", "false"},
      {"log_level", "4"},
  };
  for (const auto& [k, v] : extra) props[k] = v;
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError("kafka producer property " + k + ": " + err);
    }
  }
  rd_kafka_conf_set_opaque(conf, p.get());
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque) {
    Producer::on_delivery(rk, m, opaque);
  });
  p->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (p->rk_ == nullptr) return absl::InvalidArgumentError(std::string("kafka producer: ") + err);
  return p;
}

Producer::~Producer() {
  if (rk_ != nullptr) rd_kafka_destroy(rk_);
}

void Producer::on_delivery(rd_kafka_s*, const void* msg, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  const auto* m = static_cast<const rd_kafka_message_t*>(msg);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    self->failed_.fetch_add(1);
    self->last_error_.store(m->err);
  } else {
    self->delivered_.fetch_add(1);
  }
}

std::string Producer::last_error() const {
  int e = last_error_.load();
  return e == 0 ? std::string() : rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(e));
}

absl::Status Producer::produce(const std::string& topic, std::string_view key, std::string_view value,
                               std::string_view content_type,
                               const std::vector<std::pair<std::string, std::string>>& headers) {
  for (;;) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (!content_type.empty() || !headers.empty()) {
      hdrs = rd_kafka_headers_new(headers.size() + 1);
      if (!content_type.empty()) {
        rd_kafka_header_add(hdrs, "content-type", -1, content_type.data(), ssize_t(content_type.size()));
      }
      for (const auto& [k, v] : headers) rd_kafka_header_add(hdrs, k.c_str(), -1, v.data(), ssize_t(v.size()));
    }
    // The array form of producev (its macros are GNU statement expressions).
    rd_kafka_vu_t vus[5] = {};
    vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vus[0].u.cstr = topic.c_str();
    vus[1].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vus[1].u.i = RD_KAFKA_MSG_F_COPY;
    // A null `key` (data() == nullptr) produces a message without a key.
    vus[2].vtype = RD_KAFKA_VTYPE_KEY;
    vus[2].u.mem.ptr = key.data() == nullptr ? nullptr : const_cast<char*>(key.data());
    vus[2].u.mem.size = key.size();
    vus[3].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[3].u.mem.ptr = const_cast<char*>(value.data());
    vus[3].u.mem.size = value.size();
    vus[4].vtype = RD_KAFKA_VTYPE_HEADERS;
    vus[4].u.headers = hdrs;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (rd_kafka_error_t* err = rd_kafka_produceva(rk_, vus, hdrs != nullptr ? 5 : 4); err != nullptr) {
      e = rd_kafka_error_code(err);
      rd_kafka_error_destroy(err);
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_poll(rk_, 0);
      return absl::OkStatus();
    }
    if (hdrs != nullptr) rd_kafka_headers_destroy(hdrs);
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      return absl::UnavailableError("produce to " + topic + ": " + rd_kafka_err2str(e));
    }
    rd_kafka_poll(rk_, 10);
  }
}

absl::Status Producer::flush(std::chrono::milliseconds timeout) {
  rd_kafka_resp_err_t e = rd_kafka_flush(rk_, int(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::DeadlineExceededError(std::string("producer flush: ") + rd_kafka_err2str(e) + ", " +
                                       std::to_string(rd_kafka_outq_len(rk_)) + " messages still queued");
  }
  if (failed_.load() > 0) {
    return absl::UnavailableError(std::to_string(failed_.load()) + " messages failed delivery: " + last_error());
  }
  return absl::OkStatus();
}

}  // namespace kingest::kafka
