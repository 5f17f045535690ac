// Stream names, revisions and event ids: the rules that make a replay land on the same revisions
// with the same ids (docs/design.md "Revisions and stream state").
//
//   auto t = StreamNameTemplate::parse("{AggregateType}-{AggregateId}").value();
//   t.render(event)  → "System-550e8400-..."
//   VersionBase::parse("1") → revision = version - 1
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/domain_event.h"
#include "core/uuid.h"

namespace kingest::pipeline {

// `{AggregateType}`, `{AggregateId}` and `{EventType}` placeholders between literal text.
class StreamNameTemplate {
 public:
  static absl::StatusOr<StreamNameTemplate> parse(std::string_view text);
  [[nodiscard]] std::string render(const DomainEvent& e) const;
  // The same into `out` (replacing what it held), whose room is reused from one event to the next.
  void render_into(const DomainEvent& e, std::string& out) const;
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  enum class Part { kLiteral, kAggregateType, kAggregateId, kEventType };
  std::string text_;
  std::vector<std::pair<Part, std::string>> parts_;
};

// How an envelope's aggregateVersion maps to a stream revision.
struct VersionBase {
  enum class Kind { kOneBased, kZeroBased, kNone } kind = Kind::kOneBased;
  static absl::StatusOr<VersionBase> parse(std::string_view text);  // "1", "0", "none"
  [[nodiscard]] int64_t base() const { return kind == Kind::kZeroBased ? 0 : 1; }
  [[nodiscard]] std::string to_string() const;
  // The 0-based revision for a version, or nullopt when the version is below the base (a decode
  // error: never let arithmetic land on a sentinel such as -1 no_stream).
  [[nodiscard]] std::optional<uint64_t> revision_of(int64_t version) const;
};

// The project's namespace for name-based (v5) event ids.
inline constexpr Uuid kEventIdNamespace{Uuid::Bytes{0x6b, 0x1f, 0x3c, 0x52, 0x9e, 0x2d, 0x4a, 0x7b, 0x8c, 0x41, 0x0d,
                                                    0x95, 0xe3, 0x7a, 0x26, 0xf0}};

// The envelope's eventId when it is a UUID; else a v5 id of stream, revision and the content
// (type, data, original id), so a replay proposes the same id and a different event at the same
// revision does not.
Uuid derive_event_id(const DomainEvent& e, std::string_view stream, uint64_t revision);

// Where the message came from, recorded in the metadata.
struct SourceRef {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
};

inline constexpr std::string_view kJsonContentType = "application/json";
inline constexpr std::string_view kBytesContentType = "application/octet-stream";

// The event's metadata JSON: $correlationId (missing → the event's own id), $causationId
// (missing → `previous_id`, the previous event of the stream, or the correlation id for a stream's
// first event), occurredAt, the original non-UUID eventId, the payload's content type when it is
// neither JSON nor plain bytes (payloadContentType), the Kafka source, and `run` as ingestRunId
// when given (the first event of each append carries the run that wrote it).
std::string build_metadata(const DomainEvent& e, const Uuid& id, const std::optional<Uuid>& previous_id,
                           const SourceRef& source, const Uuid* run = nullptr);

// The same fields as AppendRecords properties (core/record_properties.h), appended to `out`, for a
// sink that takes them so (Sink::wants_record_properties): the bytes the records encoder writes for
// build_metadata's JSON. False (and `out` as it was) when a text from the envelope is not valid
// UTF-8: only the JSON text can carry it (each invalid byte replaced with U+FFFD).
bool build_properties(const DomainEvent& e, const Uuid& id, const std::optional<Uuid>& previous_id,
                      const SourceRef& source, const Uuid* run, std::string* out);

// The metadata key of the run that wrote an append (on its first event): a run that finds its own
// events written after an append whose answer was lost (sent again, the first try written) counts
// them as appended, not as duplicates.
inline constexpr std::string_view kRunIdKey = "ingestRunId";

// True when KurrentDB's $by_category projection would split this aggregate type (it contains '-').
bool breaks_category_projection(std::string_view aggregate_type);

}  // namespace kingest::pipeline
