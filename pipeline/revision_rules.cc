#include "pipeline/revision_rules.h"

#include <algorithm>
#include <cstdint>

namespace kingest::pipeline {

std::optional<Batch::Facts> facts_of(const DomainEvent& e, const RevisionRules& rules) {
  uint64_t revision = 0;
  if (rules.revisions()) {
    const std::optional<uint64_t> r = rules.version_base.revision_of(e.aggregate_version);
    if (!r) return std::nullopt;
    revision = *r;
  }
  return Batch::Facts{revision, uint32_t(std::min<size_t>(estimated_size(e), UINT32_MAX))};
}

void cut_groups(const BatchPtr& b, std::string stream, absl::Span<const uint32_t> indexes, const RevisionRules& rules,
                std::vector<GroupPtr>& out) {
  const size_t first = out.size();
  const bool revisions = rules.revisions();
  GroupPtr g;
  uint64_t next = 0;
  for (size_t k = 0; k < indexes.size(); ++k) {
    const uint32_t i = indexes[k];
    const uint64_t rev = b->facts[i].revision;
    const size_t sz = b->facts[i].bytes;
    const bool contiguous = !revisions || rev == next;
    if (!g || !contiguous || g->bytes + sz > rules.max_append_bytes) {
      if (g) out.push_back(std::move(g));
      g = std::make_unique<Group>();
      g->batches.push_back(b);
      g->first_revision = rev;
      // Room for the stream's remaining events at once: most groups take them all.
      g->items.reserve(indexes.size() - k);
    }
    g->items.push_back(Item{.batch = b.get(),
                            .index = i,
                            .outcome_wanted = b->outcome_wanted.empty() || b->outcome_wanted[i] != 0});
    g->bytes += sz;
    next = rev + 1;
  }
  if (g) out.push_back(std::move(g));
  for (size_t k = first; k + 1 < out.size(); ++k) out[k]->stream = stream;
  if (out.size() > first) out.back()->stream = std::move(stream);
}

ExpectedRevision expected_for(const RevisionRules& rules, uint64_t first_revision) {
  if (!rules.revisions()) return ExpectAny{};
  if (first_revision == 0) return ExpectNoStream{};
  return StreamRevision{first_revision - 1};
}

namespace {

// build_append's body; with `take`, each payload is moved into the request instead of copied.
AppendRequest make_append(const Group& g, const StreamState& st, const RevisionRules& rules, EventIds* ids,
                          const Uuid* run, Group* take) {
  const bool revisions = rules.revisions();
  AppendRequest req;
  req.stream = g.stream;
  req.expected = expected_for(rules, g.first_revision);
  req.events.reserve(g.items.size());
  if (ids) ids->reserve(g.items.size());
  std::optional<Uuid> previous = st.last_id;
  uint64_t rev = g.first_revision;
  for (const Item& it : g.items) {
    const DomainEvent& e = it.event();
    const SourceMessage& m = it.message();
    // Without revisions the offset stands in for the revision in the id: stable across replays.
    const Uuid id = derive_event_id(e, g.stream, revisions ? rev : uint64_t(m.offset.value()));
    const size_t k = req.events.size();
    EventData& ev = req.events.emplace_back();  // built in its place (reserved above), not moved there
    ev.id = id;
    ev.type = e.event_type;
    // KurrentDB knows two content types: JSON, and bytes (the payload's own type is kept in the
    // metadata as payloadContentType).
    ev.content_type = e.content_type == kJsonContentType ? kJsonContentType : kBytesContentType;
    const SourceRef source{m.tp.topic, m.tp.partition, m.offset.value()};
    const Uuid* event_run = k == 0 ? run : nullptr;
    if (!rules.record_properties || !build_properties(e, id, previous, source, event_run, &ev.properties)) {
      ev.metadata = build_metadata(e, id, previous, source, event_run);
    }
    if (take != nullptr) {
      Item& taken = take->items[k];
      ev.data = std::move(taken.mutable_event().payload);
      taken.payload_taken = true;
    } else {
      ev.data = e.payload;
    }
    if (ids) ids->push_back(id);
    previous = id;
    ++rev;
  }
  return req;
}

}  // namespace

AppendRequest build_append(const Group& g, const StreamState& st, const RevisionRules& rules, EventIds* ids,
                           const Uuid* run) {
  return make_append(g, st, rules, ids, run, nullptr);
}

AppendRequest take_append(Group& g, const StreamState& st, const RevisionRules& rules, EventIds* ids,
                          const Uuid* run) {
  return make_append(g, st, rules, ids, run, &g);
}

std::vector<Uuid> proposed_ids(const Group& g, size_t count) {
  std::vector<Uuid> out;
  out.reserve(count);
  for (size_t k = 0; k < count && k < g.items.size(); ++k) {
    out.push_back(derive_event_id(g.items[k].event(), g.stream, g.first_revision + k));
  }
  return out;
}

PrefixVerdict compare_written(const std::vector<Uuid>& proposed, uint64_t first_revision,
                              const std::vector<RecordedEventData>& written) {
  PrefixVerdict v;
  for (; v.duplicates < proposed.size(); ++v.duplicates) {
    const size_t k = v.duplicates;
    const uint64_t rev = first_revision + k;
    if (k >= written.size() || written[k].revision.value() != rev || written[k].id != proposed[k]) {
      const std::string theirs = k < written.size() ? written[k].id.to_string() : std::string("nothing");
      v.conflict = true;
      v.detail = "revision " + std::to_string(rev) + " holds event " + theirs + ", this event's id is " +
                 proposed[k].to_string();
      break;
    }
  }
  return v;
}

std::vector<bool> written_by_run(const std::vector<RecordedEventData>& written, const Uuid& run) {
  std::string key = "\"";
  key.append(kRunIdKey).append("\":\"");
  const auto ours = run.text();
  std::vector<bool> out;
  out.reserve(written.size());
  bool current = false;
  for (const RecordedEventData& e : written) {
    if (auto at = e.metadata.find(key); at != std::string::npos) {
      const std::string_view id = std::string_view(e.metadata).substr(at + key.size(), ours.size());
      current = id == std::string_view(ours.data(), ours.size());
    }
    out.push_back(current);
  }
  return out;
}

}  // namespace kingest::pipeline
