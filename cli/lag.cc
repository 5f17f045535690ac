#include "cli/lag.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

namespace kingest::cli {

uint64_t LagSnapshot::total() const {
  uint64_t n = 0;
  for (const auto& [_, p] : partitions) n += uint64_t(p.lag);
  return n;
}

std::map<std::string, uint64_t> LagSnapshot::by_topic() const {
  std::map<std::string, uint64_t> out;
  for (const auto& [tp, p] : partitions) out[tp.topic] += uint64_t(p.lag);
  return out;
}

absl::StatusOr<std::unique_ptr<LagWatcher>> LagWatcher::start(const std::string& brokers, const std::string& group,
                                                               const std::map<std::string, std::string>& properties,
                                                               std::vector<std::string> topics,
                                                               std::chrono::milliseconds every) {
  auto gp = kafka::GroupProgress::open(brokers, group, properties);
  if (!gp.ok()) return gp.status();
  // A measurement on the watcher's thread waits at most one interval: one older than that is not
  // worth having, and stopping the watcher waits for the measurement in progress. (With no broker
  // answering, each call waited the default 10 s, and a run that stopped for the lost broker then
  // waited for that too.)
  (*gp)->set_timeout(every);
  std::unique_ptr<LagWatcher> w(new LagWatcher(std::move(*gp), std::move(topics), every));
  w->thread_ = std::thread([p = w.get()] {
    pthread_setname_np(pthread_self(), "ki-lag");
    p->loop();
  });
  return w;
}

LagWatcher::~LagWatcher() { stop(); }

void LagWatcher::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // What is measured from now on is measured on the caller's thread, once (the run's remainder at
  // its end): it may take the default's time.
  progress_->set_timeout(kafka::GroupProgress::kDefaultTimeout);
}

LagSnapshot LagWatcher::snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

absl::Status LagWatcher::refresh() {
  std::lock_guard serial(refresh_mu_);
  auto ends = progress_->end_offsets(topics_);
  if (!ends.ok()) return ends.status();
  auto committed = progress_->committed(*ends);
  if (!committed.ok()) return committed.status();
  kafka::Offsets never;  // partitions without a commit: lag counts from the oldest retained message
  for (const auto& [tp, c] : *committed) {
    if (c < 0) never[tp] = (*ends)[tp];
  }
  kafka::Offsets low;
  if (!never.empty()) {
    auto l = progress_->start_offsets(never);
    if (!l.ok()) return l.status();
    low = std::move(*l);
  }
  LagSnapshot s;
  s.at = std::chrono::steady_clock::now();
  for (const auto& [tp, end] : *ends) {
    PartitionLag p{.end = end};
    auto c = committed->find(tp);
    p.committed = c == committed->end() ? -1 : c->second;
    const int64_t from = p.committed >= 0 ? p.committed : (low.contains(tp) ? low[tp] : 0);
    p.lag = std::max<int64_t>(0, end - from);
    s.partitions[tp] = p;
  }
  std::lock_guard lock(mu_);
  snapshot_ = std::move(s);
  return absl::OkStatus();
}

void LagWatcher::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    if (auto s = refresh(); !s.ok()) spdlog::debug("consumer lag: {}", s.ToString());
    lock.lock();
    cv_.wait_for(lock, every_, [this] { return stopping_; });
  }
}

}  // namespace kingest::cli
