// libFuzzer target: decode_protobuf on arbitrary bytes. Besides fuzz_check.h's invariants and
// round trips, the decoder (which parses the `bytes` twin, proto/internal/) is checked against
// the public `string` schema parsed by protobuf itself: what protobuf accepts we accept with the
// same field values, and what we reject as malformed or invalid UTF-8 protobuf rejects too. (One
// difference is allowed: protobuf rejects invalid UTF-8 in an earlier value of a field that a
// later value overrides; we only see, and check, the value that counts.)
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "proto/envelope.pb.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // the public message logs invalid UTF-8; not ours to see
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kingest;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const codecs::DecodeResult r = codecs::decode_protobuf(input);
  fuzz::check_result(r);

  kurrent_ingest::envelope::v1::DomainEventEnvelope reference;
  const bool reference_ok = reference.ParseFromArray(data, static_cast<int>(size));
  if (auto* e = std::get_if<DomainEvent>(&r)) {
    if (!reference_ok) return 0;
    FUZZ_CHECK(e->event_type == reference.event_type() && e->aggregate_id == reference.aggregate_id() &&
                   e->aggregate_type == reference.aggregate_type() && e->event_id == reference.event_id() &&
                   e->correlation_id == reference.correlation_id() && e->causation_id == reference.causation_id() &&
                   e->occurred_at == reference.occurred_at() && reference.has_aggregate_version() &&
                   e->aggregate_version == reference.aggregate_version(),
               "fields differ from protobuf's own parse");
    FUZZ_CHECK(e->payload == reference.payload() || (reference.payload().empty() && e->payload == "{}"),
               "payload differs from protobuf's own parse");
  } else {
    const std::string& reason = std::get<DecodeError>(r).reason;
    const bool wire_or_utf8 = reason.rfind("invalid protobuf: ", 0) == 0 ||
                              reason.find(": invalid UTF-8") != std::string::npos;
    FUZZ_CHECK(!(wire_or_utf8 && reference_ok && size > 0), "protobuf's own parser accepts what we call malformed: %s",
               reason.c_str());
  }
  return 0;
}
