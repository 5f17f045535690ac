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

std::string revision_text(const std::optional<uint64_t>& r) { return r ? std::to_string(*r) : std::string("-"); }

}  // namespace

std::string_view finding_name(Finding f) {
  switch (f) {
    case Finding::kOk: return "ok";
    case Finding::kMissing: return "missing";
    case Finding::kExtra: return "extra";
    case Finding::kMisordered: return "misordered";
    case Finding::kMismatched: return "mismatched";
    case Finding::kDeadLettered: return "dead_lettered";
    case Finding::kUndecodable: return "undecodable";
  }
  return "?";
}

std::string_view to_string(StoreRead r) {
  switch (r) {
    case StoreRead::kAuto: return "auto";
    case StoreRead::kStreams: return "streams";
    case StoreRead::kAll: return "all";
  }
  return "?";
}

absl::StatusOr<StoreRead> parse_store_read(std::string_view text) {
  for (StoreRead r : {StoreRead::kAuto, StoreRead::kStreams, StoreRead::kAll}) {
    if (text == to_string(r)) return r;
  }
  return absl::InvalidArgumentError("--store-read '" + std::string(text) + "': expected auto, streams or all");
}

bool AuditReport::accounted() const {
  return count(Finding::kMissing) == 0 && count(Finding::kExtra) == 0 && count(Finding::kMisordered) == 0 &&
         count(Finding::kMismatched) == 0 && count(Finding::kUndecodable) == 0;
}

std::string AuditReport::to_json() const {
  JsonWriter w;
  w.begin_object();
  w.key("accounted").value(accounted());
  w.key("messages").value(messages);
  w.key("streams").value(streams);
  w.key("store_events_read").value(store_events_read);
  w.key("store_read").value(store_read);
  if (!store_read_note.empty()) w.key("store_read_note").value(store_read_note);
  for (size_t i = 0; i < kFindingCount; ++i) w.key(finding_name(Finding(i))).value(counts[i]);
  w.key("kafka_s").value(kafka_s);
  w.key("store_s").value(store_s);
  w.key("seconds").value(seconds);
  w.key("messages_per_s").value(seconds > 0 ? double(messages) / seconds : 0.0);
  w.key("examples").begin_object();
  for (size_t i = 0; i < kFindingCount; ++i) {
    if (Finding(i) == Finding::kOk || Finding(i) == Finding::kDeadLettered) continue;
    w.key(finding_name(Finding(i))).begin_array();
    for (const auto& ex : examples[i]) {
      w.begin_object();
      if (!ex.stream.empty()) w.key("stream").value(ex.stream);
      if (ex.revision) w.key("revision").value(*ex.revision);
      if (!ex.topic.empty()) {
        w.key("topic").value(ex.topic).key("partition").value(int64_t{ex.partition}).key("offset").value(ex.offset);
      }
      w.key("detail").value(ex.detail);
      w.end_object();
    }
    w.end_array();
  }
  w.end_object();
  w.end_object();
  return w.take();
}

std::string AuditReport::to_text() const {
  std::ostringstream out;
  out << "audit: " << messages << " message(s), " << streams << " stream(s), " << store_events_read
      << " store event(s) read (" << (store_read == "all" ? "$all" : "stream by stream") << ") in " << seconds << " s";
  if (seconds > 0) out << " (" << uint64_t(double(messages) / seconds) << " messages/s)";
  out << "\n";
  if (!store_read_note.empty()) out << store_read_note << "\n";
  for (size_t i = 0; i < kFindingCount; ++i) out << (i ? ", " : "") << finding_name(Finding(i)) << ": " << counts[i];
  out << "\n";
  for (size_t i = 0; i < kFindingCount; ++i) {
    for (const auto& ex : examples[i]) {
      out << finding_name(Finding(i)) << ":";
      if (!ex.stream.empty()) out << " stream " << ex.stream << " revision " << revision_text(ex.revision);
      if (!ex.topic.empty()) out << " (" << ex.topic << "[" << ex.partition << "]@" << ex.offset << ")";
      out << ": " << ex.detail << "\n";
    }
  }
  out << "accounted: " << (accounted() ? "true" : "false") << "\n";
  return out.str();
}

uint64_t content_hash(std::string_view type, std::string_view content_type, std::string_view data) {
  return absl::HashOf(type, content_type, data);
}

absl::StatusOr<std::set<SourcePosition>> read_dead_letter_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError("--dlq-file " + path + ": cannot read it");
  std::set<SourcePosition> out;
  simdjson::ondemand::parser parser;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    simdjson::padded_string padded(line);
    auto bad = [&](const char* what) {
      return absl::InvalidArgumentError(absl::StrCat("--dlq-file ", path, " line ", n, ": ", what,
                                                     " (expected the ingest's NDJSON dead letters)"));
    };
    simdjson::ondemand::document doc;
    if (parser.iterate(padded).get(doc) != simdjson::SUCCESS) return bad("not JSON");
    SourcePosition p;
    std::string_view topic;
    int64_t partition = 0;
    if (doc["topic"].get_string().get(topic) != simdjson::SUCCESS) return bad("no topic");
    if (doc["partition"].get_int64().get(partition) != simdjson::SUCCESS) return bad("no partition");
    if (doc["offset"].get_int64().get(p.offset) != simdjson::SUCCESS) return bad("no offset");
    p.topic = std::string(topic);
    p.partition = int32_t(partition);
    out.insert(std::move(p));
  }
  return out;
}

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
    all_status_ = absl::ResourceExhaustedError(
        absl::StrCat("$all holds more than ", allowed, " events (the messages plus ", kAllEventsPerStream,
                     " per audited stream): read stream by stream instead (--store-read all reads it whole)"));
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
    if (!page.ok()) return absl::UnavailableError("reading stream " + stream + ": " + std::string(page.status().message()));
    for (const auto& ev : *page) out.push_back({ev.revision.value(), ev.id, content_hash(ev.type, ev.content_type, ev.data)});
    if (page->size() < page_size) break;
    at = page->back().revision.value() + 1;
  }
  return out;
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
      note(Finding::kUndecodable, Example{.topic = m.tp.topic, .partition = m.tp.partition, .offset = m.offset.value(),
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

absl::Status read_bounded(const std::string& brokers, const std::map<std::string, std::string>& properties,
                          const kafka::Offsets& starts, const kafka::Offsets& ends,
                          const std::function<void(std::vector<SourceMessage>)>& sink) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // A group id is required by librdkafka's consumer, but partitions are assigned directly: the
  // group is never joined and nothing is committed.
  std::map<std::string, std::string> conf_items = {{"group.id", "kurrent-ingest-audit"},
                                                   {"queued.min.messages", "200000"},
                                                   {"fetch.max.bytes", "52428800"},
                                                   {"log_level", "3"}};
  for (const auto& [k, v] : properties) conf_items[k] = v;
  conf_items["bootstrap.servers"] = brokers;
  conf_items["enable.auto.commit"] = "false";
  conf_items["enable.auto.offset.store"] = "false";
  conf_items["enable.partition.eof"] = "true";
  for (const auto& [k, v] : conf_items) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("Kafka property ", k, ": ", err));
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) return absl::InvalidArgumentError(err);
  std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> guard(rk, [](rd_kafka_t* h) {
    rd_kafka_consumer_close(h);
    rd_kafka_destroy(h);
  });
  rd_kafka_poll_set_consumer(rk);

  std::map<TopicPartition, int64_t> left;  // partition → its end, for partitions not done yet
  auto* assignment = rd_kafka_topic_partition_list_new(int(ends.size()) + 1);
  for (const auto& [tp, end] : ends) {
    auto s = starts.find(tp);
    int64_t start = s == starts.end() ? RD_KAFKA_OFFSET_BEGINNING : s->second;
    if (s != starts.end() && start >= end) continue;
    if (end <= 0) continue;
    rd_kafka_topic_partition_list_add(assignment, tp.topic.c_str(), tp.partition)->offset = start;
    left[tp] = end;
  }
  if (left.empty()) {
    rd_kafka_topic_partition_list_destroy(assignment);
    return absl::OkStatus();
  }
  rd_kafka_resp_err_t e = rd_kafka_assign(rk, assignment);
  rd_kafka_topic_partition_list_destroy(assignment);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::UnavailableError(absl::StrCat("assign: ", rd_kafka_err2str(e)));

  constexpr size_t kBatch = 8192;
  std::vector<SourceMessage> batch;
  batch.reserve(kBatch);
  auto last_progress = Clock::now();
  // Messages come in batches from the consumer queue: fewer calls into librdkafka per message.
  std::unique_ptr<rd_kafka_queue_t, void (*)(rd_kafka_queue_t*)> queue(rd_kafka_queue_get_consumer(rk),
                                                                        rd_kafka_queue_destroy);
  std::vector<rd_kafka_message_t*> polled(4096);
  // What one message means; an error the read cannot go on from ends it.
  auto handle = [&](rd_kafka_message_t* m) -> absl::Status {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // Compaction or transaction markers can leave the last offsets before the end without a
      // message: reaching the log's end at or past the captured end finishes the partition too.
      if (m->rkt != nullptr) {
        auto it = left.find(TopicPartition{rd_kafka_topic_name(m->rkt), m->partition});
        if (it != left.end() && m->offset >= it->second) left.erase(it);
      }
      return absl::OkStatus();
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::string what = rd_kafka_message_errstr(m);
      if (m->rkt != nullptr) what = std::string(rd_kafka_topic_name(m->rkt)) + "[" + std::to_string(m->partition) + "]: " + what;
      if (m->err == RD_KAFKA_RESP_ERR__TRANSPORT || m->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) return absl::OkStatus();
      return absl::UnavailableError("kafka: " + what);
    }
    last_progress = Clock::now();
    TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
    auto it = left.find(tp);
    if (it == left.end() || m->offset >= it->second) return absl::OkStatus();
    SourceMessage msg;
    msg.tp = std::move(tp);
    msg.offset = KafkaOffset{m->offset};
    rd_kafka_timestamp_type_t tst;
    msg.timestamp_ms = rd_kafka_message_timestamp(m, &tst);
    if (m->key != nullptr) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
    msg.assign_value(m->payload != nullptr ? m->payload : "", m->payload != nullptr ? m->len : 0);
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const void* v = nullptr;
      size_t n = 0;
      if (rd_kafka_header_get_last(hdrs, "content-type", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v != nullptr) {
        msg.content_type.assign(static_cast<const char*>(v), n);
      }
    }
    if (m->offset + 1 >= it->second) left.erase(it);
    batch.push_back(std::move(msg));
    if (batch.size() >= kBatch) {
      sink(std::move(batch));
      batch = {};
      batch.reserve(kBatch);
    }
    return absl::OkStatus();
  };
  while (!left.empty()) {
    ssize_t n = rd_kafka_consume_batch_queue(queue.get(), 100, polled.data(), polled.size());
    if (n <= 0) {
      if (!batch.empty()) {
        sink(std::move(batch));
        batch = {};
        batch.reserve(kBatch);
      }
      if (Clock::now() - last_progress > std::chrono::seconds(60)) {
        std::string which;
        for (const auto& [tp, end] : left) which += " " + to_string(tp) + " (end " + std::to_string(end) + ")";
        return absl::DeadlineExceededError("no message from Kafka for 60 s; partitions not read to their end:" + which);
      }
      continue;
    }
    absl::Status failed;
    for (ssize_t i = 0; i < n; ++i) {
      if (failed.ok()) failed = handle(polled[size_t(i)]);
      rd_kafka_message_destroy(polled[size_t(i)]);
    }
    if (!failed.ok()) return failed;
  }
  if (!batch.empty()) sink(std::move(batch));
  return absl::OkStatus();
}

}  // namespace kingest::audit
