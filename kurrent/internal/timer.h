// Timer: one thread ("ki-kurrent-timer") that runs callbacks at their time points: append
// deadlines, retries after a backoff, BatchAppend sweeps. Callbacks run on the timer thread, one at
// a time, and must not block. Owner: the client's Core. `stop` drops what is queued.
#pragma once

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace kingest::kurrent::internal {

using Clock = std::chrono::steady_clock;

class Timer {
 public:
  Timer() : thread_([this] { run(); }) {}
  ~Timer() { stop(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void at(Clock::time_point when, std::function<void()> f) {
    bool earliest = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      auto it = queue_.emplace(when, std::move(f));
      earliest = it == queue_.begin();
    }
    // Every append schedules its deadline: the thread is woken only when its next wake-up moves.
    if (earliest) cv_.notify_one();
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      queue_.clear();
    }
    cv_.notify_one();
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // the last owner let go inside a timer callback
    } else {
      thread_.join();
    }
  }

 private:
  void run() {
    pthread_setname_np(pthread_self(), "ki-kurrent-timer");
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (queue_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto first = queue_.begin();
      if (first->first > Clock::now()) {
        cv_.wait_until(lock, first->first);
        continue;
      }
      auto f = std::move(first->second);
      queue_.erase(first);
      lock.unlock();
      f();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<Clock::time_point, std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kingest::kurrent::internal
