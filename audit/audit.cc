// The audit itself: messages decoded with the ingest's rules and recorded per stream (`add`), then
// compared with what the store holds (`check`). The store reads are store_reads.cc's, the Kafka
// read kafka_read.cc's, the report report.cc's.
#include "audit/audit.h"

#include <librdkafka/rdkafka.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "core/json_writer.h"

namespace kingest::audit {
namespace {

using Clock = std::chrono::steady_clock;

struct UuidHash {
  size_t operator()(const Uuid& u) const {
    const auto& b = u.bytes();
    uint64_t a = 0;
    uint64_t c = 0;
    for (size_t i = 0; i < 8; ++i) a = (a << 8) | b[i];
    for (size_t i = 8; i < 16; ++i) c = (c << 8) | b[i];
    return size_t(a ^ (c * 0x9e3779b97f4a7c15ULL));
  }
};

}  // namespace

void Auditor::note(Finding f, Example ex) {
  pending_.counts[size_t(f)]++;
  auto& list = pending_.examples[size_t(f)];
  if (list.size() < max_examples_ && f != Finding::kOk && f != Finding::kDeadLettered) list.push_back(std::move(ex));
}

void Auditor::record(std::string stream, Expected e) {
  auto [it, fresh] = streams_.try_emplace(std::move(stream));
  it->second.events.push_back(e);
  if (fresh && prefetch_store_ != nullptr) {
    const bool revisions = rules_.version_base.kind != pipeline::VersionBase::Kind::kNone;
    {
      std::lock_guard lock(prefetch_mu_);
      prefetch_queue_.emplace_back(it->first, revisions ? e.revision : 0);
    }
    prefetch_cv_.notify_one();
  }
}

Auditor::~Auditor() {
  {
    std::lock_guard lock(prefetch_mu_);
    prefetch_closing_ = true;
    prefetch_queue_.clear();
  }
  prefetch_cv_.notify_all();
  for (auto& t : prefetch_threads_) t.join();
  {
    std::lock_guard lock(all_mu_);
    all_closing_ = true;
  }
  all_cv_.notify_all();
  if (all_thread_.joinable()) all_thread_.join();
}

void Auditor::add(std::vector<SourceMessage> batch) {
  // Decoding is the costly part: in parallel; what it yields is recorded in message order.
  struct Decoded {
    bool dead_lettered = false;
    std::optional<std::string> error;
    std::string stream;
    Expected e;
  };
  std::vector<Decoded> out(batch.size());
  const bool revisions = rules_.version_base.kind != pipeline::VersionBase::Kind::kNone;
  auto decode_one = [&](const SourceMessage& m, Decoded& d) {
    if (!dead_letters_.empty() &&
        dead_letters_.contains(SourcePosition{m.tp.topic, m.tp.partition, m.offset.value()})) {
      d.dead_lettered = true;
      return;
    }
    auto r = codecs::decode_message(m, rules_.topic_codecs);
    if (auto* err = std::get_if<DecodeError>(&r)) {
      d.error = err->reason;
      return;
    }
    const DomainEvent& ev = std::get<DomainEvent>(r);
    d.stream = rules_.stream_names.render(ev);
    if (!rules_.allow_system_streams && d.stream.starts_with('$')) {
      d.error = "stream name '" + d.stream + "' starts with '$' (the ingest dead-letters it as system-stream)";
      return;
    }
    uint64_t rev = 0;
    if (revisions) {
      auto r2 = rules_.version_base.revision_of(ev.aggregate_version);
      if (!r2) {
        d.error = "aggregateVersion " + std::to_string(ev.aggregate_version) + " is below the version base " +
                  rules_.version_base.to_string() + " (stream " + d.stream + ")";
        return;
      }
      rev = *r2;
    }
    d.e.revision = rev;
    d.e.id = pipeline::derive_event_id(ev, d.stream, revisions ? rev : uint64_t(m.offset.value()));
    const std::string_view ct =
        ev.content_type == pipeline::kJsonContentType ? pipeline::kJsonContentType : pipeline::kBytesContentType;
    d.e.content_hash = content_hash(ev.event_type, ct, ev.payload);
  };
  oneapi::tbb::parallel_for(oneapi::tbb::blocked_range<size_t>(0, batch.size(), 256), [&](const auto& range) {
    for (size_t i = range.begin(); i < range.end(); ++i) decode_one(batch[i], out[i]);
  });
  uint32_t topic = 0;  // the last message's, into topics_
  for (size_t i = 0; i < batch.size(); ++i) {
    const SourceMessage& m = batch[i];
    ++messages_;
    Decoded& d = out[i];
    if (d.dead_lettered) {
      note(Finding::kDeadLettered, {});
      continue;
    }
    if (d.error) {
      note(Finding::kUndecodable, Example{.topic = m.tp.topic,
                                          .partition = m.tp.partition,
                                          .offset = m.offset.value(),
                                          .detail = *d.error + "; not in the dead-letter file"});
      continue;
    }
    if (topics_.empty() || topics_[topic] != m.tp.topic) {
      auto it = std::find(topics_.begin(), topics_.end(), m.tp.topic);
      topic = uint32_t(it - topics_.begin());
      if (it == topics_.end()) topics_.push_back(m.tp.topic);
    }
    d.e.source = uint32_t(sources_.size());
    sources_.push_back(Source{topic, m.tp.partition, m.offset.value()});
    record(std::move(d.stream), d.e);
  }
  if (all_thread_.joinable()) {
    {
      std::lock_guard lock(all_mu_);
      added_messages_ = messages_;
      added_streams_ = streams_.size();
    }
    all_cv_.notify_all();
  }
}

absl::StatusOr<AuditReport> Auditor::check(Sink& store, const CheckOptions& options) {
  auto started = Clock::now();
  std::vector<const std::pair<const std::string, StreamExpectations>*> work;
  work.reserve(streams_.size());
  for (const auto& s : streams_) work.push_back(&s);
  // Sorted so that examples come out in a stable order, whatever the threads did.
  std::sort(work.begin(), work.end(), [](auto* a, auto* b) { return a->first < b->first; });

  const bool revisions = rules_.version_base.kind != pipeline::VersionBase::Kind::kNone;
  std::atomic<size_t> next{0};
  std::mutex mu;
  absl::Status failure;
  AuditReport total = pending_;
  std::vector<std::pair<size_t, std::pair<Finding, Example>>> examples;  // (stream index, example)
  {
    // The prefetch threads stop after the reads in progress; `check` reads what they did not.
    std::unique_lock lock(prefetch_mu_);
    prefetch_closing_ = true;
    prefetch_queue_.clear();
  }
  prefetch_cv_.notify_all();
  for (auto& t : prefetch_threads_) t.join();
  prefetch_threads_.clear();

  // The $all read ends (or gives up) once it knows every audited stream.
  if (all_thread_.joinable()) {
    {
      std::lock_guard lock(all_mu_);
      adding_done_ = true;
      added_messages_ = messages_;
      added_streams_ = streams_.size();
    }
    all_cv_.notify_all();
    all_thread_.join();
    // Read ahead on the plan, the whole of $all may be in before the messages are: the budget is
    // what came, whenever the read ended, so the choice does not depend on which finished first.
    const uint64_t budget = added_messages_ + kAllEventsPerStream * added_streams_;
    if (all_state_ == AllState::kComplete && all_options_.store_read != StoreRead::kAll && all_read_ > budget) {
      all_state_ = AllState::kGaveUp;
      all_status_ = all_over_budget(budget);
      all_events_.clear();
      reread_.clear();
    }
  }
  const bool from_all = all_state_ == AllState::kComplete;
  if (all_state_ == AllState::kFailed && all_options_.store_read == StoreRead::kAll) return all_status_;
  total.store_read = from_all ? "all" : "streams";
  if (all_state_ == AllState::kFailed || all_state_ == AllState::kGaveUp) {
    total.store_read_note = std::string(all_status_.message());
    if (all_state_ == AllState::kFailed) total.store_read_note += " (read stream by stream instead)";
  }
  if (from_all) total.store_events_read = all_read_;

  auto worker = [&] {
    std::array<uint64_t, kFindingCount> counts{};
    std::vector<std::pair<size_t, std::pair<Finding, Example>>> mine;
    std::array<size_t, kFindingCount> kept{};
    uint64_t read_events = 0;
    std::vector<StoreEvent> stored;
    for (size_t k = next.fetch_add(1); k < work.size(); k = next.fetch_add(1)) {
      const std::string& name = work[k]->first;
      const auto& expected = work[k]->second.events;
      auto found = [&](Finding f, const Expected* e, std::optional<uint64_t> rev, std::string detail) {
        counts[size_t(f)]++;
        if (f == Finding::kOk || kept[size_t(f)] >= options.examples) return;
        kept[size_t(f)]++;
        Example ex{.stream = name, .revision = rev, .detail = std::move(detail)};
        if (e != nullptr) {
          const auto& src = sources_[e->source];
          ex.topic = topics_[src.topic];
          ex.partition = src.partition;
          ex.offset = src.offset;
        }
        mine.push_back({k, {f, std::move(ex)}});
      };

      uint64_t from = 0;
      if (revisions) {
        from = UINT64_MAX;
        for (const auto& e : expected) from = std::min(from, e.revision);
      }
      std::optional<absl::StatusOr<std::vector<StoreEvent>>> got;
      bool counted = false;
      if (from_all && !reread_.contains(name)) {
        // $all kept the stream's events in revision order; the read is counted already. Workers
        // take different streams and nothing is inserted any more: no lock needed.
        std::vector<StoreEvent> kept;
        if (auto it = all_events_.find(name); it != all_events_.end()) kept = std::move(it->second);
        std::erase_if(kept, [&](const StoreEvent& s) { return s.revision < from; });
        counted = true;
        got = std::move(kept);
      }
      // A prefetched read serves when it started at or below every expected revision.
      if (!got) {
        std::lock_guard lock(prefetch_mu_);
        auto it = fetched_.find(name);
        if (it != fetched_.end() && it->second.from <= from) {
          const uint64_t skip = from - it->second.from;
          if (it->second.events.ok() && skip > 0) {
            auto& v = *it->second.events;
            v.erase(v.begin(), v.begin() + long(std::min<uint64_t>(skip, v.size())));
          }
          got = std::move(it->second.events);
          fetched_.erase(it);
        }
      }
      if (!got) got = fetch(store, name, from, options.page_size);
      if (!got->ok()) {
        std::lock_guard lock(mu);
        if (failure.ok()) failure = got->status();
        return;
      }
      stored = std::move(**got);
      if (!counted) read_events += stored.size();
      std::unordered_map<Uuid, size_t, UuidHash> by_id;  // id → index into stored
      by_id.reserve(stored.size());
      for (size_t i = 0; i < stored.size(); ++i) by_id.emplace(stored[i].id, i);
      std::unordered_map<Uuid, char, UuidHash> expected_ids;
      expected_ids.reserve(expected.size());
      for (const auto& e : expected) expected_ids.emplace(e.id, 0);

      auto compare = [&](const Expected& e, const StoreEvent& s) {
        if (s.hash == e.content_hash) {
          found(Finding::kOk, &e, s.revision, {});
        } else {
          found(Finding::kMismatched, &e, s.revision,
                "event " + e.id.to_string() + " is there with another type, content type or data");
        }
      };
      if (revisions) {
        // Stored revisions are contiguous from `from`: index = revision - from.
        auto at_revision = [&](uint64_t r) -> const StoreEvent* {
          if (r < from || r - from >= stored.size()) return nullptr;
          const StoreEvent& s = stored[r - from];
          return s.revision == r ? &s : nullptr;
        };
        std::unordered_map<uint64_t, char> expected_revisions;
        for (const auto& e : expected) {
          expected_revisions.emplace(e.revision, 0);
          const StoreEvent* s = at_revision(e.revision);
          if (s != nullptr && s->id == e.id) {
            compare(e, *s);
          } else if (auto it = by_id.find(e.id); it != by_id.end()) {
            found(Finding::kMisordered, &e, e.revision,
                  "event " + e.id.to_string() + " is at revision " + std::to_string(stored[it->second].revision));
          } else if (s != nullptr) {
            found(Finding::kMismatched, &e, e.revision,
                  "revision holds event " + s->id.to_string() + ", the message's event is " + e.id.to_string());
          } else {
            found(Finding::kMissing, &e, e.revision, "event " + e.id.to_string() + " is not in the stream");
          }
        }
        for (const auto& s : stored) {
          if (!expected_revisions.contains(s.revision) && !expected_ids.contains(s.id)) {
            found(Finding::kExtra, nullptr, s.revision,
                  "event " + s.id.to_string() + " is in the store, but no audited message accounts for it");
          }
        }
      } else {
        // No revisions from the envelope: each message's event must be in the stream, in message order.
        std::optional<uint64_t> previous;
        for (const auto& e : expected) {
          auto it = by_id.find(e.id);
          if (it == by_id.end()) {
            found(Finding::kMissing, &e, std::nullopt, "event " + e.id.to_string() + " is not in the stream");
            continue;
          }
          const StoreEvent& s = stored[it->second];
          if (previous && s.revision < *previous) {
            found(Finding::kMisordered, &e, s.revision,
                  "event " + e.id.to_string() + " comes before the event of an earlier message (revision " +
                      std::to_string(*previous) + ")");
          } else {
            compare(e, s);
          }
          previous = std::max(previous.value_or(0), s.revision);
        }
        for (const auto& s : stored) {
          if (!expected_ids.contains(s.id)) {
            found(Finding::kExtra, nullptr, s.revision,
                  "event " + s.id.to_string() + " is in the store, but no audited message accounts for it");
          }
        }
      }
    }
    std::lock_guard lock(mu);
    for (size_t i = 0; i < kFindingCount; ++i) total.counts[i] += counts[i];
    total.store_events_read += read_events;
    for (auto& m : mine) examples.push_back(std::move(m));
  };

  std::vector<std::thread> threads;
  // From $all the comparison is in memory (a stream re-read aside): one thread per core.
  const size_t threads_wanted =
      from_all ? std::max<size_t>(1, std::thread::hardware_concurrency()) : options.read_threads;
  size_t n = std::max<size_t>(1, std::min(threads_wanted, work.size()));
  for (size_t i = 0; i < n; ++i) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (!failure.ok()) return failure;

  for (auto& list : total.examples) {
    if (list.size() > options.examples) list.resize(options.examples);
  }
  std::stable_sort(examples.begin(), examples.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [k, fe] : examples) {
    auto& list = total.examples[size_t(fe.first)];
    if (list.size() < options.examples) list.push_back(std::move(fe.second));
  }
  total.messages = messages_;
  total.streams = streams_.size();
  total.store_s = std::chrono::duration<double>(Clock::now() - started).count();
  return total;
}

}  // namespace kingest::audit
