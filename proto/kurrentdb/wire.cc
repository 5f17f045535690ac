#include "proto/kurrentdb/wire.h"

#include <variant>

#include "absl/strings/str_cat.h"

namespace kingest::wire {
namespace {

namespace pb = event_store::client;
namespace streams = event_store::client::streams;

template <typename Options>
void set_expected_impl(const ExpectedRevision& e, Options* o, void (Options::*set_revision)(uint64_t)) {
  if (const auto* r = std::get_if<StreamRevision>(&e)) {
    (o->*set_revision)(r->value());
  } else if (std::holds_alternative<ExpectNoStream>(e)) {
    o->mutable_no_stream();
  } else if (std::holds_alternative<ExpectAny>(e)) {
    o->mutable_any();
  } else {
    o->mutable_stream_exists();
  }
}

}  // namespace

void to_proto(const Uuid& id, pb::UUID* out, bool as_string) {
  if (as_string) {
    out->set_string(id.to_string());
    return;
  }
  out->mutable_structured()->set_most_significant_bits(id.most_significant());
  out->mutable_structured()->set_least_significant_bits(id.least_significant());
}

std::optional<Uuid> from_proto(const pb::UUID& id) {
  switch (id.value_case()) {
    case pb::UUID::kStructured:
      return Uuid::from_halves(id.structured().most_significant_bits(), id.structured().least_significant_bits());
    case pb::UUID::kString:
      return Uuid::parse(id.string());
    default:
      return std::nullopt;
  }
}

void set_expected(const ExpectedRevision& e, streams::AppendReq::Options* o) {
  set_expected_impl(e, o, &streams::AppendReq::Options::set_revision);
}

void set_expected(const ExpectedRevision& e, streams::BatchAppendReq::Options* o) {
  set_expected_impl(e, o, &streams::BatchAppendReq::Options::set_stream_position);
}

absl::StatusOr<ExpectedRevision> expected_of(const streams::AppendReq::Options& o) {
  using O = streams::AppendReq::Options;
  switch (o.expected_stream_revision_case()) {
    case O::kRevision:
      return ExpectedRevision{StreamRevision{o.revision()}};
    case O::kNoStream:
      return ExpectedRevision{ExpectNoStream{}};
    case O::kAny:
      return ExpectedRevision{ExpectAny{}};
    case O::kStreamExists:
      return ExpectedRevision{ExpectStreamExists{}};
    default:
      return absl::InvalidArgumentError("append options: no expected stream revision");
  }
}

absl::StatusOr<ExpectedRevision> expected_of(const streams::BatchAppendReq::Options& o) {
  using O = streams::BatchAppendReq::Options;
  switch (o.expected_stream_position_case()) {
    case O::kStreamPosition:
      return ExpectedRevision{StreamRevision{o.stream_position()}};
    case O::kNoStream:
      return ExpectedRevision{ExpectNoStream{}};
    case O::kAny:
      return ExpectedRevision{ExpectAny{}};
    case O::kStreamExists:
      return ExpectedRevision{ExpectStreamExists{}};
    default:
      return absl::InvalidArgumentError("batch append options: no expected stream position");
  }
}

pb::WrongExpectedVersion wrong_expected_version(const ExpectedRevision& expected,
                                                const std::optional<StreamRevision>& current) {
  pb::WrongExpectedVersion w;
  if (current) {
    w.set_current_stream_revision(current->value());
  } else {
    w.mutable_current_no_stream();
  }
  if (const auto* r = std::get_if<StreamRevision>(&expected)) {
    w.set_expected_stream_position(r->value());
  } else if (std::holds_alternative<ExpectNoStream>(expected)) {
    w.mutable_expected_no_stream();
  } else if (std::holds_alternative<ExpectAny>(expected)) {
    w.mutable_expected_any();
  } else {
    w.mutable_expected_stream_exists();
  }
  return w;
}

std::optional<StreamRevision> current_of(const pb::WrongExpectedVersion& w) {
  if (w.current_stream_revision_option_case() == pb::WrongExpectedVersion::kCurrentStreamRevision) {
    return StreamRevision{w.current_stream_revision()};
  }
  return std::nullopt;
}

int64_t v2_expected_value(const ExpectedRevision& e) {
  if (const auto* r = std::get_if<StreamRevision>(&e)) return static_cast<int64_t>(r->value());
  if (std::holds_alternative<ExpectNoStream>(e)) return kV2NoStream;
  if (std::holds_alternative<ExpectAny>(e)) return kV2Any;
  return kV2Exists;
}

absl::StatusOr<ExpectedRevision> expected_of_v2(std::optional<int64_t> value) {
  if (!value) return ExpectedRevision{ExpectAny{}};
  const int64_t e = *value;
  if (e == kV2NoStream) return ExpectedRevision{ExpectNoStream{}};
  if (e == kV2Any) return ExpectedRevision{ExpectAny{}};
  if (e == kV2Exists) return ExpectedRevision{ExpectStreamExists{}};
  if (e < 0) return absl::InvalidArgumentError(absl::StrCat("expected_revision ", e, " is not valid"));
  return ExpectedRevision{StreamRevision{static_cast<uint64_t>(e)}};
}

}  // namespace kingest::wire
