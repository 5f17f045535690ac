// KurrentClient: the production sink, a KurrentDB / EventStoreDB node or cluster over gRPC.
//
// Append modes (`--append-mode`):
//   auto    (default) `records` when ServerFeatures lists AppendRecords (KurrentDB 26.1+), else
//           `batch` (else `append`).
//   records v2 StreamsService.AppendRecords: the groups waiting at one moment go out together in one
//           unary request (one revision check per stream), atomic; the streams whose checks fail
//           are answered (every failing check comes back at once) and the others are sent again at
//           once in a new request.
//   batch   one long-lived Streams.BatchAppend call carries every stream group under its own
//           correlation id (the groups handed over together leave in few gRPC writes); falls back to
//           `append` when ServerFeatures does not list BatchAppend.
//   append  one client-streaming Streams.Append call per stream group.
//   session v2 StreamsService.AppendSession: the groups waiting at one moment go out together as one
//           atomic multi-stream append; a conflict on one stream is answered for that stream and the
//           others are sent again without it.
// Every call has a deadline (the connection string's defaultDeadline); a BatchAppend correlation id
// that gets no answer in time is sent again (servers silently drop some idempotent re-appends).
// UNAVAILABLE, DEADLINE_EXCEEDED and ABORTED are retried with capped exponential backoff and jitter
// for up to `retry_for` (each append its own; reads one budget per outage, shared by every read); an
// authentication failure is never retried; a not-leader answer moves the connection to the leader named in its
// trailers. Groups larger than `max_append_size` are sent as consecutive appends, each under the
// limit. At most `max_in_flight_appends` appends and `max_in_flight_bytes` are on the wire; more wait
// in the client.
//
// Threads: `append` never blocks on I/O; `done` runs on gRPC's callback threads or on the client's
// timer thread ("ki-kurrent-timer"). `read_*` block the calling thread (with a deadline).
// Lifecycle: `connect` resolves the node (gossip for +discover or several hosts), checks
// ServerFeatures and the credentials, and fails with a message that says what to fix. `close` (or
// destruction) waits for the appends in flight, then ends the calls.
//
//   auto settings = parse_connection_string("kurrentdb://127.0.0.1:2113?tls=false").value();
//   auto client = KurrentClient::connect(settings, {.mode = AppendMode::kAuto}).value();
//   client->append(std::move(request), [](AppendOutcome o) { ... });
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/sink.h"
#include "kurrent/connection_string.h"

namespace kingest::kurrent {

enum class AppendMode { kBatch, kAppend, kSession, kRecords, kAuto };
// "auto" | "records" | "batch" | "append" | "session"; anything else is InvalidArgument naming the
// choices.
absl::StatusOr<AppendMode> parse_append_mode(std::string_view text);
std::string_view to_string(AppendMode mode);

struct ClientOptions {
  AppendMode mode = AppendMode::kAuto;
  // KurrentDB's MaxAppendSize before 25.1 (1 MiB); size = data + metadata + 2 x type length.
  size_t max_append_size = size_t{1} << 20;
  size_t max_in_flight_appends = 8192;
  size_t max_in_flight_bytes = size_t{64} << 20;
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  // An append that keeps failing with retryable errors for this long ends the run (kFatal); reads
  // give up (UNAVAILABLE) once an outage is this old, however many reads it met.
  std::chrono::milliseconds retry_for{60000};
  // Records and session modes: most streams in one v2 request, requests on the wire at once, and
  // how long a waiting group may wait for others to share its request (0: a free slot sends at once).
  size_t max_session_streams = 256;
  size_t max_sessions_in_flight = 16;
  std::chrono::milliseconds session_linger{0};
};

struct ClientStats {
  uint64_t appends = 0;      // appends sent on the wire (parts and re-sends included)
  uint64_t retries = 0;      // re-sends after a retryable error or a deadline
  uint64_t reconnects = 0;   // BatchAppend calls opened after the first
  uint64_t redirects = 0;    // not-leader answers followed
  uint64_t splits = 0;       // groups sent in several parts to stay under max_append_size
  // Records and session modes: v2 requests sent, and the stream groups they carried (their ratio is
  // the streams per request).
  uint64_t v2_requests = 0;
  uint64_t v2_request_streams = 0;
  // The connection pool, as far as there is one: the node's channels (one; a not-leader answer
  // replaces it), how many are connected now, and the append calls open on them.
  uint64_t channels = 0;
  uint64_t channels_connected = 0;
  uint64_t calls_open = 0;
};

// One page of a stream read for inspection (`read`, `audit`).
struct StreamPage {
  bool found = false;    // false: no such stream
  bool deleted = false;  // the stream is tombstoned
  std::vector<RecordedEventData> events;
};

class KurrentClient : public Sink {
 public:
  static absl::StatusOr<std::unique_ptr<KurrentClient>> connect(const ConnectionSettings& settings,
                                                                ClientOptions options = {});
  ~KurrentClient() override = default;

  // The node in use (HOST:PORT) and what its ServerFeatures said.
  [[nodiscard]] virtual std::string endpoint() const = 0;
  [[nodiscard]] virtual std::string server_version() const = 0;
  [[nodiscard]] virtual ClientStats stats() const = 0;
  // Up to `count` events of a stream from revision `from` (nullopt: the start, or the end when
  // `backwards`), with their `created` time and position.
  virtual absl::StatusOr<StreamPage> read_stream(const std::string& stream, std::optional<uint64_t> from,
                                                 uint64_t count, bool backwards) = 0;
  // Up to `count` events of $all forwards from commit position `from_position` (inclusive; 0: the
  // start). Every event carries its stream name and position.
  virtual absl::StatusOr<std::vector<RecordedEventData>> read_all(uint64_t from_position, uint64_t count) = 0;
  // Waits (up to `timeout`) for the appends in flight, then ends the calls. Idempotent.
  virtual void close(std::chrono::milliseconds timeout = std::chrono::seconds(30)) = 0;
};

}  // namespace kingest::kurrent
