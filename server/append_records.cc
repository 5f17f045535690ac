// v2 StreamsService.AppendRecords (KurrentDB 26.1): records of many streams interleaved in one
// unary request, revision checks kept apart from the records, all or nothing; every failing check
// is reported at once. The request is checked on gRPC's thread; the checks and the write run on
// the session worker, one request (or AppendSession) at a time.
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/v2/errors.pb.h"
#include "server/internal/server.h"

namespace kingest::server::internal {
namespace {

namespace v2err = ::kurrentdb::protocol::v2::streams::errors;

// KurrentDB's actual_state values besides a revision.
constexpr int64_t kActualNoStream = -1;
constexpr int64_t kActualTombstoned = -100;
// The check_index of a violation no check of the request stands for: a record to a tombstoned
// stream that no check names.
constexpr int32_t kNoCheck = -1;

// One request as the store sees it: streams named once (records and checks refer to them by
// index), the records in log order, the checks in the request's order.
struct StreamCheck {
  uint32_t stream;
  ExpectedRevision expected;
};
struct RecordWrite {
  uint32_t stream;
  store::ProposedEvent event;
};
struct MultiAppend {
  std::vector<std::string> streams;
  std::vector<RecordWrite> records;
  std::vector<StreamCheck> checks;
};
struct Violation {
  int32_t check_index;
  uint32_t stream;
  ExpectedRevision expected;
  int64_t actual;  // a revision, kActualNoStream or kActualTombstoned
};
struct MultiResult {
  store::AppendStatus status = store::AppendStatus::kError;
  std::vector<Violation> violations;
  std::vector<std::pair<uint32_t, StreamRevision>> revisions;  // last revision per stream written
  uint64_t position = 0;
  std::string message;
};

bool satisfied(const ExpectedRevision& expected, int64_t actual) {
  if (actual == kActualTombstoned) return false;
  return std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, ExpectAny>) {
          return true;
        } else if constexpr (std::is_same_v<E, ExpectStreamExists>) {
          return actual >= 0;
        } else if constexpr (std::is_same_v<E, ExpectNoStream>) {
          return actual == kActualNoStream;
        } else {
          return actual == static_cast<int64_t>(e.value());
        }
      },
      expected);
}

// The store has no multi-stream transaction: the streams' states are read, the checks evaluated
// (exactly: no idempotent re-append), then each run of consecutive records of one stream is
// appended with the exact revision the read implies, in the request's order. Atomic with respect to
// other v2 calls (the worker runs one at a time); a v1 writer racing on the same stream, or a crash
// between the runs, can leave part of the request written (server/README.md).
MultiResult run(store::EventStore& store, MultiAppend& req) {
  MultiResult out;
  std::vector<int64_t> actual(req.streams.size(), kActualNoStream);
  for (size_t i = 0; i < req.streams.size(); ++i) {
    auto tail = store.read(req.streams[i], store::ReadFrom::end(), 1, store::ReadDirection::kBackwards);
    if (!tail.ok()) {
      out.message = std::string(tail.status().message());
      return out;
    }
    if (tail->stream_deleted) {
      actual[i] = kActualTombstoned;
    } else if (tail->stream_found && !tail->events.empty()) {
      actual[i] = static_cast<int64_t>(tail->events.front().revision.value());
    }
  }
  std::vector<bool> written(req.streams.size(), false);
  for (const auto& r : req.records) written[r.stream] = true;
  std::vector<bool> reported(req.streams.size(), false);
  for (size_t i = 0; i < req.checks.size(); ++i) {
    const auto& c = req.checks[i];
    // An ANY check fails only on a tombstoned stream the request writes to.
    bool fails = std::holds_alternative<ExpectAny>(c.expected)
                     ? actual[c.stream] == kActualTombstoned && written[c.stream]
                     : !satisfied(c.expected, actual[c.stream]);
    if (fails) {
      out.violations.push_back({static_cast<int32_t>(i), c.stream, c.expected, actual[c.stream]});
      reported[c.stream] = true;
    }
  }
  for (size_t s = 0; s < req.streams.size(); ++s) {
    if (written[s] && actual[s] == kActualTombstoned && !reported[s]) {
      out.violations.push_back({kNoCheck, static_cast<uint32_t>(s), ExpectAny{}, kActualTombstoned});
    }
  }
  if (!out.violations.empty()) {
    out.status = store::AppendStatus::kWrongExpectedVersion;
    return out;
  }

  struct Run {
    uint32_t stream;
    ExpectedRevision expected;
    std::vector<store::ProposedEvent> events;
  };
  std::vector<Run> runs;
  std::vector<int64_t> next = actual;  // the stream's last revision as the runs so far leave it
  for (auto& r : req.records) {
    if (runs.empty() || runs.back().stream != r.stream) {
      ExpectedRevision e = next[r.stream] < 0 ? ExpectedRevision{ExpectNoStream{}}
                                              : ExpectedRevision{StreamRevision{uint64_t(next[r.stream])}};
      runs.push_back({r.stream, e, {}});
    }
    runs.back().events.push_back(std::move(r.event));
    next[r.stream]++;
  }
  std::mutex mu;
  std::condition_variable cv;
  size_t answered = 0;
  std::vector<store::AppendResult> results(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    store.append(req.streams[runs[i].stream], runs[i].expected, std::move(runs[i].events),
                 [&, i](store::AppendResult r) {
                   std::lock_guard lock(mu);
                   results[i] = std::move(r);
                   if (++answered == results.size()) cv.notify_one();
                 });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return answered == results.size(); });
  }
  std::vector<std::optional<StreamRevision>> last(req.streams.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = results[i];
    switch (r.status) {
      case store::AppendStatus::kSuccess:
        break;
      case store::AppendStatus::kWrongExpectedVersion:
        out.status = r.status;
        out.violations.push_back({kNoCheck, runs[i].stream, runs[i].expected,
                                  r.current_revision ? int64_t(r.current_revision->value()) : kActualNoStream});
        return out;
      case store::AppendStatus::kStreamDeleted:
        out.status = store::AppendStatus::kWrongExpectedVersion;
        out.violations.push_back({kNoCheck, runs[i].stream, ExpectAny{}, kActualTombstoned});
        return out;
      case store::AppendStatus::kError:
        out.message = r.message;
        return out;
    }
    last[runs[i].stream] = r.current_revision;
    out.position = std::max(out.position, r.position);
  }
  // One revision per stream written, in the order of the streams' first records.
  for (uint32_t s = 0; s < req.streams.size(); ++s) {
    if (last[s]) out.revisions.emplace_back(s, *last[s]);
  }
  out.status = store::AppendStatus::kSuccess;
  return out;
}

grpc::Status invalid(const std::string& message) { return {grpc::StatusCode::INVALID_ARGUMENT, message}; }

int32_t clamp32(size_t n) { return static_cast<int32_t>(std::min<size_t>(n, INT32_MAX)); }

grpc::Status violation_status(const MultiAppend& req, const std::vector<Violation>& violations) {
  v2err::AppendConsistencyViolationErrorDetails details;
  std::string message = absl::StrCat("append consistency violation: ", violations.size(), " failing check",
                                     violations.size() == 1 ? "" : "s");
  for (size_t i = 0; i < violations.size(); ++i) {
    const auto& v = violations[i];
    auto* out = details.add_violations();
    out->set_check_index(v.check_index);
    auto* state = out->mutable_stream_state();
    state->set_stream(req.streams[v.stream]);
    state->set_expected_state(wire::v2_expected_value(v.expected));
    state->set_actual_state(v.actual);
    if (i < 8) {
      absl::StrAppend(&message, i == 0 ? ": " : "; ", "stream '", req.streams[v.stream], "' expected ",
                      wire::v2_expected_value(v.expected), ", actual ", v.actual);
    } else if (i == 8) {
      absl::StrAppend(&message, "; ...");
    }
  }
  return v2_error(grpc::StatusCode::FAILED_PRECONDITION, "APPEND_CONSISTENCY_VIOLATION", message, &details);
}

}  // namespace

void append_records(Shared& shared, SessionWorker& worker, const v2::AppendRecordsRequest& req,
                    v2::AppendRecordsResponse* resp, std::function<void(const grpc::Status&)> done) {
  if (req.records().empty()) return done(invalid("append records: the request holds no records"));
  MultiAppend plan;
  std::unordered_map<std::string, uint32_t> index;
  auto stream_index = [&](const std::string& name) {
    auto [it, fresh] = index.try_emplace(name, static_cast<uint32_t>(plan.streams.size()));
    if (fresh) plan.streams.push_back(name);
    return it->second;
  };
  size_t total = 0;
  plan.records.reserve(size_t(req.records_size()));
  for (const auto& rec : req.records()) {
    if (rec.stream().empty()) return done(invalid("append records: a record without a stream"));
    auto ev = v2_event(rec);
    if (!ev.ok()) return done(to_grpc(ev.status()));
    const size_t size = event_size(*ev);
    if (size > shared.options.max_event_size) {
      v2err::AppendRecordSizeExceededErrorDetails d;
      d.set_stream(rec.stream());
      d.set_record_id(rec.record_id());
      d.set_size(clamp32(size));
      d.set_max_size(clamp32(shared.options.max_event_size));
      return done(v2_error(grpc::StatusCode::INVALID_ARGUMENT, "APPEND_RECORD_SIZE_EXCEEDED",
                           absl::StrCat("record ", rec.record_id(), " of stream '", rec.stream(), "' is ", size,
                                        " bytes, over the ", shared.options.max_event_size, " bytes allowed"),
                           &d));
    }
    total += size;
    plan.records.push_back({stream_index(rec.stream()), std::move(*ev)});
  }
  if (total > shared.options.max_append_size) {
    v2err::AppendTransactionSizeExceededErrorDetails d;
    d.set_size(clamp32(total));
    d.set_max_size(clamp32(shared.options.max_append_size));
    return done(v2_error(grpc::StatusCode::ABORTED, "APPEND_TRANSACTION_SIZE_EXCEEDED",
                         absl::StrCat("append records: ", total, " bytes, over the ", shared.options.max_append_size,
                                      " bytes of one append"),
                         &d));
  }
  for (const auto& c : req.checks()) {
    if (!c.has_stream_state()) return done(invalid("append records: a consistency check without a type"));
    const auto& s = c.stream_state();
    if (s.stream().empty()) return done(invalid("append records: a consistency check without a stream"));
    auto expected = wire::expected_of_v2(s.expected_state());
    if (!expected.ok()) {
      return done(invalid(absl::StrCat("append records: check of stream '", s.stream(), "': ",
                                       expected.status().message())));
    }
    plan.checks.push_back({stream_index(s.stream()), *expected});
  }
  worker.post([&shared, plan = std::move(plan), resp, done = std::move(done)]() mutable {
    MultiResult r = run(shared.store, plan);
    switch (r.status) {
      case store::AppendStatus::kSuccess:
        for (const auto& [s, rev] : r.revisions) {
          auto* out = resp->add_revisions();
          out->set_stream(plan.streams[s]);
          out->set_revision(static_cast<int64_t>(rev.value()));
        }
        resp->set_position(static_cast<int64_t>(r.position));
        return done(grpc::Status::OK);
      case store::AppendStatus::kWrongExpectedVersion:
      case store::AppendStatus::kStreamDeleted:
        return done(violation_status(plan, r.violations));
      case store::AppendStatus::kError:
        return done({grpc::StatusCode::UNAVAILABLE, "append records: " + r.message});
    }
  });
}

}  // namespace kingest::server::internal
