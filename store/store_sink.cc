#include "store/store_sink.h"

namespace kingest::store {

AppendOutcome to_outcome(const AppendResult& r) {
  AppendOutcome o;
  o.current_revision = r.current_revision;
  o.position = r.position;
  o.message = r.message;
  o.already_written = r.status == AppendStatus::kSuccess && r.idempotent;
  switch (r.status) {
    case AppendStatus::kSuccess: o.code = AppendCode::kSuccess; break;
    case AppendStatus::kWrongExpectedVersion: o.code = AppendCode::kWrongExpectedVersion; break;
    case AppendStatus::kStreamDeleted: o.code = AppendCode::kStreamDeleted; break;
    case AppendStatus::kError: o.code = AppendCode::kFatal; break;
  }
  return o;
}

void StoreSink::append(AppendRequest request, AppendDone done) {
  std::vector<ProposedEvent> events;
  events.reserve(request.events.size());
  for (auto& e : request.events) {
    events.push_back(ProposedEvent{e.id, e.type.str(), e.content_type.str(), std::move(e.data),
                                   std::move(e.metadata)});
  }
  store_.append(std::move(request.stream), request.expected, std::move(events),
                [done = std::move(done)](AppendResult r) { done(to_outcome(r)); });
}

absl::StatusOr<StreamTail> StoreSink::read_tail(const std::string& stream) {
  auto r = store_.read(stream, ReadFrom::end(), 1, ReadDirection::kBackwards);
  if (!r.ok()) return r.status();
  StreamTail t;
  t.deleted = r->stream_deleted;
  if (r->stream_found && !r->events.empty()) {
    t.exists = true;
    t.last_revision = r->events.front().revision;
    t.last_id = r->events.front().id;
  }
  return t;
}

absl::StatusOr<std::vector<RecordedEventData>> StoreSink::read_forwards(const std::string& stream,
                                                                        StreamRevision from, uint64_t max_count) {
  auto r = store_.read(stream, ReadFrom::at(from), max_count, ReadDirection::kForwards);
  if (!r.ok()) return r.status();
  std::vector<RecordedEventData> out;
  out.reserve(r->events.size());
  for (auto& e : r->events) {
    out.push_back({e.id, e.revision, std::move(e.type), std::move(e.content_type), std::move(e.data),
                   std::move(e.metadata)});
  }
  return out;
}

}  // namespace kingest::store
