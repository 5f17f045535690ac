#include "kafka/kafka_source.h"

#include "kafka/properties.h"

#include <librdkafka/rdkafka.h>

#include <charconv>

#include <algorithm>
#include <cstdint>
#include <spdlog/spdlog.h>

#include <pthread.h>

#include <cstring>

namespace kingest::kafka {
namespace {

// NestJS ClientKafka's request headers; a reply is awaited only when both topic and id are set.
void read_reply_headers(rd_kafka_headers_t* hdrs, SourceMessage& msg) {
  const void* topic = nullptr;
  const void* id = nullptr;
  size_t topic_n = 0, id_n = 0;
  if (rd_kafka_header_get_last(hdrs, "kafka_replyTopic", &topic, &topic_n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      topic == nullptr || topic_n == 0 ||
      rd_kafka_header_get_last(hdrs, "kafka_correlationId", &id, &id_n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      id == nullptr || id_n == 0) {
    return;
  }
  msg.reply_topic.assign(static_cast<const char*>(topic), topic_n);
  msg.reply_correlation_id.assign(static_cast<const char*>(id), id_n);
  const void* p = nullptr;
  size_t p_n = 0;
  if (rd_kafka_header_get_last(hdrs, "kafka_replyPartition", &p, &p_n) == RD_KAFKA_RESP_ERR_NO_ERROR && p != nullptr) {
    // Sent as decimal text; anything else leaves the partition to the partitioner.
    int32_t partition = 0;
    const char* text = static_cast<const char*>(p);
    auto [end, ec] = std::from_chars(text, text + p_n, partition);
    if (ec == std::errc() && end == text + p_n && partition >= 0) msg.reply_partition = partition;
  }
}

std::vector<TopicPartition> to_tps(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartition> out;
  out.reserve(size_t(list->cnt));
  for (int i = 0; i < list->cnt; ++i) out.push_back({list->elems[i].topic, list->elems[i].partition});
  return out;
}

rd_kafka_topic_partition_list_t* to_list(const std::vector<CommitPosition>& positions) {
  auto* list = rd_kafka_topic_partition_list_new(int(positions.size()));
  for (const auto& p : positions) {
    rd_kafka_topic_partition_list_add(list, p.tp.topic.c_str(), p.tp.partition)->offset = p.next_offset.value();
  }
  return list;
}

bool is_fatal(rd_kafka_resp_err_t e) {
  switch (e) {
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      return true;
    default:
      return false;
  }
}

}  // namespace

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
      // Fetch responses of at most 8 MiB: with librdkafka's 64 MiB prefetch queue that bounds what
      // Kafka holds in this process while the pipeline is the slower side (docs/performance.md, "Memory").
      {"fetch.max.bytes", "8388608"},
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
        static_cast<KafkaSource*>(opaque)->handle_rebalance(int(e), parts);
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
}

absl::Status KafkaSource::assign_statically() {
  // Members of the group would be given the same partitions by their own rebalances.
  const rd_kafka_group_list* groups = nullptr;
  rd_kafka_resp_err_t ge = rd_kafka_list_groups(rk_, options_.group_id.c_str(), &groups, 10000);
  if (ge == RD_KAFKA_RESP_ERR_NO_ERROR) {
    int members = 0;
    std::string state;
    for (int i = 0; i < groups->group_cnt; ++i) {
      if (options_.group_id == groups->groups[i].group) {
        members += groups->groups[i].member_cnt;
        state = groups->groups[i].state != nullptr ? groups->groups[i].state : "";
      }
    }
    rd_kafka_group_list_destroy(groups);
    if (members > 0) {
      return absl::FailedPreconditionError(
          "--assign: consumer group " + options_.group_id + " has " + std::to_string(members) +
          " active member(s) (state " + state +
          "); a static assignment would ingest their partitions too. Stop them, or drop --assign to join the group");
    }
  } else {
    // The commit probe below still tells (librdkafka's mock cluster has no ListGroups).
    spdlog::debug("--assign: listing group {}: {}", options_.group_id, rd_kafka_err2str(ge));
  }
  auto* all = rd_kafka_topic_partition_list_new(16);
  for (const auto& topic : options_.topics) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk_, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(all);
      return absl::UnavailableError("Kafka metadata of topic " + topic + ": " + rd_kafka_err2str(e));
    }
    int found = 0;
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (md->topics[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      for (int p = 0; p < md->topics[i].partition_cnt; ++p, ++found) {
        rd_kafka_topic_partition_list_add(all, topic.c_str(), md->topics[i].partitions[p].id);
      }
    }
    rd_kafka_metadata_destroy(md);
    if (found == 0) {
      rd_kafka_topic_partition_list_destroy(all);
      return absl::NotFoundError("Kafka topic " + topic + " does not exist (or has no partitions)");
    }
  }
  // A commit outside the group (generation -1) is accepted only while the group has no members:
  // commit one partition's own position (its commit, else its oldest message, where this run
  // starts anyway) to find out before anything is ingested.
  {
    auto* probe = rd_kafka_topic_partition_list_new(1);
    auto* p = rd_kafka_topic_partition_list_add(probe, all->elems[0].topic, all->elems[0].partition);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk_, probe, 10000);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && p->offset < 0) {
      int64_t low = 0, high = 0;
      e = rd_kafka_query_watermark_offsets(rk_, p->topic, p->partition, &low, &high, 10000);
      p->offset = low;
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      e = rd_kafka_commit(rk_, probe, /*async=*/0);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = p->err;
    }
    rd_kafka_topic_partition_list_destroy(probe);
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
        e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS) {
      rd_kafka_topic_partition_list_destroy(all);
      return absl::FailedPreconditionError(
          "--assign: the broker refused a commit from outside consumer group " + options_.group_id + " (" +
          rd_kafka_err2str(e) +
          "): the group has active members, whose partitions a static assignment would ingest too (on the embedded "
          "broker, librdkafka's mock cluster: the group ever had members). Stop them or use a new --group, or drop "
          "--assign to join the group");
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(all);
      return absl::UnavailableError("--assign: committing to group " + options_.group_id + ": " + rd_kafka_err2str(e));
    }
  }
  // The polling thread has not started: the assignment runs the same path as a group's.
  handle_rebalance(RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, all);
  rd_kafka_topic_partition_list_destroy(all);
  return absl::OkStatus();
}

absl::Status KafkaSource::start() {
  if (options_.assign_all) {
    if (auto s = assign_statically(); !s.ok()) return s;
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "ki-kafka-poll");
      poll_loop();
    });
    return absl::OkStatus();
  }
  auto* subs = rd_kafka_topic_partition_list_new(int(options_.topics.size()));
  for (const auto& t : options_.topics) rd_kafka_topic_partition_list_add(subs, t.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rk_, subs);
  rd_kafka_topic_partition_list_destroy(subs);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::InvalidArgumentError(std::string("subscribe: ") + rd_kafka_err2str(e));
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ki-kafka-poll");
    poll_loop();
  });
  return absl::OkStatus();
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
  if (rk_ == nullptr) return absl::OkStatus();
  commit(tracker_.all_positions(), /*sync=*/true);
  rd_kafka_resp_err_t e = rd_kafka_consumer_close(rk_);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::UnavailableError(std::string("consumer close: ") + rd_kafka_err2str(e));
  return absl::OkStatus();
}

void KafkaSource::commit(const std::vector<CommitPosition>& positions, bool sync) {
  if (positions.empty()) return;
  // Whatever must reach Kafka before these offsets do (replies): the positions were taken after
  // the messages they cover were done, so everything those messages queued is flushed here.
  if (callbacks_.before_commit && !callbacks_.before_commit()) return;
  auto* list = to_list(positions);
  rd_kafka_resp_err_t e = rd_kafka_commit(rk_, list, sync ? 0 : 1);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    spdlog::warn("offset commit failed: {}", rd_kafka_err2str(e));
  } else {
    commits_.fetch_add(1, std::memory_order_relaxed);
  }
}

void KafkaSource::set_paused(bool paused) {
  if (paused == paused_) return;
  rd_kafka_topic_partition_list_t* assignment = nullptr;
  if (rd_kafka_assignment(rk_, &assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  if (paused) {
    rd_kafka_pause_partitions(rk_, assignment);
  } else {
    rd_kafka_resume_partitions(rk_, assignment);
  }
  rd_kafka_topic_partition_list_destroy(assignment);
  paused_ = paused;
  if (!paused) {
    // Partitions at their end, and those held back behind the others, stay paused.
    auto ended = ended_;
    ended_.clear();
    for (const auto& tp : ended) pause_at_end(tp);
    auto held = std::move(held_back_);
    held_back_.clear();
    if (aligning_) {
      for (const auto& tp : held) {
        held_back_.insert(tp);
        auto* list = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition);
        rd_kafka_pause_partitions(rk_, list);
        rd_kafka_topic_partition_list_destroy(list);
      }
    }
  }
}

void KafkaSource::align(bool on) {
  auto change = [&](const std::vector<TopicPartition>& tps, bool pause) {
    if (tps.empty()) return;
    auto* list = rd_kafka_topic_partition_list_new(int(tps.size()));
    for (const auto& tp : tps) rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition);
    if (pause) {
      rd_kafka_pause_partitions(rk_, list);
    } else {
      rd_kafka_resume_partitions(rk_, list);
    }
    rd_kafka_topic_partition_list_destroy(list);
  };
  auto is_ended = [&](const TopicPartition& tp) { return std::find(ended_.begin(), ended_.end(), tp) != ended_.end(); };
  std::vector<TopicPartition> pause, resume;
  if (on) {
    // The earliest message time among the partitions still to be read.
    int64_t earliest = INT64_MAX;
    for (const auto& [tp, epoch] : epochs_) {
      if (is_ended(tp) || reached_end_.contains(tp)) continue;
      if (auto it = last_timestamp_.find(tp); it != last_timestamp_.end()) earliest = std::min(earliest, it->second);
    }
    // Read those within 100 ms of the earliest (and those nothing was read from yet); hold the
    // others back.
    for (const auto& [tp, epoch] : epochs_) {
      if (is_ended(tp)) continue;
      auto it = last_timestamp_.find(tp);
      const bool behind = reached_end_.contains(tp) || it == last_timestamp_.end() || it->second <= earliest + 100;
      if (!behind && held_back_.insert(tp).second) pause.push_back(tp);
      if (behind && held_back_.erase(tp) > 0) resume.push_back(tp);
    }
  } else {
    resume.assign(held_back_.begin(), held_back_.end());
    held_back_.clear();
  }
  if (!paused_) {
    change(pause, true);
    change(resume, false);
  }
  if (on != aligning_) {
    aligning_ = on;
    // The first time at info, then at debug: it may toggle every few seconds.
    static constexpr const char* kOn =
        "events waiting for missing versions are over budget: reading the partitions furthest behind in message "
        "time first";
    static constexpr const char* kOff = "waiting events back under budget: reading every partition";
    spdlog::log(aligned_before_ ? spdlog::level::debug : spdlog::level::info, on ? kOn : kOff);
    if (!on) aligned_before_ = true;
  }
}

void KafkaSource::mark_read_to_end(const TopicPartition& tp) {
  if (!reached_end_.insert(tp).second) return;
  update_read_to_ends();
}

std::set<TopicPartition> KafkaSource::assignment() const {
  std::lock_guard lock(assignment_mu_);
  return assignment_;
}

void KafkaSource::update_read_to_ends() {
  {
    std::lock_guard lock(assignment_mu_);
    assignment_.clear();
    for (const auto& [tp, epoch] : epochs_) assignment_.insert(tp);
  }
  bool all = !epochs_.empty();
  for (const auto& [tp, epoch] : epochs_) {
    if (!options_.end_at.contains(tp) || !reached_end_.contains(tp)) {
      all = false;
      break;
    }
  }
  read_to_ends_.store(all);
}

void KafkaSource::pause_at_end(const TopicPartition& tp) {
  mark_read_to_end(tp);
  if (std::find(ended_.begin(), ended_.end(), tp) != ended_.end()) return;
  ended_.push_back(tp);
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, tp.topic.c_str(), tp.partition);
  rd_kafka_pause_partitions(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
}

void KafkaSource::handle_rebalance(int err, void* opaque_list) {
  auto* parts = static_cast<rd_kafka_topic_partition_list_t*>(opaque_list);
  // A static assignment is no group member: "NONE" (or no answer) means plain assign.
  const char* protocol = options_.assign_all ? nullptr : rd_kafka_rebalance_protocol(rk_);
  const bool cooperative = protocol != nullptr && std::strcmp(protocol, "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    // Partitions without a committed offset start at the beginning; auto.offset.reset=error keeps
    // every other case (an out-of-range position) loud instead of silently skipping data.
    rd_kafka_resp_err_t ce = rd_kafka_committed(rk_, parts, 10000);
    if (ce != RD_KAFKA_RESP_ERR_NO_ERROR) spdlog::warn("reading committed offsets failed: {}", rd_kafka_err2str(ce));
    rd_kafka_topic_partition_list_t* rewound = rd_kafka_topic_partition_list_new(1);
    for (int i = 0; i < parts->cnt; ++i) {
      auto& p = parts->elems[i];
      if (auto it = options_.start_at.find(TopicPartition{p.topic, p.partition}); it != options_.start_at.end() &&
                                                                               std::max<int64_t>(p.offset, -1) == it->second.first) {
        p.offset = it->second.second;
        rd_kafka_topic_partition_list_add(rewound, p.topic, p.partition)->offset = p.offset;
        continue;
      }
      if (p.offset < 0) {
        p.offset = RD_KAFKA_OFFSET_BEGINNING;
        continue;
      }
      // Upstream loss: retention deleted messages this group never ingested.
      int64_t low = 0, high = 0;
      if (rd_kafka_query_watermark_offsets(rk_, p.topic, p.partition, &low, &high, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
          p.offset >= low) {
        continue;
      }
      const std::string what = std::string(p.topic) + "[" + std::to_string(p.partition) + "]: offsets " +
                               std::to_string(p.offset) + ".." + std::to_string(low - 1) + " (" +
                               std::to_string(low - p.offset) +
                               " messages) were deleted by retention before they were ingested";
      if (options_.on_data_loss == SourceOptions::DataLoss::kSkip) {
        spdlog::warn("kafka: {}; continuing from offset {} (--on-data-loss skip)", what, low);
        messages_lost_.fetch_add(uint64_t(low - p.offset), std::memory_order_relaxed);
        p.offset = low;
      } else {
        spdlog::error("kafka: {}", what);
        if (callbacks_.on_fatal) {
          callbacks_.on_fatal(absl::DataLossError(
              "kafka: " + what + "; rerun with --on-data-loss skip to go on from the oldest retained message"));
        }
      }
    }
    if (rewound->cnt > 0) {
      // The group's commit moves to the new start at once, so that nobody (a bounded run's end
      // check, a member joining later) takes the old commit for progress.
      rd_kafka_resp_err_t e = rd_kafka_commit(rk_, rewound, /*async=*/0);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) spdlog::warn("committing the --from start offsets: {}", rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(rewound);
    auto tps = to_tps(parts);
    std::erase_if(ended_, [&](const TopicPartition& tp) { return std::find(tps.begin(), tps.end(), tp) != tps.end(); });
    AssignmentEpoch epoch{next_epoch_++};
    tracker_.assign(tps, epoch);
    for (const auto& tp : tps) {
      epochs_[tp] = epoch;
      reached_end_.erase(tp);
    }
    update_read_to_ends();
    if (cooperative) {
      rd_kafka_error_t* e = rd_kafka_incremental_assign(rk_, parts);
      if (e != nullptr) {
        spdlog::error("incremental assign failed: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
    } else {
      rd_kafka_assign(rk_, parts);
    }
    if (paused_) rd_kafka_pause_partitions(rk_, parts);
    assigned_any_.store(true);
    spdlog::info("assigned {} partition(s), epoch {}", tps.size(), epoch.value());
    if (callbacks_.on_assign) callbacks_.on_assign(tps);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    auto tps = to_tps(parts);
    // Flush what was batched so the revoked partitions' work can finish inside the bounded wait.
    if (auto b = batcher_.flush()) emit(std::move(*b));
    if (callbacks_.on_revoke) callbacks_.on_revoke(tps);
    commit(tracker_.revoke(tps), /*sync=*/true);
    for (const auto& tp : tps) {
      epochs_.erase(tp);
      reached_end_.erase(tp);
      held_back_.erase(tp);  // (last_timestamp_ keeps its entry: the poll loop caches a pointer to it)
    }
    update_read_to_ends();
    if (cooperative) {
      rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk_, parts);
      if (e != nullptr) rd_kafka_error_destroy(e);
    } else {
      rd_kafka_assign(rk_, nullptr);
    }
    spdlog::info("revoked {} partition(s)", tps.size());
  } else {
    spdlog::error("rebalance error: {}", rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err)));
    rd_kafka_assign(rk_, nullptr);
  }
}

void KafkaSource::emit(Batcher<SourceMessage>::Closed&& batch) {
  // Recorded per batch (one lock), before the batch can complete.
  tracker_.delivered_messages(batch.items);
  callbacks_.on_batch(std::move(batch.items), batch.bytes);
}

void KafkaSource::commit_due(std::chrono::steady_clock::time_point now,
                             std::chrono::steady_clock::time_point& next_commit,
                             std::chrono::steady_clock::time_point& next_recommit) {
  if (now >= next_recommit) {
    // Every position of the current assignment again: an asynchronous commit can fail (during a
    // rebalance the group generation changes under it) and nothing else would repeat it once a
    // partition has no more messages, leaving the group's commit short of its end for good.
    commit(tracker_.all_positions(), /*sync=*/false);
    (void)tracker_.take_commits();
    next_recommit = now + options_.recommit_interval;
  } else {
    commit(tracker_.take_commits(), /*sync=*/false);
  }
  next_commit = now + options_.commit_interval;
}

void KafkaSource::poll_loop() {
  using Clock = std::chrono::steady_clock;
  auto next_commit = Clock::now() + options_.commit_interval;
  auto next_recommit = Clock::now() + options_.recommit_interval;
  const rd_kafka_topic_t* cached_topic = nullptr;
  int32_t cached_partition = -1;
  TopicPartition cached_tp;
  AssignmentEpoch cached_epoch{0};
  int64_t cached_end = INT64_MAX;
  bool stopped_fetching = false;
  Clock::time_point full_since{};  // when the pipeline became full (epoch: not full)
  int64_t* cached_last_ts = nullptr;  // last_timestamp_ of cached_tp (a std::map node: stable)
  auto next_align = Clock::now();

  while (!closing_.load()) {
    if (!fetching_.load() && !stopped_fetching) {
      stopped_fetching = true;
      if (auto b = batcher_.flush()) emit(std::move(*b));
      set_paused(true);
      std::lock_guard lock(stop_mu_);
      fetch_stopped_ = true;
      stop_cv_.notify_all();
    }
    if (!stopped_fetching) {
      const bool full = callbacks_.has_room && !callbacks_.has_room();
      if (!full) {
        full_since = Clock::time_point{};
        set_paused(false);
      } else if (!paused_) {
        const auto now = Clock::now();
        if (full_since == Clock::time_point{}) full_since = now;
        if (now - full_since < options_.pause_after) {
          // A short stall: leave the messages in librdkafka's queue and look again shortly.
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          if (now >= next_commit) commit_due(now, next_commit, next_recommit);
          continue;
        }
        set_paused(true);
      }
    }

    if (callbacks_.behind_first && !stopped_fetching && Clock::now() >= next_align) {
      next_align = Clock::now() + std::chrono::milliseconds(50);
      const bool over = callbacks_.behind_first();
      if (over || aligning_) align(over);
    }

    // While paused (or stopped) poll briefly: the group protocol still needs us, and commits go on.
    int timeout_ms = (paused_ || stopped_fetching) ? 20 : 5;
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, batcher_.empty() ? timeout_ms : 1);
    auto now = Clock::now();
    if (m != nullptr) {
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && !stopped_fetching) {
        if (m->rkt != cached_topic || m->partition != cached_partition) {
          cached_tp = TopicPartition{rd_kafka_topic_name(m->rkt), m->partition};
          auto it = epochs_.find(cached_tp);
          cached_epoch = it == epochs_.end() ? AssignmentEpoch{0} : it->second;
          cached_topic = m->rkt;
          cached_partition = m->partition;
          cached_last_ts = nullptr;
          auto end = options_.end_at.find(cached_tp);
          cached_end = end == options_.end_at.end() ? INT64_MAX : end->second;
        }
        if (m->offset >= cached_end) {
          pause_at_end(cached_tp);  // past the end of a bounded run: not delivered
          rd_kafka_message_destroy(m);
          continue;
        }
        SourceMessage msg;
        msg.tp = cached_tp;
        msg.offset = KafkaOffset{m->offset};
        msg.epoch = cached_epoch;
        rd_kafka_timestamp_type_t tst;
        msg.timestamp_ms = rd_kafka_message_timestamp(m, &tst);
        if (callbacks_.behind_first) {
          if (cached_last_ts == nullptr) cached_last_ts = &last_timestamp_[cached_tp];
          *cached_last_ts = msg.timestamp_ms;
        }
        if (m->key != nullptr) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
        msg.key_null = m->key == nullptr;
        msg.assign_value(m->payload != nullptr ? m->payload : "", m->payload != nullptr ? m->len : 0);
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          const void* v = nullptr;
          size_t n = 0;
          if (rd_kafka_header_get_last(hdrs, "content-type", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v != nullptr) {
            msg.content_type.assign(static_cast<const char*>(v), n);
          }
          read_reply_headers(hdrs, msg);
        }
        messages_read_.fetch_add(1, std::memory_order_relaxed);
        size_t bytes = msg.byte_size();
        if (auto b = batcher_.add(std::move(msg), bytes, now)) emit(std::move(*b));
      } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->rkt != nullptr) {
          TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
          if (auto end = options_.end_at.find(tp); end != options_.end_at.end() && m->offset >= end->second) {
            mark_read_to_end(tp);
          }
        }
      } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::string what = rd_kafka_message_errstr(m);
        if (m->rkt != nullptr) what = std::string(rd_kafka_topic_name(m->rkt)) + "[" + std::to_string(m->partition) + "]: " + what;
        if (is_fatal(m->err)) {
          spdlog::error("kafka: {}", what);
          if (callbacks_.on_fatal) callbacks_.on_fatal(absl::FailedPreconditionError("kafka: " + what));
        } else {
          spdlog::warn("kafka: {}", what);
        }
      }
      rd_kafka_message_destroy(m);
    }
    if (auto b = batcher_.flush_if_aged(now)) emit(std::move(*b));
    if (now >= next_commit) commit_due(now, next_commit, next_recommit);
  }
  if (auto b = batcher_.flush()) emit(std::move(*b));
  std::lock_guard lock(stop_mu_);
  fetch_stopped_ = true;
  stop_cv_.notify_all();
}

}  // namespace kingest::kafka
