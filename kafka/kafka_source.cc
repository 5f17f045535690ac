// KafkaSource's configuration and lifecycle: the consumer's settings (defaults, then -X, less the
// keys -X may not change), start, stop_fetching, close and abandon. The rest of the class, one job
// per file: kafka_source_assignment.cc (static assignment, rebalances, assignment epochs),
// kafka_source_poll.cc (the polling thread and batching), kafka_source_commit.cc (offset commits),
// kafka_source_pause.cc (pausing against the budget, reading the furthest-behind partitions first).
#include "kafka/kafka_source.h"
#include "kafka/client_log.h"

#include "absl/strings/numbers.h"

#include "kafka/properties.h"

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <utility>

#include <pthread.h>

namespace kingest::kafka {

KafkaSource::KafkaSource(SourceOptions options, SourceCallbacks callbacks)
    : options_(std::move(options)), callbacks_(std::move(callbacks)), batcher_(options_.batch) {}

absl::StatusOr<std::unique_ptr<KafkaSource>> KafkaSource::create(SourceOptions options, SourceCallbacks callbacks) {
  if (options.brokers.empty()) return absl::InvalidArgumentError("no Kafka brokers given (--brokers HOST:PORT)");
  if (options.topics.empty()) return absl::InvalidArgumentError("no Kafka topics given (--topics a,b,c)");
  if (options.group_id.empty()) return absl::InvalidArgumentError("no consumer group given (--group NAME)");
  if (auto st = check_consumer_properties(options.properties); !st.ok()) return st;
  std::unique_ptr<KafkaSource> s(new KafkaSource(std::move(options), std::move(callbacks)));
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  log_through_spdlog(conf);
  std::map<std::string, std::string> props = {
      {"bootstrap.servers", s->options_.brokers},
      {"group.id", s->options_.group_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "error"},
      {"partition.assignment.strategy", "cooperative-sticky"},
      // A bounded run learns that a partition was read to its end from the end-of-partition event.
      {"enable.partition.eof", s->options_.end_at.empty() ? "false" : "true"},
      {"queued.min.messages", "200000"},
      // Fetch responses of at most 8 MiB and a prefetch queue of 8 MiB (librdkafka's default is
      // 64): that bounds what Kafka holds in this process while the pipeline is the slower side
      // (docs/performance.md, "Memory"). A queue this small suffices because the fetchers are
      // woken when it drains (fetch_waker.h), not a second later: at 16 MiB, the pipeline ran no
      // faster, discarding or writing, on either shape.
      {"fetch.max.bytes", "8388608"},
      {"queued.max.messages.kbytes", "8192"},
      {"log_level", "4"},
  };
  for (const auto& [k, v] : s->options_.properties) props[k] = v;
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError("kafka consumer property " + k + "=" + v + ": " + err);
    }
  }
  rd_kafka_conf_set_opaque(conf, s.get());
  rd_kafka_conf_set_rebalance_cb(
      conf, [](rd_kafka_t*, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t* parts, void* opaque) {
        static_cast<KafkaSource*>(opaque)->on_rebalance_event(int(e), parts);
      });
  s->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (s->rk_ == nullptr) return absl::InvalidArgumentError(std::string("kafka consumer: ") + err);
  rd_kafka_poll_set_consumer(s->rk_);
  return s;
}

KafkaSource::~KafkaSource() {
  (void)close();
  if (rk_ != nullptr) rd_kafka_destroy_flags(rk_, abandoned_ ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0);
}

void KafkaSource::abandon() {
  if (closed_) return;
  abandoned_ = true;
  closed_ = true;
  fetching_.store(false);
  closing_.store(true);
  if (thread_.joinable()) thread_.join();
  waker_.reset();
}

absl::Status KafkaSource::start() {
  if (options_.assign_all) {
    if (auto s = assign_statically(); !s.ok()) return s;
    start_threads();
    return absl::OkStatus();
  }
  auto* subs = rd_kafka_topic_partition_list_new(int(options_.topics.size()));
  for (const auto& t : options_.topics) rd_kafka_topic_partition_list_add(subs, t.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rk_, subs);
  rd_kafka_topic_partition_list_destroy(subs);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::InvalidArgumentError(std::string("subscribe: ") + rd_kafka_err2str(e));
  start_threads();
  return absl::OkStatus();
}

void KafkaSource::start_threads() {
  auto setting = [&](const char* name, size_t fallback) {
    char value[64];
    size_t size = sizeof value;
    size_t n = 0;
    if (rd_kafka_conf_get(rd_kafka_conf(rk_), name, value, &size) != RD_KAFKA_CONF_OK ||
        !absl::SimpleAtoi(value, &n)) {
      return fallback;
    }
    return n;
  };
  queue_limit_messages_ = setting("queued.min.messages", queue_limit_messages_);
  queue_limit_bytes_ = setting("queued.max.messages.kbytes", queue_limit_bytes_ / 1024) * 1024;
  waker_ = std::make_unique<FetchWaker>(rk_, [this] {
    const std::set<TopicPartition> assigned = assignment();
    return std::vector<TopicPartition>(assigned.begin(), assigned.end());
  });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ki-kafka-poll");
    poll_loop();
  });
}

void KafkaSource::stop_fetching() {
  fetching_.store(false);
  if (!thread_.joinable()) return;
  std::unique_lock lock(stop_mu_);
  stop_cv_.wait(lock, [&] { return fetch_stopped_; });
}

absl::Status KafkaSource::close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  fetching_.store(false);
  closing_.store(true);
  if (thread_.joinable()) thread_.join();
  waker_.reset();
  if (rk_ == nullptr) return absl::OkStatus();
  commit(tracker_.all_positions(), /*sync=*/true);
  rd_kafka_resp_err_t e = rd_kafka_consumer_close(rk_);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::UnavailableError(std::string("consumer close: ") + rd_kafka_err2str(e));
  return absl::OkStatus();
}

}  // namespace kingest::kafka
