#include "pipeline/timed_sink.h"

#include <algorithm>
#include <cmath>

namespace kingest::pipeline {
namespace {

constexpr double kGrowth = 1.03;
const double kLogGrowth = std::log(kGrowth);

}  // namespace

void LatencyHistogram::record(std::chrono::nanoseconds d) {
  const double us = std::max(1.0, double(d.count()) / 1000.0);
  const auto i = std::min(kBuckets - 1, size_t(std::log(us) / kLogGrowth));
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(uint64_t(std::max<int64_t>(0, d.count())), std::memory_order_relaxed);
}

double LatencyHistogram::sum_s() const { return double(sum_ns_.load(std::memory_order_relaxed)) / 1e9; }

std::vector<std::pair<double, uint64_t>> LatencyHistogram::cumulative(const std::vector<double>& bounds_s) const {
  std::vector<std::pair<double, uint64_t>> out;
  out.reserve(bounds_s.size());
  uint64_t seen = 0;
  size_t i = 0;
  for (double le : bounds_s) {
    // Bucket i holds [g^i, g^(i+1)) µs; it counts once its upper end is within the bound.
    while (i < kBuckets && std::pow(kGrowth, double(i + 1)) <= le * 1e6) {
      seen += buckets_[i].load(std::memory_order_relaxed);
      ++i;
    }
    out.emplace_back(le, seen);
  }
  return out;
}

uint64_t LatencyHistogram::count() const {
  uint64_t n = 0;
  for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
  return n;
}

double LatencyHistogram::quantile_ms(double q) const {
  const uint64_t n = count();
  if (n == 0) return 0;
  // The record of rank ceil(q * n) (at least the first).
  const auto rank = std::max<uint64_t>(1, uint64_t(std::ceil(std::clamp(q, 0.0, 1.0) * double(n))));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i].load(std::memory_order_relaxed);
    // The bucket's middle: [g^i, g^(i+1)) µs.
    if (seen >= rank) return std::pow(kGrowth, double(i) + 0.5) / 1000.0;
  }
  return std::pow(kGrowth, double(kBuckets)) / 1000.0;
}

absl::StatusOr<StreamTail> TimedSink::read_tail(const std::string& stream) {
  const auto start = std::chrono::steady_clock::now();
  auto tail = inner_.read_tail(stream);
  read_latency_.record(std::chrono::steady_clock::now() - start);
  streams_read_.fetch_add(1, std::memory_order_relaxed);
  return tail;
}

std::vector<absl::StatusOr<StreamTail>> TimedSink::read_tails(const std::vector<std::string>& streams) {
  const auto start = std::chrono::steady_clock::now();
  auto tails = inner_.read_tails(streams);
  read_latency_.record(std::chrono::steady_clock::now() - start);
  streams_read_.fetch_add(streams.size(), std::memory_order_relaxed);
  return tails;
}

void TimedSink::append(AppendRequest request, AppendDone done) {
  const auto sent = begin_append();
  inner_.append(std::move(request), [this, sent, done = std::move(done)](AppendOutcome outcome) {
    answered(sent, outcome.answered_at);
    done(std::move(outcome));
  });
}

void TimedSink::append_many(std::vector<PendingAppend>& appends) {
  const auto sent = begin_appends(appends.size());
  for (auto& a : appends) {
    a.done = [this, sent, done = std::move(a.done)](AppendOutcome outcome) {
      answered(sent, outcome.answered_at);
      done(std::move(outcome));
    };
  }
  inner_.append_many(appends);
}

std::chrono::steady_clock::time_point TimedSink::begin_appends(size_t n) {
  in_flight_.fetch_add(n, std::memory_order_relaxed);
  return std::chrono::steady_clock::now();
}

void TimedSink::answered(std::chrono::steady_clock::time_point sent, std::chrono::steady_clock::time_point at) {
  const auto now = at == std::chrono::steady_clock::time_point{} ? std::chrono::steady_clock::now() : at;
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  latency_.record(now - sent);
  const int64_t ns = now.time_since_epoch().count();
  int64_t prev = last_answer_ns_.load(std::memory_order_relaxed);
  while (prev < ns && !last_answer_ns_.compare_exchange_weak(prev, ns, std::memory_order_relaxed)) {
  }
}

std::optional<std::chrono::steady_clock::time_point> TimedSink::last_answer_at() const {
  const int64_t ns = last_answer_ns_.load(std::memory_order_relaxed);
  if (ns == 0) return std::nullopt;
  return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(ns));
}

}  // namespace kingest::pipeline
