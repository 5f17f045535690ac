// Server-only protocol conversions: Append's in-body WrongExpectedVersion, status codes, gossip
// time stamps.
#include "server/internal/server.h"

#include <chrono>
#include <limits>
#include <variant>

namespace kingest::server::internal {
namespace {

constexpr uint64_t kNoStreamLegacy = std::numeric_limits<uint64_t>::max();

}  // namespace

grpc::Status to_grpc(const absl::Status& s) {
  return {static_cast<grpc::StatusCode>(static_cast<int>(s.code())), std::string(s.message())};
}

// Append's in-body wrong expected version: both the 20.6 fields and the current ones.
void fill_wrong_version(const ExpectedRevision& expected, const std::optional<StreamRevision>& current,
                        streams::AppendResp::WrongExpectedVersion* w) {
  if (current) {
    w->set_current_revision_20_6_0(current->value());
    w->set_current_revision(current->value());
  } else {
    w->mutable_no_stream_20_6_0();
    w->mutable_current_no_stream();
  }
  if (auto* r = std::get_if<StreamRevision>(&expected)) {
    w->set_expected_revision_20_6_0(r->value());
    w->set_expected_revision(r->value());
  } else if (std::holds_alternative<ExpectNoStream>(expected)) {
    w->set_expected_revision_20_6_0(kNoStreamLegacy);
    w->mutable_expected_no_stream();
  } else if (std::holds_alternative<ExpectAny>(expected)) {
    w->mutable_any_20_6_0();
    w->mutable_expected_any();
  } else {
    w->mutable_stream_exists_20_6_0();
    w->mutable_expected_stream_exists();
  }
}

int64_t now_ticks() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
             .count() /
         100;
}

}  // namespace kingest::server::internal
