#include "proto/kurrentdb/wire.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <variant>

#include "absl/strings/str_cat.h"
#include "core/json_writer.h"

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

// The expected revision an Append or a BatchAppend request's options carry (`which`); the exact
// one is `exact_case` with value `exact` (the two requests name that field differently).
template <typename Options, typename Case>
absl::StatusOr<ExpectedRevision> expected_of_impl(Case which, Case exact_case, uint64_t exact, const char* missing) {
  if (which == exact_case) return ExpectedRevision{StreamRevision{exact}};
  switch (which) {
    case Options::kNoStream:
      return ExpectedRevision{ExpectNoStream{}};
    case Options::kAny:
      return ExpectedRevision{ExpectAny{}};
    case Options::kStreamExists:
      return ExpectedRevision{ExpectStreamExists{}};
    default:
      return absl::InvalidArgumentError(missing);
  }
}

bool value_of(simdjson::dom::element e, google::protobuf::Value* out);

bool fields_of(simdjson::dom::object o, Properties* out) {
  for (auto field : o) {
    if (!value_of(field.value, &(*out)[std::string(field.key)])) return false;
  }
  return true;
}

bool value_of(simdjson::dom::element e, google::protobuf::Value* out) {
  using T = simdjson::dom::element_type;
  switch (e.type()) {
    case T::OBJECT: {
      simdjson::dom::object o;
      return e.get(o) == simdjson::SUCCESS && fields_of(o, out->mutable_struct_value()->mutable_fields());
    }
    case T::ARRAY: {
      simdjson::dom::array a;
      if (e.get(a) != simdjson::SUCCESS) return false;
      auto* list = out->mutable_list_value();
      for (simdjson::dom::element item : a) {
        if (!value_of(item, list->add_values())) return false;
      }
      return true;
    }
    case T::STRING: {
      std::string_view text;
      if (e.get(text) != simdjson::SUCCESS) return false;
      out->set_string_value(std::string(text));
      return true;
    }
    case T::INT64: {
      int64_t n = 0;
      if (e.get(n) != simdjson::SUCCESS) return false;
      out->set_number_value(static_cast<double>(n));
      return true;
    }
    case T::UINT64: {
      uint64_t n = 0;
      if (e.get(n) != simdjson::SUCCESS) return false;
      out->set_number_value(static_cast<double>(n));
      return true;
    }
    case T::DOUBLE: {
      double d = 0;
      if (e.get(d) != simdjson::SUCCESS) return false;
      out->set_number_value(d);
      return true;
    }
    case T::BOOL: {
      bool b = false;
      if (e.get(b) != simdjson::SUCCESS) return false;
      out->set_bool_value(b);
      return true;
    }
    case T::NULL_VALUE:
      out->set_null_value(google::protobuf::NULL_VALUE);
      return true;
  }
  return false;
}

bool write_value(const google::protobuf::Value& v, JsonWriter& w);

bool write_fields(const Properties& fields, JsonWriter& w) {
  w.begin_object();
  for (const auto& [k, v] : fields) {
    w.key(k);
    if (!write_value(v, w)) return false;
  }
  w.end_object();
  return true;
}

bool write_value(const google::protobuf::Value& v, JsonWriter& w) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kNumberValue: {
      std::string text;
      if (!append_json_number(v.number_value(), &text)) return false;
      w.raw(text);
      return true;
    }
    case google::protobuf::Value::kStringValue:
      w.value(std::string_view(v.string_value()));
      return true;
    case google::protobuf::Value::kBoolValue:
      w.value(v.bool_value());
      return true;
    case google::protobuf::Value::kStructValue:
      return write_fields(v.struct_value().fields(), w);
    case google::protobuf::Value::kListValue:
      w.begin_array();
      for (const auto& item : v.list_value().values()) {
        if (!write_value(item, w)) return false;
      }
      w.end_array();
      return true;
    default:  // null, or no kind set (protobuf's mapping prints null too)
      w.null();
      return true;
  }
}

}  // namespace

bool properties_from_json(std::string_view json, Properties* out) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) return false;
  simdjson::dom::object o;
  if (root.get_object().get(o) != simdjson::SUCCESS) return false;
  return fields_of(o, out);
}

char* write_json_number(double d, char* at) {
  if (!std::isfinite(d)) return nullptr;
  // Integral values print as integers (2^53 and below are exact), the rest shortest round-trip.
  if (std::abs(d) <= 9007199254740992.0 && d == std::trunc(d)) {
    return std::to_chars(at, at + kMaxJsonNumber, static_cast<int64_t>(d)).ptr;
  }
  return std::to_chars(at, at + kMaxJsonNumber, d).ptr;
}

bool append_json_number(double d, std::string* out) {
  char buf[kMaxJsonNumber];
  char* end = write_json_number(d, buf);
  if (end == nullptr) return false;
  out->append(buf, size_t(end - buf));
  return true;
}

absl::StatusOr<std::string> properties_to_json(
    const Properties& props, std::initializer_list<std::pair<std::string_view, std::string_view>> extra) {
  JsonWriter w;
  w.begin_object();
  for (const auto& [k, v] : props) {
    bool replaced = false;
    for (const auto& e : extra) replaced |= e.first == k;
    if (replaced) continue;
    w.key(k);
    if (!write_value(v, w)) return absl::InvalidArgumentError("record properties cannot be written as JSON");
  }
  for (const auto& [k, v] : extra) w.key(k).value(v);
  w.end_object();
  return w.take();
}

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
  return expected_of_impl<O>(o.expected_stream_revision_case(), O::kRevision, o.revision(),
                             "append options: no expected stream revision");
}

absl::StatusOr<ExpectedRevision> expected_of(const streams::BatchAppendReq::Options& o) {
  using O = streams::BatchAppendReq::Options;
  return expected_of_impl<O>(o.expected_stream_position_case(), O::kStreamPosition, o.stream_position(),
                             "batch append options: no expected stream position");
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
