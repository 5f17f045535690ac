// Append slots: at most `limit` appends handed to the sink and not yet answered. A stream whose
// turn comes while every slot is taken is parked (its group goes back to the stream's pending
// groups, where later groups merge into it) and gets the next free slot, first parked first served.
//
// Threads: any; one mutex. Lock order: the slots' mutex, then the stream table's.
#pragma once

#include <algorithm>
#include <deque>
#include <mutex>
#include <string>
#include <utility>

namespace kingest::pipeline {

// `Key` names a parked stream (the engine parks its stream state; parked streams are claimed, so
// the key stays valid until `give` hands it back).
template <typename Key>
class AppendSlots {
 public:
  explicit AppendSlots(size_t limit) : limit_(std::max<size_t>(1, limit)) {}

  // Takes a slot (true), or parks `stream` after `park()` put its group back (false). `park` runs
  // under the slots' mutex, so a slot given back meanwhile cannot miss the parked group.
  template <typename Park>
  bool take_or_park(Key stream, Park&& park) {
    std::lock_guard lock(mu_);
    if (used_ < limit_) {
      ++used_;
      return true;
    }
    park();
    parked_.push_back(stream);
    return false;
  }

  // Gives a slot back, or hands it to the first parked stream: `take(stream)` returns that
  // stream's next group (null when the stream has nothing any more), which is returned holding the slot.
  template <typename Take>
  auto give(Take&& take) -> decltype(take(std::declval<Key>())) {
    std::lock_guard lock(mu_);
    while (!parked_.empty()) {
      Key key = std::move(parked_.front());
      parked_.pop_front();
      if (auto g = take(key)) return g;
    }
    --used_;
    return nullptr;
  }

 private:
  const size_t limit_;
  std::mutex mu_;
  size_t used_ = 0;
  std::deque<Key> parked_;
};

}  // namespace kingest::pipeline
