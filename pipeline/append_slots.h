// Append slots: at most `limit` appends handed to the sink and not yet answered. A stream whose
// turn comes while every slot is taken is parked (its group waits here; later groups of the stream
// wait in the stream table and merge into it when it gets its slot) and gets the next free slot,
// first parked first served.
//
// Threads: any; one mutex. Lock order: the slots' mutex, then the stream table's.
#pragma once

#include <algorithm>
#include <deque>
#include <mutex>
#include <string>
#include <utility>

namespace kingest::pipeline {

// `Key` is what waits for a slot: the engine parks the stream's group itself (its stream stays
// claimed, so nothing else runs it meanwhile), and `give` hands it back.
template <typename Key>
class AppendSlots {
 public:
  explicit AppendSlots(size_t limit) : limit_(std::max<size_t>(1, limit)) {}

  // Takes a slot (true, `key` left as it is), or parks `key`, moved in (false).
  bool take_or_park(Key& key) {
    std::lock_guard lock(mu_);
    if (used_ < limit_) {
      ++used_;
      return true;
    }
    parked_.push_back(std::move(key));
    return false;
  }

  // Gives a slot back, or hands it to the first parked key: `take(key)` returns what runs with the
  // slot (null when that key has nothing to run any more, then the next parked key is asked).
  template <typename Take>
  auto give(Take&& take) -> decltype(take(std::declval<Key>())) {
    return give(std::forward<Take>(take), [](const Key&, const Key*) {});
  }
  // The same; before `take` runs, `warm(next, after)` is called with the key that is served next
  // (and the one after it, or null), so that the caller can fetch what those will touch while it
  // works on this one. Both run under the slots' mutex: neither may block.
  template <typename Take, typename Warm>
  auto give(Take&& take, Warm&& warm) -> decltype(take(std::declval<Key>())) {
    std::lock_guard lock(mu_);
    while (!parked_.empty()) {
      Key key = std::move(parked_.front());
      parked_.pop_front();
      if (!parked_.empty()) warm(parked_.front(), parked_.size() > 1 ? &parked_[1] : nullptr);
      if (auto g = take(std::move(key))) return g;
    }
    --used_;
    return nullptr;
  }

  // Keys waiting for a slot.
  [[nodiscard]] size_t parked() const {
    std::lock_guard lock(mu_);
    return parked_.size();
  }

 private:
  const size_t limit_;
  mutable std::mutex mu_;
  size_t used_ = 0;
  std::deque<Key> parked_;
};

}  // namespace kingest::pipeline
