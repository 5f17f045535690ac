// The sink contract between the pipeline and an event store (the embedded store in-process, or
// KurrentDB over gRPC).
//
// Threads: `append` may be called concurrently from any thread and must not block on I/O; `done`
// runs later on a thread the sink owns and must stay short (no blocking I/O inside it). The
// pipeline keeps at most one append in flight per stream, so a sink may assume that. `read_*` are
// blocking calls, made off the hot path (first touch of a stream the answers cannot check, a stale
// state, conflict resolution, gap re-checks, verification).
// Lifecycle: owned by the caller; outlives every pipeline that writes to it.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/short_string.h"
#include "core/types.h"
#include "core/uuid.h"

namespace kingest {

struct EventData {
  Uuid id;
  ShortString type;
  ShortString content_type;  // "application/json" or "application/octet-stream"
  std::string data;
  std::string metadata;      // JSON object text
  // The metadata as AppendRecords properties, already encoded (protobuf map entries tagged as
  // AppendRecord.properties), in place of `metadata`, which is then empty. Only for a sink whose
  // `wants_record_properties()` is true; empty otherwise.
  std::string properties;
};

struct AppendRequest {
  std::string stream;
  ExpectedRevision expected = ExpectAny{};
  std::vector<EventData> events;
};

// Why an append ended; picked so that the caller's action follows from the code alone.
enum class AppendCode {
  kSuccess,
  kWrongExpectedVersion,  // `current_revision` holds the stream's revision (nullopt: no stream)
  kStreamDeleted,         // dead-letter: stream-deleted
  kTooLarge,              // split, or dead-letter event-too-large
  kAccessDenied,          // this stream only: dead-letter access-denied
  kRejected,              // other invalid argument: dead-letter rejected-by-server
  kFatal,                 // authentication, connection-wide permission, storage failure: stop the run
};

struct AppendOutcome {
  AppendCode code = AppendCode::kFatal;
  std::optional<StreamRevision> current_revision;
  uint64_t position = 0;
  std::string message;
  // kSuccess without writing: every event was already there with the same id (an idempotent
  // re-append). Only sinks whose `exact_answers()` is true say so.
  bool already_written = false;
  // When the sink had the answer, for callers that time their appends. A sink that answers many
  // appends at once reads the clock once for them all; left at the clock's epoch, the caller
  // reads the clock when the answer reaches it.
  std::chrono::steady_clock::time_point answered_at{};
};

struct RecordedEventData {
  Uuid id;
  StreamRevision revision{0};
  std::string type;
  std::string content_type;
  std::string data;
  std::string metadata;
  std::string stream;         // filled by reads that cross streams ($all), and by the gRPC client
  uint64_t position = 0;      // commit position in the log, when the source tells
  int64_t created_ticks = 0;  // 100 ns ticks since the Unix epoch (KurrentDB's `created`), 0 when unknown
};

struct StreamTail {
  bool exists = false;
  StreamRevision last_revision{0};
  Uuid last_id;
  bool deleted = false;
};

class Sink {
 public:
  using AppendDone = std::function<void(AppendOutcome)>;
  virtual ~Sink() = default;

  // "embedded-store" (in-process), "kurrentdb-grpc", ...
  [[nodiscard]] virtual std::string name() const = 0;
  // "batch", "append", "session", or "direct" for an in-process call.
  [[nodiscard]] virtual std::string append_mode() const = 0;

  virtual void append(AppendRequest request, AppendDone done) = 0;
  // An append handed over with others (`append_many`).
  struct PendingAppend {
    AppendRequest request;
    AppendDone done;
  };
  // Many appends in one call, in order, as if `append` were called for each (what the default
  // does); a sink that queues appends takes its lock and wakes its thread once for all of them.
  // Leaves `appends` empty (its room kept for the caller's next ones).
  virtual void append_many(std::vector<PendingAppend>& appends) {
    for (auto& a : appends) append(std::move(a.request), std::move(a.done));
    appends.clear();
  }
  // True when an append with an exact expected revision (or no_stream) either writes every event,
  // or answers wrong-expected-version, or answers success with `already_written`: the answer alone
  // tells written from duplicate. The engine then appends to a stream it has not read yet without
  // reading it first (the append is the check). False (the default): a success may have been an
  // idempotent re-append that wrote nothing, so streams are read on first touch.
  [[nodiscard]] virtual bool exact_answers() const { return false; }
  // True when the sink sends every append as AppendRecords records: the engine then hands each
  // event's metadata over as encoded properties (EventData::properties), which the sink sends as
  // they are, instead of JSON text it would parse back. False (the default): JSON metadata.
  [[nodiscard]] virtual bool wants_record_properties() const { return false; }
  // The stream's last event (one backwards read of count 1).
  virtual absl::StatusOr<StreamTail> read_tail(const std::string& stream) = 0;
  // The tails of many streams (first touch of a batch's new streams). The default reads them one
  // after another; a remote sink overlaps the reads.
  virtual std::vector<absl::StatusOr<StreamTail>> read_tails(const std::vector<std::string>& streams) {
    std::vector<absl::StatusOr<StreamTail>> out;
    out.reserve(streams.size());
    for (const auto& s : streams) out.push_back(read_tail(s));
    return out;
  }
  // Up to `max_count` events forwards from `from`; a missing stream is an empty list.
  virtual absl::StatusOr<std::vector<RecordedEventData>> read_forwards(const std::string& stream,
                                                                       StreamRevision from, uint64_t max_count) = 0;
};

}  // namespace kingest
