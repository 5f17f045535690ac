#include "pipeline/stream_table.h"

#include "absl/hash/hash.h"

#include <algorithm>
#include <cassert>
#include <set>

namespace kingest::pipeline {
namespace {

// With the version base `none` the pending key is the arrival order, counted from the middle of
// the range so a group put back can go in front of every other.
constexpr uint64_t kFirstArrival = uint64_t{1} << 62;

// What one cached stream state is estimated to cost: its name, the map's node and slot, the state.
size_t entry_bytes(std::string_view stream) { return stream.size() + sizeof(StreamState) + 64; }
constexpr uint64_t kBriefHasLastId = uint64_t{1} << 63;

// Moves an attached item's message and event out of its batch.
size_t detach_item(Item& it) {
  Batch* b = it.batch;
  it.own = std::make_unique<DetachedEvent>(
      DetachedEvent{std::move(b->messages[it.index]), std::move(std::get<DomainEvent>(b->decoded[it.index]))});
  b->detached[it.index] = 1;
  it.batch = nullptr;
  return it.own->message.byte_size();
}

}  // namespace

void merge_groups(Group& into, Group&& next) {
  into.items.reserve(into.items.size() + next.items.size());
  for (auto& it : next.items) into.items.push_back(std::move(it));
  into.bytes += next.bytes;
  for (auto& b : next.batches) {
    if (std::find(into.batches.begin(), into.batches.end(), b) == into.batches.end()) {
      into.batches.push_back(std::move(b));
    } else {
      b->outstanding.fetch_sub(1);  // `into` already holds this batch open
    }
  }
  next.items.clear();
  next.batches.clear();
}

bool StreamTable::runnable_locked(const StreamState& st) const {
  return !revisions_ || st.dead || st.pending.begin()->first <= st.next_revision;
}

GroupPtr StreamTable::pop_merged_locked(StreamState& st, Clock::time_point now) {
  auto unhold = [&](Group& g) {
    if (!g.held_since) return;
    held_events_ -= g.items.size();
    held_bytes_.fetch_sub(g.held_bytes, std::memory_order_relaxed);
    // `now` may be a little older than the hold (taken by another thread before it locked).
    auto waited = uint64_t(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(now - *g.held_since).count()));
    max_wait_ms_ = std::max(max_wait_ms_, waited);
    g.held_since.reset();
    g.held_bytes = 0;
  };
  GroupPtr g = std::move(st.pending.begin()->second);
  st.pending.erase(st.pending.begin());
  --pending_groups_;
  unhold(*g);
  while (!st.pending.empty()) {
    Group& next = *st.pending.begin()->second;
    const bool contiguous = !revisions_ || next.first_revision == g->end_revision();
    if (!contiguous || g->bytes + next.bytes > max_append_bytes_) break;
    GroupPtr n = std::move(st.pending.begin()->second);
    st.pending.erase(st.pending.begin());
    --pending_groups_;
    unhold(*n);
    merge_groups(*g, std::move(*n));
  }
  if (g->batches.empty()) running_detached_.fetch_add(1);
  return g;
}

void StreamTable::open_gap_locked(StreamState& st, Clock::time_point now) {
  if (st.gap_since) return;
  st.gap_since = now;
  gaps_.emplace(now, &st);
}

void StreamTable::close_gap_locked(StreamState& st) {
  if (!st.gap_since) return;
  gaps_.erase({*st.gap_since, &st});
  st.gap_since.reset();
}

void StreamTable::hold_locked(StreamState& st, Clock::time_point now, std::vector<BatchPtr>& release) {
  open_gap_locked(st, now);
  for (auto& [key, g] : st.pending) {
    if (g->held_since) continue;  // detached already
    size_t bytes = 0;
    for (auto& it : g->items) {
      if (!it.own) bytes += detach_item(it);
    }
    for (auto& b : g->batches) release.push_back(std::move(b));
    g->batches.clear();
    g->held_since = now;
    g->held_bytes = bytes;
    held_events_ += g->items.size();
    if (!g->reordered) {
      g->reordered = true;
      events_reordered_ += g->items.size();
    }
    held_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
}

StreamTable::Step StreamTable::next_locked(StreamState& st, Clock::time_point now) {
  Step s;
  if (st.pending.empty()) {
    close_gap_locked(st);
    return s;
  }
  if (runnable_locked(st)) {
    close_gap_locked(st);
    st.claimed = true;
    s.run = pop_merged_locked(st, now);
    return s;
  }
  hold_locked(st, now, s.release);
  return s;
}

StreamTable::Step StreamTable::offer(GroupPtr g, Clock::time_point now) {
  std::lock_guard lock(mu_);
  return offer_locked(std::move(g), now);
}

std::vector<StreamTable::Step> StreamTable::offer(std::vector<GroupPtr>&& groups, Clock::time_point now) {
  std::vector<Step> steps;
  steps.reserve(groups.size());
  std::lock_guard lock(mu_);
  for (auto& g : groups) steps.push_back(offer_locked(std::move(g), now));
  return steps;
}

StreamTable::Step StreamTable::offer_locked(GroupPtr g, Clock::time_point now) {
  StreamState* found = g->state;
  if (found == nullptr) {
    const bool loaded = streams_.contains(g->stream);
    found = &insert_locked(g->stream);
    // Not loaded would be a caller's error; such a state is only presumed new, which the first
    // append checks, so it is still correct.
    if (!loaded) {
      found->presumed_new = true;
      found->tp = partition_index_locked(g->items.front().message().tp);
    }
    g->state = found;
  }
  StreamState& st = *found;
  lru_touch_locked(st);
  if (!st.several_partitions) {
    const TopicPartition& first = partitions_[st.tp];
    for (const auto& it : g->items) {
      if (!(it.message().tp == first)) {
        st.several_partitions = true;
        ++several_partitions_;
        break;
      }
    }
  }
  if (!st.claimed && st.pending.empty() && (!revisions_ || st.dead || g->first_revision <= st.next_revision)) {
    // The common case, a free stream with nothing waiting: the group runs now, without going
    // through `pending` (what next_locked and pop_merged_locked would do with it alone).
    close_gap_locked(st);
    st.claimed = true;
    if (g->batches.empty()) running_detached_.fetch_add(1);
    Step s;
    s.run = std::move(g);
    return s;
  }
  const uint64_t key = revisions_ ? g->first_revision : arrivals_++ + kFirstArrival;
  if (revisions_) {
    // Groups already waiting with later versions waited for this earlier one.
    for (auto it = st.pending.upper_bound(key); it != st.pending.end(); ++it) {
      if (!it->second->reordered) {
        it->second->reordered = true;
        events_reordered_ += it->second->items.size();
      }
    }
  }
  st.pending.emplace(key, std::move(g));
  ++pending_groups_;
  if (st.claimed) return {};
  return next_locked(st, now);
}

StreamTable::Step StreamTable::release(StreamState& st, Clock::time_point now) {
  std::lock_guard lock(mu_);
  st.claimed = false;
  return next_locked(st, now);
}

StreamTable::Step StreamTable::release(StreamState& st) {
  std::lock_guard lock(mu_);
  st.claimed = false;
  if (st.pending.empty()) {
    close_gap_locked(st);  // what next_locked does with nothing waiting
    return {};
  }
  return next_locked(st, Clock::now());
}

void StreamTable::put_back(GroupPtr g, bool running) {
  std::lock_guard lock(mu_);
  if (running && g->batches.empty()) running_detached_.fetch_sub(1);
  if (g->state == nullptr) g->state = &insert_locked(g->stream);
  StreamState& st = *g->state;
  uint64_t key = g->first_revision;
  if (!revisions_) key = st.pending.empty() ? arrivals_++ + kFirstArrival : st.pending.begin()->first - 1;
  st.pending.emplace(key, std::move(g));
  ++pending_groups_;
}

GroupPtr StreamTable::unpark(GroupPtr g) {
  std::lock_guard lock(mu_);
  StreamState& st = *g->state;
  if (st.pending.empty()) return g;  // most of wide data's: no tree node, no clock
  if (revisions_ && !g->reordered && st.pending.begin()->first < g->first_revision) {
    // An earlier version arrived while the group waited: what offer_locked counts for a waiting group.
    g->reordered = true;
    events_reordered_ += g->items.size();
  }
  if (g->batches.empty()) running_detached_.fetch_sub(1);  // pop_merged_locked counts the merged group again
  const uint64_t key = revisions_ ? g->first_revision : st.pending.begin()->first - 1;
  st.pending.emplace(key, std::move(g));
  ++pending_groups_;
  return pop_merged_locked(st, Clock::now());
}

std::vector<std::string> StreamTable::claim_gaps(Clock::time_point cutoff, size_t limit) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (auto it = gaps_.begin(); it != gaps_.end() && it->first <= cutoff && out.size() < limit;) {
    StreamState& st = *it->second;
    ++it;
    if (st.claimed) continue;
    close_gap_locked(st);
    st.claimed = true;
    out.emplace_back(st.name);
  }
  return out;
}

StreamTable::Step StreamTable::resume(const std::string& stream, bool give_up, Clock::time_point now) {
  std::lock_guard lock(mu_);
  StreamState& st = insert_locked(stream);
  st.claimed = false;
  if (!st.pending.empty() && give_up && !runnable_locked(st)) {
    st.claimed = true;
    Step s;
    s.run = pop_merged_locked(st, now);
    s.run->give_up = true;
    return s;
  }
  return next_locked(st, now);
}

StreamState& StreamTable::state(const std::string& stream) {
  std::lock_guard lock(mu_);
  return insert_locked(stream);  // node-based map: the reference stays valid until the stream is dropped
}

StreamState& StreamTable::insert_locked(const std::string& stream) {
  auto [it, fresh] = streams_.try_emplace(stream);
  if (fresh) {
    it->second.name = it->first.view();
    it->second.name_hash = it->hash;
    lru_push_back_locked(it->second);
    cache_bytes_.fetch_add(entry_bytes(stream), std::memory_order_relaxed);
  }
  return it->second;
}

void StreamTable::lru_push_back_locked(StreamState& st) {
  st.lru_prev = lru_tail_;
  st.lru_next = nullptr;
  (lru_tail_ != nullptr ? lru_tail_->lru_next : lru_head_) = &st;
  lru_tail_ = &st;
  ++lru_size_;
}

void StreamTable::lru_unlink_locked(StreamState& st) {
  (st.lru_prev != nullptr ? st.lru_prev->lru_next : lru_head_) = st.lru_next;
  (st.lru_next != nullptr ? st.lru_next->lru_prev : lru_tail_) = st.lru_prev;
  st.lru_prev = st.lru_next = nullptr;
  --lru_size_;
}

void StreamTable::lru_touch_locked(StreamState& st) {
  if (lru_tail_ == &st) return;
  lru_unlink_locked(st);
  lru_push_back_locked(st);
}

void StreamTable::erase_locked(Streams::Node* it, bool briefed) {
  if (!briefed) forgotten_.insert(it->hash);
  close_gap_locked(it->second);
  lru_unlink_locked(it->second);
  cache_bytes_.fetch_sub(entry_bytes(it->first), std::memory_order_relaxed);
  streams_.erase(it);
}

uint32_t StreamTable::partition_index_locked(const TopicPartition& tp) {
  if (last_partition_ < partitions_.size() && partitions_[last_partition_] == tp) return last_partition_;
  auto [it, fresh] = partition_index_.try_emplace(tp, uint32_t(partitions_.size()));
  if (fresh) partitions_.push_back(tp);
  last_partition_ = it->second;
  return it->second;
}

size_t StreamTable::max_brief_capacity(size_t budget_bytes) {
  const size_t slots = budget_bytes / 4 * 3 / sizeof(BriefTable::Entry);
  return slots < BriefTable::kMinCapacity ? 0 : slots;
}

void StreamTable::count_briefs_locked() {
  const size_t now = briefs_.bytes();
  if (now >= brief_bytes_) {
    cache_bytes_.fetch_add(now - brief_bytes_, std::memory_order_relaxed);
  } else {
    cache_bytes_.fetch_sub(brief_bytes_ - now, std::memory_order_relaxed);
  }
  brief_bytes_ = now;
}

size_t StreamTable::evict(size_t budget_bytes) {
  std::lock_guard lock(mu_);
  size_t dropped = 0;
  const size_t brief_capacity = max_brief_capacity(budget_bytes);
  // Each state is looked at once at most: busy ones move to the back.
  for (size_t n = lru_size_; n > 0 && cache_bytes_.load(std::memory_order_relaxed) > budget_bytes; --n) {
    StreamState& st = *lru_head_;
    if (st.claimed || st.dead || !st.pending.empty()) {
      lru_touch_locked(st);
      continue;
    }
    Streams::Node* it = streams_.node_of(st, st.name_hash);
    const uint64_t hash = it->hash;
    const bool briefed =
        brief_capacity > 0 && revisions_ && !st.presumed_new && !st.last_id_unknown && st.gap_since == std::nullopt;
    if (briefed) {
      if (briefs_.full_for(hash, brief_capacity) && !briefs_.contains(hash)) {
        // The brief's shard is full: an eighth of its briefs goes (by their hash's bits, a
        // different eighth each time); those streams are loaded again if they come back.
        briefs_.drop_eighth_of(hash, [this](uint64_t key) { forgotten_.insert(key); });
      }
      briefs_.insert_or_assign(hash, st.next_revision | (st.last_id ? kBriefHasLastId : 0), st.last_id.value_or(Uuid{}),
                               brief_capacity);
      count_briefs_locked();
    } else {
      briefs_.erase(hash);  // a brief from an earlier drop is older than this state
    }
    erase_locked(it, briefed);
    ++dropped;
  }
  evictions_ += dropped;
  return dropped;
}


void StreamTable::apply_tail(StreamState& st, const StreamTail& t) {
  st.presumed_new = false;
  st.last_id_unknown = false;
  if (t.exists) {
    st.next_revision = t.last_revision.value() + 1;
    st.last_id = t.last_id;
  } else {
    st.next_revision = 0;
    st.last_id.reset();
  }
}


std::pair<StreamState*, bool> StreamTable::find_or_add(const std::string& stream, const TopicPartition& tp) {
  const uint64_t hash = Streams::hash(stream);
  std::lock_guard lock(mu_);
  return find_or_add_locked(stream, hash, tp);
}

std::vector<std::pair<StreamState*, bool>> StreamTable::find_or_add(const std::vector<const std::string*>& streams,
                                                                    const std::vector<uint64_t>& hashes,
                                                                    const std::vector<const TopicPartition*>& tps) {
  std::vector<std::pair<StreamState*, bool>> out;
  const size_t n = streams.size();
  assert(hashes.size() == n && tps.size() == n);
  out.reserve(n);
  std::lock_guard lock(mu_);
  // On wide data most of a batch's streams were last touched thousands of streams ago: each
  // lookup's slot, node and name are loaded some lookups ahead of it.
  for (size_t k = 0; k < n; ++k) {
    if (k + 12 < n) streams_.fetch_slot(hashes[k + 12]);
    if (k + 8 < n) streams_.fetch_node(hashes[k + 8]);
    if (k + 4 < n) streams_.fetch_name(hashes[k + 4]);
    out.push_back(find_or_add_locked(*streams[k], hashes[k], *tps[k]));
  }
  return out;
}

std::pair<StreamState*, bool> StreamTable::find_or_add_locked(const std::string& stream, uint64_t hash,
                                                             const TopicPartition& tp) {
  auto [it, fresh] = streams_.try_emplace(stream, hash);
  if (fresh) {
    StreamState& st = it->second;
    st.name = it->first.view();
    st.name_hash = hash;
    lru_push_back_locked(st);
    cache_bytes_.fetch_add(entry_bytes(stream), std::memory_order_relaxed);
    st.tp = partition_index_locked(tp);
    if (const ShardedBriefTable::Entry* b = briefs_.find(hash)) {
      st.next_revision = b->value & ~kBriefHasLastId;
      if ((b->value & kBriefHasLastId) != 0) st.last_id = b->id;
      st.from_brief = true;
      briefs_.erase(hash);  // its slot stays counted: the table does not shrink
    } else {
      st.first_seen = forgotten_.empty() || forgotten_.erase(hash) == 0;
    }
  }
  return {&it->second, fresh};
}

void StreamTable::finished(const Group& g) {
  if (g.batches.empty()) running_detached_.fetch_sub(1);
}

size_t StreamTable::revoke(const std::vector<TopicPartition>& tps, bool forget_streams) {
  std::set<TopicPartition> revoked(tps.begin(), tps.end());
  std::lock_guard lock(mu_);
  if (!forget_streams && pending_groups_ == 0) return 0;
  std::vector<uint8_t> revoked_index(partitions_.size(), 0);
  for (size_t i = 0; i < partitions_.size(); ++i) revoked_index[i] = revoked.contains(partitions_[i]) ? 1 : 0;
  size_t dropped = 0;
  std::vector<Streams::Node*> gone;  // erased after the walk (the index may not change during it)
  streams_.for_each([&](Streams::Node& node) {
    StreamState& st = node.second;
    if (st.claimed) return;
    // Free streams hold only detached groups: keep the events of partitions still assigned, as
    // contiguous runs.
    std::multimap<uint64_t, GroupPtr> kept;
    for (auto& entry : st.pending) {
      const uint64_t key = entry.first;
      GroupPtr& g = entry.second;
      GroupPtr run;
      auto flush = [&] {
        if (run) kept.emplace(revisions_ ? run->first_revision : key, std::move(run));
      };
      uint64_t rev = g->first_revision;
      for (auto& item : g->items) {
        if (revoked.contains(item.message().tp)) {
          held_bytes_.fetch_sub(item.message().byte_size(), std::memory_order_relaxed);
          --held_events_;
          ++dropped;
          flush();
        } else {
          if (!run) {
            run = std::make_unique<Group>();
            run->stream = g->stream;
            run->state = &st;
            run->first_revision = rev;
            run->held_since = g->held_since;
          }
          run->held_bytes += item.message().byte_size();
          run->bytes += g->items.empty() ? 0 : g->bytes / g->items.size();
          run->items.push_back(std::move(item));
        }
        ++rev;
      }
      flush();
    }
    pending_groups_ = pending_groups_ - st.pending.size() + kept.size();
    st.pending = std::move(kept);
    if (st.pending.empty()) close_gap_locked(st);
    if (forget_streams && st.pending.empty() && revoked_index[st.tp]) gone.push_back(&node);
  });
  for (Streams::Node* node : gone) erase_locked(node, /*briefed=*/false);
  if (forget_streams) {
    // Briefs do not say which partition their stream was seen on: forget them all (a stream met
    // again is read, as the partitions' next owner may have written it meanwhile).
    briefs_.erase_if([this](uint64_t key) {
      forgotten_.insert(key);
      return true;
    });
    briefs_.clear();
    count_briefs_locked();
  }
  return dropped;
}

TableStats StreamTable::stats() const {
  std::lock_guard lock(mu_);
  TableStats s;
  s.streams_on_several_partitions = several_partitions_;
  s.held_events = held_events_;
  s.held_bytes = held_bytes_.load(std::memory_order_relaxed);
  s.events_reordered = events_reordered_;
  s.max_reorder_wait_ms = max_wait_ms_;
  s.gaps = gaps_.size();
  s.pending_groups = pending_groups_;
  s.cached_streams = streams_.size();
  s.cache_bytes = cache_bytes_.load(std::memory_order_relaxed);
  s.evictions = evictions_;
  return s;
}

}  // namespace kingest::pipeline
