// Closes batches on max events, max bytes or max age (the triple every sink's users know), with
// the clock injected so tests advance time instead of sleeping.
//
// Threads: single-threaded; owned by the polling thread.
//
//   Batcher<SourceMessage> b({.max_events = 2000, .max_bytes = 4 << 20, .max_age = 50ms});
//   if (auto full = b.add(std::move(msg), msg_bytes, now)) emit(std::move(*full));
//   if (auto aged = b.flush_if_aged(now)) emit(std::move(*aged));
//   fill(b.next(now)); if (auto full = b.added(msg_bytes)) emit(std::move(*full));  // built in place
#pragma once

#include <chrono>
#include <optional>
#include <vector>

namespace kingest::kafka {

struct BatchLimits {
  size_t max_events = 4096;
  size_t max_bytes = 4u << 20;
  std::chrono::milliseconds max_age{20};
};

template <class T>
class Batcher {
 public:
  using Clock = std::chrono::steady_clock;
  struct Closed {
    std::vector<T> items;
    size_t bytes = 0;
  };

  explicit Batcher(BatchLimits limits) : limits_(limits) {}

  // Adds one item; returns the batch when this item filled it.
  std::optional<Closed> add(T item, size_t bytes, Clock::time_point now) {
    if (current_.items.empty()) opened_ = now;
    current_.items.push_back(std::move(item));
    current_.bytes += bytes;
    if (current_.items.size() >= limits_.max_events || current_.bytes >= limits_.max_bytes) return take();
    return std::nullopt;
  }

  // The same in two steps, for items built in place: `next` appends an empty item to fill, and
  // `added` counts its bytes and returns the batch when it filled it.
  T& next(Clock::time_point now) {
    if (current_.items.empty()) opened_ = now;
    return current_.items.emplace_back();
  }
  std::optional<Closed> added(size_t bytes) {
    current_.bytes += bytes;
    if (current_.items.size() >= limits_.max_events || current_.bytes >= limits_.max_bytes) return take();
    return std::nullopt;
  }

  // Returns the open batch when it is older than max age.
  std::optional<Closed> flush_if_aged(Clock::time_point now) {
    if (!current_.items.empty() && now - opened_ >= limits_.max_age) return take();
    return std::nullopt;
  }

  // Returns whatever is open (end of input, shutdown).
  std::optional<Closed> flush() {
    if (current_.items.empty()) return std::nullopt;
    return take();
  }

  [[nodiscard]] bool empty() const { return current_.items.empty(); }
  [[nodiscard]] size_t size() const { return current_.items.size(); }
  [[nodiscard]] size_t bytes() const { return current_.bytes; }
  [[nodiscard]] const BatchLimits& limits() const { return limits_; }

 private:
  Closed take() {
    Closed out = std::move(current_);
    current_ = Closed{};
    current_.items.reserve(out.items.size());
    return out;
  }
  BatchLimits limits_;
  Closed current_;
  Clock::time_point opened_{};
};

}  // namespace kingest::kafka
