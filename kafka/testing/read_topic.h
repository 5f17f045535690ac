// Test support: what a topic holds, read back with librdkafka from the beginning (no group
// membership, no commits), for tests that check what was produced.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kingest::kafka::testing {

struct ReadBack {
  int32_t partition = -1;
  bool key_null = false;
  std::string key;
  std::optional<std::string> value;  // nullopt: a null value
  std::vector<std::pair<std::string, std::string>> headers;  // in order; a null header value reads as ""

  // The last value of header `name`; nullopt when the message has none.
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const {
    std::optional<std::string> found;
    for (const auto& [k, v] : headers) {
      if (k == name) found = v;
    }
    return found;
  }
};

// Every message of `topic`'s partitions 0..partitions-1: read until at least `want` arrived and
// every partition is at its end (so a message too many is read too), or until `timeout` passed.
inline std::vector<ReadBack> read_topic(const std::string& brokers, const std::string& topic, int partitions,
                                        size_t want, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "test-reader", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  rd_kafka_poll_set_consumer(rk);
  auto* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<ReadBack> out;
  std::set<int32_t> at_end;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while ((out.size() < want || static_cast<int>(at_end.size()) < partitions) &&
         std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_end.insert(m->partition);
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      at_end.erase(m->partition);
      ReadBack r;
      r.partition = m->partition;
      r.key_null = m->key == nullptr;
      if (m->key != nullptr) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload != nullptr) r.value = std::string(static_cast<const char*>(m->payload), m->len);
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* v = nullptr;
        size_t n = 0;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
          r.headers.emplace_back(name, v != nullptr ? std::string(static_cast<const char*>(v), n) : std::string());
        }
      }
      out.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

}  // namespace kingest::kafka::testing
