#include "kurrent/wire.h"

#include <charconv>

#include "absl/strings/str_cat.h"

namespace kingest::kurrent::wire {
namespace {

namespace pb = event_store::client;
namespace streams = event_store::client::streams;

AppendOutcome done(AppendCode code, std::string message) {
  return AppendOutcome{.code = code, .current_revision = std::nullopt, .position = 0, .message = std::move(message)};
}

Verdict retry(std::string reason) { return Verdict{.kind = Verdict::kRetry, .outcome = {}, .reason = std::move(reason)}; }

Verdict final(AppendCode code, std::string message) { return Verdict{.kind = Verdict::kDone, .outcome = done(code, std::move(message))}; }

}  // namespace

std::optional<int64_t> v2_expected(const ExpectedRevision& e) {
  if (std::holds_alternative<ExpectAny>(e)) return std::nullopt;
  return ::kingest::wire::v2_expected_value(e);
}

std::optional<std::string> fill_v2_record(const EventData& e, kurrentdb::protocol::v2::streams::AppendRecord* rec) {
  namespace v2 = kurrentdb::protocol::v2::streams;
  rec->set_record_id(e.id.to_string());
  rec->mutable_schema()->set_name(e.type.str());
  rec->mutable_schema()->set_format(e.content_type == "application/json" ? v2::SCHEMA_FORMAT_JSON
                                                                         : v2::SCHEMA_FORMAT_BYTES);
  rec->set_data(e.data);
  if (!e.properties.empty()) {
    v2::AppendRecord encoded;
    if (!encoded.ParseFromString(e.properties)) {
      return "properties of event " + e.id.to_string() + " are not an encoded properties map";
    }
    rec->mutable_properties()->swap(*encoded.mutable_properties());
  } else if (!e.metadata.empty() &&
             !::kingest::wire::properties_from_json(e.metadata, rec->mutable_properties())) {
    return "metadata of event " + e.id.to_string() + " is not a JSON object (v2 properties)";
  }
  return std::nullopt;
}

std::vector<std::unique_ptr<streams::BatchAppendReq>> batch_append_messages(const Uuid& correlation,
                                                                           const std::string& stream,
                                                                           const ExpectedRevision& expected,
                                                                           std::span<const EventData> events,
                                                                           std::chrono::milliseconds deadline,
                                                                           size_t chunk_bytes) {
  std::vector<std::unique_ptr<streams::BatchAppendReq>> msgs;
  auto next = [&] {
    auto m = std::make_unique<streams::BatchAppendReq>();
    to_proto(correlation, m->mutable_correlation_id());
    msgs.push_back(std::move(m));
    return msgs.back().get();
  };
  auto* m = next();
  auto* o = m->mutable_options();
  o->mutable_stream_identifier()->set_stream_name(stream);
  set_expected(expected, o);
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(deadline);
  o->mutable_deadline()->set_seconds(secs.count());
  o->mutable_deadline()->set_nanos(int32_t(std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - secs).count()));
  size_t bytes = 0;
  for (const EventData& e : events) {
    size_t sz = event_size(e);
    if (bytes > 0 && bytes + sz > chunk_bytes) {
      m = next();
      bytes = 0;
    }
    bytes += sz;
    fill_proposed(e, m->add_proposed_messages());
  }
  msgs.back()->set_is_final(true);
  return msgs;
}

std::string trailer(const Trailers& t, const std::string& key) {
  auto it = t.find(grpc::string_ref(key));
  return it == t.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

Verdict classify(const grpc::Status& status, const Trailers& trailers) {
  const std::string exception = trailer(trailers, "exception");
  const std::string message = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      return final(AppendCode::kSuccess, "");
    case grpc::StatusCode::NOT_FOUND:
      if (exception == "not-leader") {
        Verdict v{.kind = Verdict::kRedirect, .outcome = {}, .reason = "not leader"};
        v.leader_host = trailer(trailers, "leader-endpoint-host");
        std::string port = trailer(trailers, "leader-endpoint-port");
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v.leader_port);
        if (v.leader_host.empty() || ec != std::errc() || p != port.data() + port.size()) {
          return retry("not leader, and the answer names no leader: " + message);
        }
        return v;
      }
      if (exception == "stream-deleted") return final(AppendCode::kStreamDeleted, "stream deleted");
      return final(AppendCode::kRejected, "not found: " + message);
    case grpc::StatusCode::FAILED_PRECONDITION:
      if (exception == "stream-deleted") return final(AppendCode::kStreamDeleted, "stream deleted");
      if (exception == "wrong-expected-version") {
        Verdict v = final(AppendCode::kWrongExpectedVersion, "wrong expected version");
        std::string actual = trailer(trailers, "actual-version");
        uint64_t rev = 0;
        auto [p, ec] = std::from_chars(actual.data(), actual.data() + actual.size(), rev);
        if (ec == std::errc() && p == actual.data() + actual.size()) v.outcome.current_revision = StreamRevision{rev};
        return v;
      }
      return final(AppendCode::kRejected, "failed precondition: " + message);
    case grpc::StatusCode::INVALID_ARGUMENT:
      if (exception == "maximum-append-size-exceeded" || !trailer(trailers, "maximum-append-size").empty()) {
        return final(AppendCode::kTooLarge, "maximum append size exceeded (" + trailer(trailers, "maximum-append-size") +
                                                " bytes): " + message);
      }
      return final(AppendCode::kRejected, "invalid argument: " + message);
    case grpc::StatusCode::PERMISSION_DENIED:
      return final(AppendCode::kAccessDenied, "access denied: " + message);
    case grpc::StatusCode::UNAUTHENTICATED:
      return final(AppendCode::kFatal,
                   "authentication failed (" + message + "): check the user name and password in the connection string");
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::CANCELLED:
      return retry(std::string(absl::StrCat("gRPC ", static_cast<int>(status.error_code()), ": ", message)));
    default:
      return final(AppendCode::kFatal, absl::StrCat("gRPC ", static_cast<int>(status.error_code()), ": ", message));
  }
}

Verdict classify(const google::rpc::Status& status) {
  const std::string& message = status.message();
  switch (status.code()) {
    case google::rpc::ALREADY_EXISTS: {
      Verdict v = final(AppendCode::kWrongExpectedVersion, "wrong expected version");
      for (const auto& any : status.details()) {
        pb::WrongExpectedVersion w;
        if (any.UnpackTo(&w)) v.outcome.current_revision = ::kingest::wire::current_of(w);
      }
      return v;
    }
    case google::rpc::NOT_FOUND:
      return final(AppendCode::kStreamDeleted, "stream deleted: " + message);
    case google::rpc::PERMISSION_DENIED:
      return final(AppendCode::kAccessDenied, "access denied: " + message);
    case google::rpc::INVALID_ARGUMENT: {
      for (const auto& any : status.details()) {
        pb::MaximumAppendSizeExceeded m;
        if (any.UnpackTo(&m)) {
          return final(AppendCode::kTooLarge,
                       absl::StrCat("maximum append size exceeded (", m.maxappendsize(), " bytes): ", message));
        }
      }
      return final(AppendCode::kRejected, "invalid argument: " + message);
    }
    case google::rpc::UNAUTHENTICATED:
      return final(AppendCode::kFatal,
                   "authentication failed (" + message + "): check the user name and password in the connection string");
    case google::rpc::DEADLINE_EXCEEDED:
    case google::rpc::UNAVAILABLE:
    case google::rpc::ABORTED:
    case google::rpc::RESOURCE_EXHAUSTED:
    case google::rpc::UNKNOWN:
    case google::rpc::INTERNAL:
      return retry(absl::StrCat("batch append error ", static_cast<int>(status.code()), ": ", message));
    default:
      return final(AppendCode::kRejected, absl::StrCat("batch append error ", static_cast<int>(status.code()), ": ", message));
  }
}

AppendOutcome outcome_of(const streams::AppendResp& resp) {
  using R = streams::AppendResp;
  if (resp.result_case() == R::kSuccess) {
    const auto& s = resp.success();
    AppendOutcome o = done(AppendCode::kSuccess, "");
    if (s.current_revision_option_case() == R::Success::kCurrentRevision) o.current_revision = StreamRevision{s.current_revision()};
    if (s.position_option_case() == R::Success::kPosition) o.position = s.position().commit_position();
    return o;
  }
  if (resp.result_case() == R::kWrongExpectedVersion) {
    const auto& w = resp.wrong_expected_version();
    AppendOutcome o = done(AppendCode::kWrongExpectedVersion, "wrong expected version");
    if (w.current_revision_option_case() == R::WrongExpectedVersion::kCurrentRevision) {
      o.current_revision = StreamRevision{w.current_revision()};
    } else if (w.current_revision_option_case() == R::WrongExpectedVersion::CURRENT_REVISION_OPTION_NOT_SET &&
               w.current_revision_option_20_6_0_case() == R::WrongExpectedVersion::kCurrentRevision2060) {
      o.current_revision = StreamRevision{w.current_revision_20_6_0()};
    }
    return o;
  }
  return done(AppendCode::kRejected, "append answer holds neither success nor wrong expected version");
}

}  // namespace kingest::kurrent::wire
