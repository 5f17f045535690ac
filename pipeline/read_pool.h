// A few threads for the engine's blocking reads of a stream's written prefix, so they overlap
// (a replay over streams already written reads one prefix per stream) and the flow graph's workers
// go on meanwhile. No TBB: the jobs hand their results back to the engine's arena themselves.
// Threads: `post` from any thread; the pool's threads start at the first post.
// Lifecycle: the destructor runs what is queued, then joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kingest::pipeline {

class ReadPool {
 public:
  explicit ReadPool(size_t threads) : size_(threads) {}
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;
  ~ReadPool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  void post(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
      // One more thread while some are busy and the pool is not full: a lone read needs one.
      if (threads_.size() < size_ && idle_ == 0) threads_.emplace_back([this] { work(); });
    }
    cv_.notify_one();
  }

 private:
  void work() {
    std::unique_lock lock(mu_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) return;  // stopping, nothing left
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  const size_t size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stop_ = false;
};

}  // namespace kingest::pipeline
