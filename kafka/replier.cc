#include "kafka/replier.h"
#include "kafka/client_log.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>

#include "core/json_writer.h"

namespace kingest::kafka {
namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double quantile(std::vector<float> v, double q) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, size_t(q * double(v.size())));
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(k), v.end());
  return v[k];
}

}  // namespace

absl::StatusOr<std::unique_ptr<Replier>> Replier::create(const std::string& brokers,
                                                         const std::map<std::string, std::string>& properties) {
  std::unique_ptr<Replier> r(new Replier());
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  log_through_spdlog(conf);
  // Batched: replies of one batch of events leave together; linger stays short because a caller
  // is waiting. A reply sent twice (a retry) is harmless: the
  // caller keeps only the first answer per correlation id.
  std::map<std::string, std::string> props = {
      {"bootstrap.servers", brokers},
      {"linger.ms", "2"},
      {"batch.num.messages", "10000"},
      {"queue.buffering.max.messages", "1000000"},
      {"enable.idempotence", "false"},
      {"log_level", "4"},
  };
  // Consumer-only properties of the run (group, offsets) do not apply to a producer.
  for (const auto& [k, v] : properties) {
    if (k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.") || k == "client.id") props[k] = v;
  }
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError("reply producer property " + k + ": " + err);
    }
  }
  rd_kafka_conf_set_opaque(conf, r.get());
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque) {
    Replier::on_delivery(rk, m, opaque);
  });
  r->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (r->rk_ == nullptr) return absl::InvalidArgumentError(std::string("reply producer: ") + err);
  return r;
}

Replier::~Replier() {
  if (rk_ == nullptr) return;
  if (rd_kafka_flush(rk_, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::warn("replies: {} still queued at shutdown", rd_kafka_outq_len(rk_));
  }
  rd_kafka_destroy(rk_);
}

void Replier::on_delivery(rd_kafka_s*, const void* msg, void* opaque) {
  auto* self = static_cast<Replier*>(opaque);
  const auto* m = static_cast<const rd_kafka_message_t*>(msg);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const uint64_t n = self->failed_.fetch_add(1) + 1;
    // The first few in full, then a reminder now and then: a missing reply topic fails them all.
    if (n <= 5 || n % 10000 == 0) {
      spdlog::warn("reply to {} failed ({} so far): {}", m->rkt != nullptr ? rd_kafka_topic_name(m->rkt) : "?", n,
                   rd_kafka_err2str(m->err));
    }
    return;
  }
  self->delivered_.fetch_add(1, std::memory_order_relaxed);
  const auto request_ms = reinterpret_cast<intptr_t>(m->_private);
  if (request_ms > 0) {
    const float ms = float(std::max<int64_t>(0, now_ms() - int64_t(request_ms)));
    std::lock_guard lock(self->latency_mu_);
    self->latency_ms_.push_back(ms);
  }
}

void Replier::reply_success(const SourceMessage& m, const Uuid& event_id) {
  if (!wants_reply(m)) return;
  // Exactly what JSON.stringify gives for the seed handler's `{ success: true, eventId }`.
  std::string value = R"({"success":true,"eventId":")";
  value += event_id.to_string();
  value += "\"}";
  produce(m, &value, {});
}

void Replier::reply_error(const SourceMessage& m, std::string_view reason, std::string_view detail) {
  if (!wants_reply(m)) return;
  std::string message(reason);
  if (!detail.empty()) {
    message += ": ";
    message += detail;
  }
  JsonWriter w;
  w.begin_object().key("status").value("error").key("message").value(message).end_object();
  produce(m, nullptr, w.take());
}

void Replier::produce(const SourceMessage& m, const std::string* value, std::string_view error) {
  static constexpr char kDisposed[1] = {0};
  rd_kafka_headers_t* hdrs = rd_kafka_headers_new(3);
  rd_kafka_header_add(hdrs, "kafka_correlationId", -1, m.reply_correlation_id.data(),
                      ssize_t(m.reply_correlation_id.size()));
  if (!error.empty()) rd_kafka_header_add(hdrs, "kafka_nest-err", -1, error.data(), ssize_t(error.size()));
  rd_kafka_header_add(hdrs, "kafka_nest-is-disposed", -1, kDisposed, 1);
  const int32_t partition = m.reply_partition >= 0 ? m.reply_partition : RD_KAFKA_PARTITION_UA;
  // The request's timestamp rides along as the opaque, for the latency at delivery.
  // NOLINTNEXTLINE(performance-no-int-to-ptr): a number carried through librdkafka, never dereferenced.
  void* opaque = reinterpret_cast<void*>(intptr_t(m.timestamp_ms > 0 ? m.timestamp_ms : 0));
  // NestJS sends an error reply with a null value.
  void* value_ptr = value != nullptr ? const_cast<char*>(value->data()) : nullptr;
  const size_t value_len = value != nullptr ? value->size() : 0;
  sent_.fetch_add(1, std::memory_order_relaxed);
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk_, RD_KAFKA_V_TOPIC(m.reply_topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(value_ptr, value_len),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_poll(rk_, 0);  // serve delivery reports as we go
      return;
    }
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_headers_destroy(hdrs);
      const uint64_t n = failed_.fetch_add(1) + 1;
      if (n <= 5 || n % 10000 == 0) spdlog::warn("reply to {} failed ({} so far): {}", m.reply_topic, n, rd_kafka_err2str(e));
      return;
    }
    rd_kafka_poll(rk_, 10);
  }
}

absl::Status Replier::flush(std::chrono::milliseconds timeout) {
  rd_kafka_resp_err_t e = rd_kafka_flush(rk_, int(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::DeadlineExceededError("replies not delivered within " + std::to_string(timeout.count()) + " ms: " +
                                       std::to_string(rd_kafka_outq_len(rk_)) + " still queued");
  }
  return absl::OkStatus();
}

ReplierStats Replier::stats() const {
  ReplierStats s;
  s.sent = sent_.load();
  s.delivered = delivered_.load();
  s.failed = failed_.load();
  std::vector<float> copy;
  {
    std::lock_guard lock(latency_mu_);
    copy = latency_ms_;
  }
  s.latency_p50_ms = quantile(copy, 0.5);
  s.latency_p99_ms = quantile(std::move(copy), 0.99);
  return s;
}

}  // namespace kingest::kafka
