#include "cli/discard_sink.h"

#include <pthread.h>

#include <chrono>

#include "kurrent/wire.h"
#include "proto/kurrentdb/records_wire.h"

namespace kingest::cli {

DiscardSink::DiscardSink() : worker_([this] { run(); }) {}

DiscardSink::~DiscardSink() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  worker_.join();
}

void DiscardSink::append(AppendRequest request, AppendDone done) {
  {
    std::lock_guard lock(mu_);
    queue_.emplace_back(std::move(request), std::move(done));
  }
  cv_.notify_one();
}

void DiscardSink::append_many(std::vector<PendingAppend>& appends) {
  if (appends.empty()) return;
  {
    std::lock_guard lock(mu_);
    for (auto& a : appends) queue_.emplace_back(std::move(a.request), std::move(a.done));
  }
  appends.clear();
  cv_.notify_one();
}

void DiscardSink::run() {
  pthread_setname_np(pthread_self(), "ki-discard");
  std::string wire_bytes;
  std::vector<std::pair<AppendRequest, AppendDone>> work;
  std::vector<AppendOutcome> answers;
  std::vector<uint64_t> keys;  // each append's key in tails_ (0: no tail to record)
  for (;;) {
    work.clear();  // keeps its room, which the next swap hands to the queue
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything answered
      work.swap(queue_);
    }
    uint64_t bytes = 0;
    answers.clear();
    for (auto& [req, done] : work) {
      // The stream's records and check as the gRPC sink writes them into an AppendRecords request
      // (records, the default mode against a server that has it).
      wire_bytes.clear();
      if (auto bad = ::kingest::wire::append_records_fragment(req.stream, kurrent::wire::v2_expected(req.expected),
                                                              req.events, &wire_bytes)) {
        answers.push_back(
            AppendOutcome{.code = AppendCode::kRejected, .current_revision = {}, .position = 0, .message = *bad});
        continue;
      }
      bytes += wire_bytes.size();
      // The revision the append reaches, from its expected revision (the appends are not checked
      // against the tails below: every stream is taken to be where the engine expects it).
      std::optional<StreamRevision> reached;
      if (const auto* r = std::get_if<StreamRevision>(&req.expected)) {
        reached = StreamRevision{r->value() + req.events.size()};
      } else if (std::holds_alternative<ExpectNoStream>(req.expected) && !req.events.empty()) {
        reached = StreamRevision{req.events.size() - 1};
      }
      answers.push_back(
          AppendOutcome{.code = AppendCode::kSuccess, .current_revision = reached, .position = 0, .message = {}});
    }
    // The tails before any answer (an answer may lead to a read of its stream). On wide data
    // nearly every stream's slot is a miss from memory: the keys are hashed and their slots
    // fetched ahead, outside the lock (this thread is the map's only writer), so that the lock
    // is held for the writes alone.
    keys.clear();
    for (size_t i = 0; i < work.size(); ++i) {
      const auto& req = work[i].first;
      if (answers[i].code == AppendCode::kSuccess && answers[i].current_revision && !req.events.empty()) {
        keys.push_back(absl::HashOf(req.stream));
        tails_.prefetch(keys.back());
      } else {
        keys.push_back(0);
      }
    }
    {
      std::lock_guard lock(tails_mu_);
      for (size_t i = 0; i < work.size(); ++i) {
        const auto& reached = answers[i].current_revision;
        const auto& req = work[i].first;
        if (answers[i].code == AppendCode::kSuccess && reached && !req.events.empty()) {
          tails_[keys[i]] = Tail{reached->value(), req.events.back().id};
        }
      }
      encoded_bytes_ += bytes;
    }
    const auto at = std::chrono::steady_clock::now();  // the answers' time, read once for them all
    for (size_t i = 0; i < work.size(); ++i) {
      answers[i].answered_at = at;
      work[i].second(std::move(answers[i]));
    }
  }
}

absl::StatusOr<StreamTail> DiscardSink::read_tail(const std::string& stream) {
  std::lock_guard lock(tails_mu_);
  StreamTail t;
  if (auto it = tails_.find(absl::HashOf(stream)); it != tails_.end()) {
    t.exists = true;
    t.last_revision = StreamRevision{it->second.revision};
    t.last_id = it->second.last_id;
  }
  return t;
}

absl::StatusOr<std::vector<RecordedEventData>> DiscardSink::read_forwards(const std::string&, StreamRevision,
                                                                          uint64_t) {
  return std::vector<RecordedEventData>{};
}

uint64_t DiscardSink::encoded_bytes() const {
  std::lock_guard lock(tails_mu_);
  return encoded_bytes_;
}

}  // namespace kingest::cli
