#include "kafka/offset_tracker.h"

#include <algorithm>

namespace kingest::kafka {

void OffsetTracker::assign(const std::vector<TopicPartition>& tps, AssignmentEpoch epoch) {
  std::lock_guard lock(mu_);
  for (const auto& tp : tps) {
    auto& p = partitions_[tp];
    p.epoch = epoch;
    p.pending.clear();
    p.committable.reset();
    p.taken.reset();
  }
}

std::vector<CommitPosition> OffsetTracker::revoke(const std::vector<TopicPartition>& tps) {
  std::lock_guard lock(mu_);
  std::vector<CommitPosition> out;
  for (const auto& tp : tps) {
    auto it = partitions_.find(tp);
    if (it == partitions_.end()) continue;
    if (it->second.committable && it->second.committable != it->second.taken) {
      out.push_back({tp, *it->second.committable});
    }
    partitions_.erase(it);
  }
  return out;
}

void OffsetTracker::delivered(const TopicPartition& tp, KafkaOffset offset, AssignmentEpoch epoch) {
  std::lock_guard lock(mu_);
  auto it = partitions_.find(tp);
  if (it == partitions_.end() || it->second.epoch != epoch) return;
  it->second.pending.push_back({offset, false});
}

void OffsetTracker::delivered_messages(const std::vector<SourceMessage>& messages) {
  std::lock_guard lock(mu_);
  const TopicPartition* last_tp = nullptr;
  Partition* last = nullptr;
  for (const auto& m : messages) {
    if (last_tp == nullptr || !(*last_tp == m.tp)) {
      auto it = partitions_.find(m.tp);
      last = it == partitions_.end() ? nullptr : &it->second;
      last_tp = &m.tp;
    }
    if (last != nullptr && last->epoch == m.epoch) last->pending.push_back({m.offset, false});
  }
}

void OffsetTracker::delivered_runs(const std::vector<SourceMessage>& messages, const std::vector<uint32_t>& runs) {
  size_t total = 0;
  for (uint32_t n : runs) total += n;
  if (total != messages.size()) {
    delivered_messages(messages);
    return;
  }
  std::lock_guard lock(mu_);
  size_t i = 0;
  for (uint32_t n : runs) {
    if (n == 0) continue;
    const SourceMessage& first = messages[i];
    auto it = partitions_.find(first.tp);
    if (it != partitions_.end() && it->second.epoch == first.epoch) {
      auto& pending = it->second.pending;
      for (size_t k = i; k < i + n; ++k) pending.push_back({messages[k].offset, false});
    }
    i += n;
  }
}

size_t OffsetTracker::mark_done(const TopicPartition& tp, KafkaOffset offset, AssignmentEpoch epoch,
                                const TopicPartition*& last_tp, Partition*& last) {
  if (last_tp == nullptr || !(*last_tp == tp)) {
    auto it = partitions_.find(tp);
    last = it == partitions_.end() ? nullptr : &it->second;
    last_tp = &tp;
  }
  if (last == nullptr || last->epoch != epoch) return 0;
  auto& q = last->pending;
  // Most messages are done in the order they were delivered: the oldest pending one first, found
  // without a search.
  auto pos = !q.empty() && q.front().offset == offset
                 ? q.begin()
                 : std::lower_bound(q.begin(), q.end(), offset,
                                    [](const Pending& p, KafkaOffset o) { return p.offset < o; });
  if (pos == q.end() || pos->offset != offset || pos->done) return 0;
  pos->done = true;
  if (pos == q.begin()) {
    while (!q.empty() && q.front().done) {
      last->committable = KafkaOffset{q.front().offset.value() + 1};
      q.pop_front();
    }
  }
  return 1;
}

size_t OffsetTracker::done(const std::vector<OffsetRef>& refs) {
  std::lock_guard lock(mu_);
  size_t accepted = 0;
  const TopicPartition* last_tp = nullptr;
  Partition* last = nullptr;
  for (const auto& r : refs) accepted += mark_done(r.tp, r.offset, r.epoch, last_tp, last);
  return accepted;
}

size_t OffsetTracker::done_messages(const std::vector<SourceMessage>& messages) {
  std::lock_guard lock(mu_);
  size_t accepted = 0;
  const TopicPartition* last_tp = nullptr;
  Partition* last = nullptr;
  for (const auto& m : messages) accepted += mark_done(m.tp, m.offset, m.epoch, last_tp, last);
  return accepted;
}

std::vector<CommitPosition> OffsetTracker::take_commits() {
  std::lock_guard lock(mu_);
  std::vector<CommitPosition> out;
  for (auto& [tp, p] : partitions_) {
    if (p.committable && p.committable != p.taken) {
      out.push_back({tp, *p.committable});
      p.taken = p.committable;
    }
  }
  return out;
}

std::vector<CommitPosition> OffsetTracker::all_positions() const {
  std::lock_guard lock(mu_);
  std::vector<CommitPosition> out;
  for (const auto& [tp, p] : partitions_) {
    if (p.committable) out.push_back({tp, *p.committable});
  }
  return out;
}

size_t OffsetTracker::in_flight() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [tp, p] : partitions_) n += p.pending.size();
  return n;
}

}  // namespace kingest::kafka
