// The revision rules of one stream group, without threads or I/O: how a batch's events of one
// stream are cut into groups, which expected revision a group is appended with, how an append
// request is built, and how a group that starts below the stream's next revision is classified
// against what the store holds there (docs/design.md, "Revisions and stream state").
//
//   std::vector<GroupPtr> groups;
//   cut_groups(batch, "Task-1", indexes, rules, groups);
//   AppendRequest req = build_append(*groups[0], state, rules, &ids);
//   PrefixVerdict v = compare_written(ids_of_group, group.first_revision, written);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/sink.h"
#include "pipeline/naming.h"
#include "pipeline/stream_table.h"

namespace kingest::pipeline {

struct RevisionRules {
  VersionBase version_base;
  size_t max_append_bytes = 1u << 20;
  // Each event's metadata as encoded AppendRecords properties instead of JSON text (the sink's
  // wants_record_properties).
  bool record_properties = false;
  [[nodiscard]] bool revisions() const { return version_base.kind != VersionBase::Kind::kNone; }
};

// What an event is estimated to cost in an append (KurrentDB counts data + metadata + 2 × type).
inline size_t estimated_size(const DomainEvent& e) { return e.payload.size() + 2 * e.event_type.size() + 512; }

// What cut_groups reads of an event (Batch::facts, set where the event is decoded); nullopt when
// its version is below the version base.
std::optional<Batch::Facts> facts_of(const DomainEvent& e, const RevisionRules& rules);

// Cuts one stream's events of one batch (indexes in delivery order) into runs of contiguous
// revisions under the append size limit, appended to `out` in revision order (the batch's streams
// into one vector: no vector per stream). Each group holds the batch once. Reads the events'
// `b->facts`, not the events.
void cut_groups(const BatchPtr& b, std::string stream, absl::Span<const uint32_t> indexes, const RevisionRules& rules,
                std::vector<GroupPtr>& out);

// The expected revision for a group starting at `first_revision`: any (version base none),
// no_stream for revision 0, else the revision before it.
ExpectedRevision expected_for(const RevisionRules& rules, uint64_t first_revision);

// The append for a group on top of the stream's state: derived ids, metadata with causation from
// the previous event, `run` (optional) as the first event's ingestRunId. `ids` (optional)
// receives each event's id.
AppendRequest build_append(const Group& g, const StreamState& st, const RevisionRules& rules,
                           EventIds* ids = nullptr, const Uuid* run = nullptr);
// The same, moving each event's payload into the request (the copy the engine saves): the items
// are marked `payload_taken`, and their events must get the payload back (the engine decodes the
// message again) before anything reads it: ids derived from payloads, another append.
AppendRequest take_append(Group& g, const StreamState& st, const RevisionRules& rules,
                          EventIds* ids = nullptr, const Uuid* run = nullptr);

// The ids a group's events get at their revisions.
std::vector<Uuid> proposed_ids(const Group& g, size_t count);

// A group that starts below the stream's next revision, compared with what the store holds from
// its first revision on: the events with equal ids there are duplicates; the first that differs
// (or is missing while the stream claims it) is a revision-conflict.
struct PrefixVerdict {
  size_t duplicates = 0;
  bool conflict = false;
  std::string detail;  // for a conflict
};
PrefixVerdict compare_written(const std::vector<Uuid>& proposed, uint64_t first_revision,
                              const std::vector<RecordedEventData>& written);

// Which of `written` (read from the first revision of an append this run sent) this run wrote:
// an event whose metadata names a run (ingestRunId) starts an append of that run, and the events
// after it belong to the same append until another names a run; events before the first that
// names one are not this run's.
std::vector<bool> written_by_run(const std::vector<RecordedEventData>& written, const Uuid& run);

}  // namespace kingest::pipeline
