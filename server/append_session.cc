// v2 StreamsService: AppendSession, a multi-stream append checked and written atomically with
// respect to other sessions (one worker thread runs them in turn), and the service that also
// serves AppendRecords (append_records.cc); the v2 conversions both share.
#include "server/internal/server.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/v2/errors.pb.h"

namespace kingest::server::internal {

const char* schema_format_name(v2::SchemaFormat f) {
  switch (f) {
    case v2::SCHEMA_FORMAT_JSON:
      return "Json";
    case v2::SCHEMA_FORMAT_PROTOBUF:
      return "Protobuf";
    case v2::SCHEMA_FORMAT_AVRO:
      return "Avro";
    case v2::SCHEMA_FORMAT_BYTES:
      return "Bytes";
    default:
      return "Unspecified";
  }
}

// A record as a v1 event: the properties become the JSON metadata (what v1 readers see), with
// KurrentDB's "$schema.format" and "$schema.name" added.
absl::StatusOr<store::ProposedEvent> v2_event(const v2::AppendRecord& rec) {
  auto id = Uuid::parse(rec.record_id());
  if (!id) return absl::InvalidArgumentError(absl::StrCat("record_id '", rec.record_id(), "' is not a UUID"));
  if (rec.schema().name().empty()) return absl::InvalidArgumentError("record without schema.name (event type)");
  auto metadata = wire::properties_to_json(
      rec.properties(), {{"$schema.format", schema_format_name(rec.schema().format())}, {"$schema.name", rec.schema().name()}});
  if (!metadata.ok()) return metadata.status();
  return store::ProposedEvent{
      .id = *id,
      .type = rec.schema().name(),
      .content_type = rec.schema().format() == v2::SCHEMA_FORMAT_JSON ? "application/json" : "application/octet-stream",
      .data = rec.data(),
      .metadata = std::move(*metadata)};
}

grpc::Status v2_error(grpc::StatusCode code, const std::string& reason, const std::string& message,
                      const google::protobuf::Message* detail) {
  google::rpc::Status st;
  st.set_code(static_cast<google::rpc::Code>(code));
  st.set_message(message);
  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain("streams");
  st.add_details()->PackFrom(info);
  if (detail) st.add_details()->PackFrom(*detail);  // last: the Node client keeps the last detail
  return {code, message, st.SerializeAsString()};
}

namespace {

absl::StatusOr<ExpectedRevision> v2_expected(const v2::AppendRequest& r) {
  return wire::expected_of_v2(r.has_expected_revision() ? std::optional<int64_t>(r.expected_revision()) : std::nullopt);
}

using wire::v2_expected_value;

// FAILED_PRECONDITION with grpc-status-details-bin = google.rpc.Status{ErrorInfo, details}.
grpc::Status v2_conflict(const std::string& stream, const ExpectedRevision& expected,
                         std::optional<StreamRevision> actual) {
  google::rpc::Status st;
  st.set_code(google::rpc::FAILED_PRECONDITION);
  st.set_message(absl::StrCat("stream '", stream, "': expected revision ", v2_expected_value(expected), ", actual ",
                              actual ? static_cast<int64_t>(actual->value()) : int64_t{-1}));
  google::rpc::ErrorInfo info;
  info.set_reason("STREAM_REVISION_CONFLICT");
  info.set_domain("streams");
  st.add_details()->PackFrom(info);
  v2::errors::StreamRevisionConflictErrorDetails d;
  d.set_stream(stream);
  d.set_expected_revision(v2_expected_value(expected));
  d.set_actual_revision(actual ? static_cast<int64_t>(actual->value()) : int64_t{-1});
  st.add_details()->PackFrom(d);  // last: the Node client keeps the last detail
  return {grpc::StatusCode::FAILED_PRECONDITION, st.message(), st.SerializeAsString()};
}

class AppendSessionReactor final : public grpc::ServerReadReactor<v2::AppendRequest> {
 public:
  AppendSessionReactor(Shared& shared, SessionWorker& worker, v2::AppendSessionResponse* resp)
      : shared_(shared), worker_(worker), resp_(resp) {
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      worker_.post([this] { Finish(run()); });
      return;
    }
    if (req_.stream().empty()) return Finish({grpc::StatusCode::INVALID_ARGUMENT, "append session: empty stream name"});
    for (const auto& w : writes_) {
      if (w.stream == req_.stream()) {
        return Finish(v2_error(grpc::StatusCode::ABORTED, "STREAM_ALREADY_IN_APPEND_SESSION",
                               absl::StrCat("stream '", req_.stream(), "' appears twice in one append session")));
      }
    }
    auto expected = v2_expected(req_);
    if (!expected.ok()) return Finish(to_grpc(expected.status()));
    Write w{.stream = req_.stream(), .expected = *expected};
    for (const auto& rec : req_.records()) {
      auto ev = v2_event(rec);
      if (!ev.ok()) return Finish(to_grpc(ev.status()));
      size_t size = event_size(*ev);
      total_size_ += size;
      if (size > shared_.options.max_event_size || total_size_ > shared_.options.max_append_size) {
        return Finish(v2_error(grpc::StatusCode::ABORTED, "APPEND_TRANSACTION_SIZE_EXCEEDED",
                               absl::StrCat("append session over ", shared_.options.max_append_size, " bytes")));
      }
      w.events.push_back(std::move(*ev));
    }
    writes_.push_back(std::move(w));
    StartRead(&req_);
  }

  void OnDone() override { delete this; }

 private:
  struct Write {
    std::string stream;
    ExpectedRevision expected;
    std::vector<store::ProposedEvent> events;
  };

  // The store's verdict on `w` without writing: nullopt = would succeed; else the conflict (or an
  // error status). Mirrors the store's rules, idempotent re-appends included.
  std::optional<grpc::Status> check(const Write& w) {
    auto tail = shared_.store.read(w.stream, store::ReadFrom::end(), 1, store::ReadDirection::kBackwards);
    if (!tail.ok()) return to_grpc(tail.status());
    if (tail->stream_deleted) {
      return v2_error(grpc::StatusCode::FAILED_PRECONDITION, "STREAM_DELETED",
                      absl::StrCat("stream '", w.stream, "' is deleted"));
    }
    std::optional<StreamRevision> actual;
    if (tail->stream_found && !tail->events.empty()) actual = tail->events.front().revision;
    auto ids_match_from = [&](uint64_t first) {
      if (w.events.empty()) return false;
      auto have = shared_.store.read(w.stream, store::ReadFrom::at(StreamRevision{first}), w.events.size(),
                                     store::ReadDirection::kForwards);
      if (!have.ok() || have->events.size() != w.events.size()) return false;
      for (size_t i = 0; i < w.events.size(); ++i) {
        if (have->events[i].id != w.events[i].id) return false;
      }
      return true;
    };
    bool ok = std::visit(
        [&](const auto& e) {
          using E = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<E, ExpectAny>) {
            return true;
          } else if constexpr (std::is_same_v<E, ExpectStreamExists>) {
            return actual.has_value();
          } else if constexpr (std::is_same_v<E, ExpectNoStream>) {
            return !actual || ids_match_from(0);
          } else {
            if (!actual) return false;
            if (*actual == e) return true;
            return actual->value() > e.value() && ids_match_from(e.value() + 1);
          }
        },
        w.expected);
    if (ok) return std::nullopt;
    return v2_conflict(w.stream, w.expected, actual);
  }

  // On the session worker: check every stream, then append them all and wait for the answers.
  grpc::Status run() {
    if (writes_.empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "append session without requests"};
    for (const auto& w : writes_) {
      if (auto bad = check(w)) return *bad;
    }
    std::mutex mu;
    std::condition_variable cv;
    size_t answered = 0;
    std::vector<store::AppendResult> results(writes_.size());
    for (size_t i = 0; i < writes_.size(); ++i) {
      shared_.store.append(writes_[i].stream, writes_[i].expected, std::move(writes_[i].events),
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
    uint64_t max_position = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      switch (r.status) {
        case store::AppendStatus::kSuccess:
          break;
        // Only when a v1 writer raced this session on the same stream; earlier streams of the
        // session may then be written (see server/README.md).
        case store::AppendStatus::kWrongExpectedVersion:
          return v2_conflict(writes_[i].stream, writes_[i].expected, r.current_revision);
        case store::AppendStatus::kStreamDeleted:
          return v2_error(grpc::StatusCode::FAILED_PRECONDITION, "STREAM_DELETED",
                          absl::StrCat("stream '", writes_[i].stream, "' is deleted"));
        case store::AppendStatus::kError:
          return {grpc::StatusCode::UNAVAILABLE, r.message};
      }
      auto* out = resp_->add_output();
      out->set_stream(writes_[i].stream);
      out->set_stream_revision(r.current_revision ? static_cast<int64_t>(r.current_revision->value()) : -1);
      out->set_position(static_cast<int64_t>(r.position));
      max_position = std::max(max_position, r.position);
    }
    resp_->set_position(static_cast<int64_t>(max_position));
    return grpc::Status::OK;
  }

  Shared& shared_;
  SessionWorker& worker_;
  v2::AppendSessionResponse* resp_;
  v2::AppendRequest req_;
  std::vector<Write> writes_;
  size_t total_size_ = 0;
};

// AppendRecords is served raw: its request is read from the bytes (records_wire.h), never built as
// the generated message.
using V2Base = v2::StreamsService::WithCallbackMethod_AppendSession<
    v2::StreamsService::WithRawCallbackMethod_AppendRecords<v2::StreamsService::Service>>;

class V2StreamsService final : public V2Base {
 public:
  V2StreamsService(Shared& shared, SessionWorker& worker) : shared_(shared), worker_(worker) {}
  grpc::ServerReadReactor<v2::AppendRequest>* AppendSession(grpc::CallbackServerContext* ctx,
                                                            v2::AppendSessionResponse* resp) override {
    if (auto refused = refuse_access(shared_, ctx, Access::kStreams)) {
      return new RefusedRead<v2::AppendRequest>(*refused, /*after_reads=*/false);
    }
    if (shared_.leader) return new RefusedRead<v2::AppendRequest>(not_leader(shared_, ctx), /*after_reads=*/true);
    return new AppendSessionReactor(shared_, worker_, resp);
  }
  grpc::ServerUnaryReactor* AppendRecords(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                          grpc::ByteBuffer* resp) override {
    auto* reactor = ctx->DefaultReactor();
    if (auto refused = refuse_access(shared_, ctx, Access::kStreams)) {
      reactor->Finish(*refused);
    } else if (shared_.leader) {
      reactor->Finish(not_leader(shared_, ctx));
    } else {
      append_records(shared_, *req, resp, [reactor](const grpc::Status& s) { reactor->Finish(s); });
    }
    return reactor;
  }

 private:
  Shared& shared_;
  SessionWorker& worker_;
};

}  // namespace

std::unique_ptr<grpc::Service> new_v2_streams_service(Shared& shared, SessionWorker& worker) {
  return std::make_unique<V2StreamsService>(shared, worker);
}

}  // namespace kingest::server::internal
