// How the audit reads the store while Kafka is still read: $all forwards in large pages on one
// thread (kept for the audited streams), or each stream on its own on `read_threads` threads.
#include "audit/audit.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"

namespace kingest::audit {

absl::Status Auditor::all_over_budget(uint64_t allowed) {
  return absl::ResourceExhaustedError(
      absl::StrCat("$all holds more than ", allowed, " events (the messages plus ", kAllEventsPerStream,
                   " per audited stream): read stream by stream instead (--store-read all reads it whole)"));
}

void Auditor::read_all_from(AllReader reader, const CheckOptions& options) {
  all_reader_ = std::move(reader);
  all_options_ = options;
  all_state_ = AllState::kReading;
  all_thread_ = std::thread([this] { all_loop(); });
}

void Auditor::all_loop() {
  const bool bounded = all_options_.store_read != StoreRead::kAll;
  const uint64_t page = std::max<uint64_t>(1, all_options_.all_page_size);
  // Pages resume at the last event's commit position, inclusive: KurrentDB gives the events of one
  // write the same commit position, so the ids already read there are skipped, not the position.
  uint64_t from = 0;
  bool resumed = false;  // `from` is the last page's last position (0 can be one)
  std::vector<Uuid> at_from;
  uint64_t widen = 1;  // a page that ends inside the write it began in (a write larger than a page) is widened
  bool audited_known = false;
  auto give_up = [&](uint64_t allowed) {
    std::lock_guard lock(all_mu_);
    all_state_ = AllState::kGaveUp;
    all_status_ = all_over_budget(allowed);
  };
  for (;;) {
    uint64_t count = page * widen;
    std::optional<uint64_t> final_budget;  // set once Kafka is read, in kAuto
    {
      std::unique_lock lock(all_mu_);
      auto allowed = [&] {
        const uint64_t messages =
            adding_done_ ? added_messages_ : std::max<uint64_t>(added_messages_, all_options_.planned_messages);
        return messages + kAllEventsPerStream * added_streams_;
      };
      if (bounded) {
        // Ahead of Kafka the budget is not final yet: wait for it to grow rather than give up.
        all_cv_.wait(lock, [&] { return all_closing_ || adding_done_ || all_read_ + count <= allowed(); });
      }
      if (all_closing_) return;
      if (adding_done_ && !audited_known) {
        audited_known = true;
        // `streams_` is final: only the audited streams' events are kept from here on.
        std::erase_if(all_events_, [&](const auto& kv) { return !streams_.contains(kv.first); });
      }
      if (bounded && adding_done_) {
        final_budget = allowed();
        // One more than the budget tells a store that holds more from one that holds just that.
        if (all_read_ <= *final_budget) count = std::min(count, *final_budget - all_read_ + 1);
      }
    }
    if (final_budget && all_read_ > *final_budget) {
      give_up(*final_budget);
      break;
    }
    auto got = all_reader_(from, count);
    if (!got.ok()) {
      std::lock_guard lock(all_mu_);
      all_state_ = AllState::kFailed;
      all_status_ = absl::Status(got.status().code(), absl::StrCat("reading $all: ", got.status().message()));
      break;
    }
    const auto& events = *got;
    size_t skip = 0;
    if (resumed) {
      while (skip < events.size() && events[skip].position == from &&
             std::find(at_from.begin(), at_from.end(), events[skip].id) != at_from.end()) {
        ++skip;
      }
    }
    keep_all_events(events, skip, audited_known);
    if (events.size() < count) {
      std::lock_guard lock(all_mu_);
      all_state_ = AllState::kComplete;
      break;
    }
    if (final_budget && skip == events.size() && count < page * widen) {
      // Inside one write larger than what the budget leaves: reading on would not stay within it.
      give_up(*final_budget);
      break;
    }
    // A page from a position starts at the first event of the write there: the ids of the last
    // write read so far are all in this page.
    widen = resumed && events.back().position == from ? widen * 2 : 1;
    from = events.back().position;
    resumed = true;
    at_from.clear();
    for (size_t i = events.size(); i-- > 0 && events[i].position == from;) at_from.push_back(events[i].id);
  }
  if (all_state_ != AllState::kComplete) {
    all_events_.clear();
    reread_.clear();
  }
}

void Auditor::keep_all_events(const std::vector<RecordedEventData>& page, size_t skip_to, bool audited_known) {
  uint64_t kept = 0;
  std::vector<StoreEvent>* last = nullptr;  // the events of `last_stream`
  std::string_view last_stream;
  for (size_t i = skip_to; i < page.size(); ++i) {
    const RecordedEventData& e = page[i];
    ++kept;
    // What a stream read would not show: metadata ($$S: truncation, max age or count, a soft
    // delete) or a tombstone. Such streams are read on their own.
    if (e.stream.starts_with("$$")) {
      reread_.insert(e.stream.substr(2));
      continue;
    }
    if (e.type == "$streamDeleted") {
      reread_.insert(e.stream);
      continue;
    }
    if (e.stream.starts_with('$') && !rules_.allow_system_streams) continue;
    // One write's events are consecutive in $all: the stream is looked up once for them.
    if (last == nullptr || e.stream != last_stream) {
      last = nullptr;
      if (audited_known && !streams_.contains(e.stream)) continue;
      last = &all_events_[e.stream];
      last_stream = e.stream;
    }
    last->push_back({e.revision.value(), e.id, content_hash(e.type, e.content_type, e.data)});
  }
  std::lock_guard lock(all_mu_);
  all_read_ += kept;
}

void Auditor::prefetch_from(Sink& store, const CheckOptions& options) {
  prefetch_store_ = &store;
  prefetch_options_ = options;
  for (size_t i = 0; i < std::max<size_t>(1, options.read_threads); ++i) {
    prefetch_threads_.emplace_back([this] { prefetch_loop(); });
  }
}

void Auditor::prefetch_loop() {
  std::unique_lock lock(prefetch_mu_);
  for (;;) {
    prefetch_cv_.wait(lock, [this] { return prefetch_closing_ || !prefetch_queue_.empty(); });
    if (prefetch_queue_.empty()) return;
    auto [name, from] = std::move(prefetch_queue_.front());
    prefetch_queue_.pop_front();
    lock.unlock();
    auto events = fetch(*prefetch_store_, name, from, prefetch_options_.page_size);
    lock.lock();
    fetched_[name] = Fetched{from, std::move(events)};
  }
}

absl::StatusOr<std::vector<Auditor::StoreEvent>> Auditor::fetch(Sink& store, const std::string& stream, uint64_t from,
                                                                size_t page_size) {
  std::vector<StoreEvent> out;
  for (uint64_t at = from;;) {
    auto page = store.read_forwards(stream, StreamRevision{at}, page_size);
    if (!page.ok())
      return absl::UnavailableError("reading stream " + stream + ": " + std::string(page.status().message()));
    for (const auto& ev : *page)
      out.push_back({ev.revision.value(), ev.id, content_hash(ev.type, ev.content_type, ev.data)});
    if (page->size() < page_size) break;
    at = page->back().revision.value() + 1;
  }
  return out;
}

}  // namespace kingest::audit
