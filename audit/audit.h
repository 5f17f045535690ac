// The audit of a finished backfill: every message of a bounded range of Kafka topics, decoded with
// the ingest's codec routing and naming rules, checked against what the store holds (present at its
// revision with the same id, type, content type and data) or against the dead-letter file.
//
// The store is read one of two ways: each audited stream on its own (`read_threads` reads at once,
// pages of `page_size`), or `$all` forwards once in pages of `all_page_size`, keeping the events of
// the audited streams. Per-stream reads cost one call per stream; `$all` costs every event of the
// store, audited or not. With `StoreRead::kAuto` the `$all` read gives way to per-stream reads once
// it has read more than the messages added plus `kAllEventsPerStream` per audited stream (their
// break-even: the store holds much more than the audited streams).
//
// Threads: `Auditor::add` from one thread (the Kafka reader); it decodes in parallel itself.
// `check` compares on several threads (and reads streams through the Sink's blocking reads).
// Lifecycle: add messages and dead letters, then `check` once.
//
//   Auditor a(rules);
//   a.add_dead_letters(read_dead_letter_file("dlq.ndjson").value());
//   read_bounded(kafka, [&](std::vector<SourceMessage> batch) { a.add(std::move(batch)); });
//   AuditReport r = a.check(store).value();   // r.accounted() → exit 0
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "codecs/codec.h"
#include "core/domain_event.h"
#include "core/sink.h"
#include "kafka/group_progress.h"
#include "pipeline/naming.h"

namespace kingest::audit {

// What became of one message (or, for kExtra, of one store event no message accounts for).
enum class Finding { kOk, kMissing, kExtra, kMisordered, kMismatched, kDeadLettered, kUndecodable };
inline constexpr size_t kFindingCount = 7;
// "ok", "missing", "extra", "misordered", "mismatched", "dead_lettered", "undecodable": the
// report's field names.
std::string_view finding_name(Finding f);

struct Example {
  std::string stream;               // empty for an undecodable message
  std::optional<uint64_t> revision;
  std::string topic;                // empty for an extra event (no message)
  int32_t partition = 0;
  int64_t offset = -1;
  std::string detail;
};

struct AuditReport {
  std::array<uint64_t, kFindingCount> counts{};
  std::array<std::vector<Example>, kFindingCount> examples;
  uint64_t messages = 0;
  uint64_t streams = 0;
  uint64_t store_events_read = 0;
  std::string store_read;       // "streams" or "all": how the store was read
  std::string store_read_note;  // why $all was not used, when it was tried
  double kafka_s = 0;  // reading and decoding the topics
  double store_s = 0;  // reading and comparing the store
  double seconds = 0;  // the whole audit

  [[nodiscard]] uint64_t count(Finding f) const { return counts[size_t(f)]; }
  // Every message is in the store as the ingest writes it or in the dead-letter file, and the
  // audited streams hold nothing else.
  [[nodiscard]] bool accounted() const;
  [[nodiscard]] std::string to_json() const;
  // Human-readable: one line of counts, then the examples.
  [[nodiscard]] std::string to_text() const;
};

// The ingest's rules, as its flags set them.
struct Rules {
  pipeline::StreamNameTemplate stream_names = *pipeline::StreamNameTemplate::parse("{AggregateType}-{AggregateId}");
  pipeline::VersionBase version_base;
  std::map<std::string, codecs::Codec> topic_codecs;
  bool allow_system_streams = false;  // else a stream name starting with '$' is dead-lettered
};

struct SourcePosition {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  auto operator<=>(const SourcePosition&) const = default;
};

// The messages a dead-letter NDJSON file (as the ingest writes it) accounts for. Errors name the
// file and line.
absl::StatusOr<std::set<SourcePosition>> read_dead_letter_file(const std::string& path);

// How the store is read: "auto", "streams" (each audited stream on its own) or "all" ($all once).
enum class StoreRead { kAuto, kStreams, kAll };
std::string_view to_string(StoreRead r);
// "auto" | "streams" | "all"; anything else is InvalidArgument naming the choices.
absl::StatusOr<StoreRead> parse_store_read(std::string_view text);

// `$all` events worth one per-stream read: a per-stream read costs about as much (a call on both
// sides) as reading and comparing 16 events of `$all`.
inline constexpr uint64_t kAllEventsPerStream = 16;

struct CheckOptions {
  size_t read_threads = 32;  // streams read at once
  size_t page_size = 4096;   // events per stream read
  size_t examples = 10;      // first examples kept per finding
  StoreRead store_read = StoreRead::kAuto;
  size_t all_page_size = 16384;  // events per $all read
  // The messages the range holds, when known: while Kafka is still read, the $all budget counts
  // them all rather than those added so far, so the read need not wait for the decoding. Whether
  // $all is used is decided on the final budget (the messages that came), however far the read got.
  uint64_t planned_messages = 0;
};

// Up to `count` events of $all forwards from commit position `from` (inclusive; 0: the start), each
// with its stream name and position: `KurrentClient::read_all`.
using AllReader = std::function<absl::StatusOr<std::vector<RecordedEventData>>(uint64_t from, uint64_t count)>;

class Auditor {
 public:
  explicit Auditor(Rules rules) : rules_(std::move(rules)) {}
  ~Auditor();
  Auditor(const Auditor&) = delete;
  Auditor& operator=(const Auditor&) = delete;

  // Reads each stream from the store as soon as `add` first sees it, on `options.read_threads`
  // threads, while Kafka is still being read (the store must not change during the audit, which
  // it must not anyway). Without it, `check` reads every stream itself.
  void prefetch_from(Sink& store, const CheckOptions& options);

  // Reads $all forwards on one thread while Kafka is still being read, keeping the events of the
  // streams the messages name (and noting streams whose metadata changed or that were deleted:
  // `check` reads those on their own, as a reader sees them). With `options.store_read` kAuto, the
  // read waits while it is past the budget above and Kafka is still read, and gives up (`check`
  // reads every stream instead) when it is past it at the end; with kAll it reads to the end.
  // A failed read fails `check` with kAll, and makes `check` read every stream with kAuto.
  void read_all_from(AllReader reader, const CheckOptions& options);

  void add_dead_letters(const std::set<SourcePosition>& positions) { dead_letters_.insert(positions.begin(), positions.end()); }
  // Messages in partition order (decoded in parallel here).
  void add(std::vector<SourceMessage> batch);
  [[nodiscard]] uint64_t messages() const { return messages_; }

  absl::StatusOr<AuditReport> check(Sink& store, const CheckOptions& options = {});

 private:
  struct Expected {
    uint64_t revision = 0;  // with version base none: the message's place in its stream
    Uuid id;
    uint64_t content_hash = 0;  // type, content type and data
    uint32_t source = 0;        // index into sources_
  };
  struct StreamExpectations {
    std::vector<Expected> events;  // in message order
  };
  struct StoreEvent {
    uint64_t revision;
    Uuid id;
    uint64_t hash;
  };
  struct Fetched {
    uint64_t from = 0;
    absl::StatusOr<std::vector<StoreEvent>> events;
  };
  // The stream's events from `from` on, as compared.
  static absl::StatusOr<std::vector<StoreEvent>> fetch(Sink& store, const std::string& stream, uint64_t from,
                                                       size_t page_size);
  void prefetch_loop();
  void all_loop();
  // The events of `page` from $all, as kept (`audited_known`: `streams_` is complete).
  void keep_all_events(const std::vector<RecordedEventData>& page, size_t skip_to, bool audited_known);

  void record(std::string stream, Expected e);
  void note(Finding f, Example ex);

  Rules rules_;
  std::set<SourcePosition> dead_letters_;
  std::unordered_map<std::string, StreamExpectations> streams_;
  // Where each recorded message came from; topics by index, as few and long names repeat.
  struct Source {
    uint32_t topic = 0;  // index into topics_
    int32_t partition = 0;
    int64_t offset = 0;
  };
  std::vector<Source> sources_;
  std::vector<std::string> topics_;
  AuditReport pending_;  // counts found while adding (dead letters, undecodable)
  size_t max_examples_ = 1000;
  uint64_t messages_ = 0;

  // Prefetching: streams queued as first seen, read by the threads into `fetched_`.
  Sink* prefetch_store_ = nullptr;
  CheckOptions prefetch_options_;
  std::mutex prefetch_mu_;
  std::condition_variable prefetch_cv_;
  std::deque<std::pair<std::string, uint64_t>> prefetch_queue_;
  std::unordered_map<std::string, Fetched> fetched_;
  bool prefetch_closing_ = false;
  std::vector<std::thread> prefetch_threads_;

  // The $all read: the thread owns `all_events_`, `reread_` and `all_read_` until `check` joins it.
  enum class AllState { kNone, kReading, kComplete, kGaveUp, kFailed };
  AllReader all_reader_;
  CheckOptions all_options_;
  std::thread all_thread_;
  std::mutex all_mu_;
  std::condition_variable all_cv_;
  bool adding_done_ = false;  // `check` began: `streams_` and the budget are final
  bool all_closing_ = false;
  AllState all_state_ = AllState::kNone;
  absl::Status all_status_;
  uint64_t added_streams_ = 0;  // `streams_.size()` as the $all thread may read it (under all_mu_)
  uint64_t added_messages_ = 0;
  uint64_t all_read_ = 0;  // events read from $all (the boundary's re-reads not counted)
  std::unordered_map<std::string, std::vector<StoreEvent>> all_events_;
  std::unordered_set<std::string> reread_;

  // Why a bounded $all read was given up: the store holds more than `allowed` events.
  static absl::Status all_over_budget(uint64_t allowed);
};

// Reads every partition of `ends` from `starts` (absent: its low watermark) up to its end
// (exclusive), with partitions assigned directly: no consumer group membership and no commits.
// `sink` receives batches in partition order.
absl::Status read_bounded(const std::string& brokers, const std::map<std::string, std::string>& properties,
                          const kafka::Offsets& starts, const kafka::Offsets& ends,
                          const std::function<void(std::vector<SourceMessage>)>& sink);

// The content hash the comparison uses for an event as written.
uint64_t content_hash(std::string_view type, std::string_view content_type, std::string_view data);

}  // namespace kingest::audit
