#include "kafka/group_progress.h"
#include "kafka/client_log.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>

namespace kingest::kafka {
namespace {

rd_kafka_t* handle(void* p) { return static_cast<rd_kafka_t*>(p); }

// ListOffsets' special timestamps: the log's start (low watermark) and its end (high watermark).
constexpr int64_t kListEarliest = -2;
constexpr int64_t kListLatest = -1;

// Every partition's earliest or latest offset in one ListOffsets request per leader
// (`rd_kafka_offsets_for_times` with the special timestamps), where `rd_kafka_query_watermark_offsets`
// costs two round trips per partition.
absl::StatusOr<Offsets> list_offsets(rd_kafka_t* rk, const std::vector<TopicPartition>& partitions, int64_t spec,
                                     std::chrono::milliseconds timeout) {
  Offsets out;
  if (partitions.empty()) return out;
  auto* list = rd_kafka_topic_partition_list_new(int(partitions.size()));
  for (const auto& tp : partitions) rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition)->offset = spec;
  const rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, list, int(timeout.count()));
  absl::Status status;
  for (int i = 0; i < list->cnt && status.ok(); ++i) {
    const auto& p = list->elems[i];
    const TopicPartition tp{p.topic, p.partition};
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR || p.err != RD_KAFKA_RESP_ERR_NO_ERROR || p.offset < 0) {
      status = absl::UnavailableError("Kafka watermarks of " + to_string(tp) + ": " +
                                      rd_kafka_err2str(e != RD_KAFKA_RESP_ERR_NO_ERROR ? e : p.err));
      break;
    }
    out[tp] = p.offset;
  }
  rd_kafka_topic_partition_list_destroy(list);
  if (!status.ok()) return status;
  return out;
}

std::vector<TopicPartition> keys_of(const Offsets& offsets) {
  std::vector<TopicPartition> out;
  out.reserve(offsets.size());
  for (const auto& [tp, _] : offsets) out.push_back(tp);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GroupProgress>> GroupProgress::open(
    const std::string& brokers, const std::string& group, const std::map<std::string, std::string>& properties) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  log_through_spdlog(conf);
  std::map<std::string, std::string> props = properties;
  props["bootstrap.servers"] = brokers;
  props["group.id"] = group;
  props["enable.auto.commit"] = "false";
  props.emplace("log_level", "3");
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError("Kafka property " + k + ": " + err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) return absl::InvalidArgumentError(std::string("Kafka consumer: ") + err);
  return std::unique_ptr<GroupProgress>(new GroupProgress(rk));
}

GroupProgress::~GroupProgress() { rd_kafka_destroy(handle(rk_)); }

absl::StatusOr<std::vector<std::string>> GroupProgress::missing_topics(const std::vector<std::string>& topics) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(handle(rk_), /*all_topics=*/1, nullptr, &md, int(timeout_.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::UnavailableError(std::string("Kafka metadata: ") + rd_kafka_err2str(e));
  std::vector<std::string> missing;
  for (const auto& topic : topics) {
    bool found = false;
    for (int i = 0; i < md->topic_cnt && !found; ++i) {
      found = topic == md->topics[i].topic && md->topics[i].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
              md->topics[i].partition_cnt > 0;
    }
    if (!found) missing.push_back(topic);
  }
  rd_kafka_metadata_destroy(md);
  return missing;
}

absl::Status GroupProgress::ping() {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(handle(rk_), /*all_topics=*/0, nullptr, &md, int(timeout_.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::UnavailableError(std::string("Kafka metadata: ") + rd_kafka_err2str(e));
  rd_kafka_metadata_destroy(md);
  return absl::OkStatus();
}

absl::StatusOr<Offsets> GroupProgress::end_offsets(const std::vector<std::string>& topics) {
  std::vector<TopicPartition> all;
  for (const auto& topic : topics) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(handle(rk_), topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(handle(rk_), 0, t, &md, int(timeout_.count()));
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::UnavailableError("Kafka metadata of topic " + topic + ": " + rd_kafka_err2str(e));
    }
    std::vector<int32_t> ids;
    rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; i < md->topic_cnt; ++i) {
      topic_err = md->topics[i].err;
      for (int p = 0; p < md->topics[i].partition_cnt; ++p) ids.push_back(md->topics[i].partitions[p].id);
    }
    rd_kafka_metadata_destroy(md);
    if (topic_err != RD_KAFKA_RESP_ERR_NO_ERROR || ids.empty()) {
      return absl::NotFoundError("Kafka topic " + topic + ": " +
                                 (topic_err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(topic_err) : "no partitions"));
    }
    for (int32_t id : ids) all.push_back(TopicPartition{topic, id});
  }
  return list_offsets(handle(rk_), all, kListLatest, timeout_);
}

absl::StatusOr<Offsets> GroupProgress::committed(const Offsets& partitions) {
  auto* list = rd_kafka_topic_partition_list_new(int(partitions.size()));
  for (const auto& [tp, _] : partitions) rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition);
  rd_kafka_resp_err_t e = rd_kafka_committed(handle(rk_), list, int(timeout_.count()));
  Offsets out;
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < list->cnt; ++i) {
      const auto& p = list->elems[i];
      out[TopicPartition{p.topic, p.partition}] = p.offset >= 0 ? p.offset : -1;
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::UnavailableError(std::string("committed offsets: ") + rd_kafka_err2str(e));
  return out;
}

absl::StatusOr<Offsets> GroupProgress::start_offsets(const Offsets& partitions) {
  return list_offsets(handle(rk_), keys_of(partitions), kListEarliest, timeout_);
}

absl::StatusOr<Offsets> GroupProgress::offsets_for_time(const Offsets& partitions, int64_t time_ms) {
  Offsets out;
  std::vector<TopicPartition> scan;
  {
    auto* list = rd_kafka_topic_partition_list_new(int(partitions.size()));
    for (const auto& [tp, _] : partitions) rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition)->offset = time_ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(handle(rk_), list, int(timeout_.count()));
    for (int i = 0; i < list->cnt; ++i) {
      TopicPartition tp{list->elems[i].topic, list->elems[i].partition};
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[i].offset >= 0) {
        out[tp] = list->elems[i].offset;
      } else {
        scan.push_back(tp);  // unknown (or no message that late): read the timestamps to be sure
      }
    }
    rd_kafka_topic_partition_list_destroy(list);
  }
  if (scan.empty()) return out;
  auto starts = start_offsets(partitions);
  if (!starts.ok()) return starts.status();
  for (const auto& tp : scan) out[tp] = partitions.at(tp);
  auto* assignment = rd_kafka_topic_partition_list_new(int(scan.size()));
  std::map<TopicPartition, bool> open;
  for (const auto& tp : scan) {
    if ((*starts)[tp] >= partitions.at(tp)) continue;  // empty
    rd_kafka_topic_partition_list_add(assignment, tp.topic.c_str(), tp.partition)->offset = (*starts)[tp];
    open[tp] = true;
  }
  if (open.empty()) {
    rd_kafka_topic_partition_list_destroy(assignment);
    return out;
  }
  rd_kafka_assign(handle(rk_), assignment);
  rd_kafka_topic_partition_list_destroy(assignment);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  absl::Status status;
  while (!open.empty()) {
    if (std::chrono::steady_clock::now() > deadline) {
      status = absl::DeadlineExceededError("scanning message timestamps took over 5 minutes");
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(handle(rk_), 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->rkt != nullptr) {
      TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
      auto it = open.find(tp);
      if (it != open.end()) {
        int64_t ts = rd_kafka_message_timestamp(m, nullptr);
        if (ts >= time_ms) {
          out[tp] = m->offset;
          open.erase(it);
        } else if (m->offset + 1 >= partitions.at(tp)) {
          open.erase(it);  // read to the end: no message that late
        }
      }
    } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status = absl::UnavailableError(std::string("scanning message timestamps: ") + rd_kafka_message_errstr(m));
    }
    rd_kafka_message_destroy(m);
    if (!status.ok()) break;
  }
  rd_kafka_assign(handle(rk_), nullptr);
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<bool> GroupProgress::reached(const Offsets& ends) {
  auto done = committed(ends);
  if (!done.ok()) return done.status();
  // Only a partition whose commit is short of its end can still be reached by retention (its
  // start moved past the end); the starts are asked for only then.
  Offsets short_of_end;
  for (const auto& [tp, end] : ends) {
    if ((*done)[tp] < end) short_of_end.emplace(tp, end);
  }
  if (short_of_end.empty()) return true;
  auto starts = start_offsets(short_of_end);
  if (!starts.ok()) return starts.status();
  for (const auto& [tp, end] : short_of_end) {
    if ((*starts)[tp] < end) return false;
  }
  return true;
}

absl::StatusOr<uint64_t> GroupProgress::remaining(const Offsets& ends, const Offsets& from) {
  auto done = committed(ends);
  if (!done.ok()) return done.status();
  auto starts = start_offsets(ends);
  if (!starts.ok()) return starts.status();
  uint64_t left = 0;
  for (const auto& [tp, end] : ends) {
    auto f = from.find(tp);
    int64_t at = std::max(f == from.end() ? (*done)[tp] : f->second, (*starts)[tp]);
    if (at < end) left += uint64_t(end - at);
  }
  return left;
}

}  // namespace kingest::kafka
