// Protobuf envelope codec. Parsing uses the generated code (ParseFromArray) of the wire twin
// proto/internal/envelope_unchecked.proto (`bytes` where envelope.proto has `string`, so protobuf
// neither checks UTF-8 nor logs to stderr) on a thread-local message that is reused; decoded
// strings are swapped out of it rather than copied, then checked for UTF-8 (detail::valid_utf8). When a
// parse fails, a small wire-format walk (WireExplainer) finds the reason; it runs only on that path.
#include "codecs/protobuf_codec.h"

#include "codecs/decode_guard.h"

#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <utility>

#include "codecs/binary_envelope.h"
#include "proto/internal/envelope_unchecked.pb.h"

namespace kingest::codecs {
namespace {

using Envelope = kurrent_ingest::envelope::v1::internal::DomainEventEnvelopeUnchecked;

// Protobuf's own default recursion limit; only groups in unknown fields can nest.
constexpr int kMaxGroupDepth = 100;

Envelope& thread_envelope() {
  thread_local Envelope envelope;
  return envelope;
}

const char* field_name(uint64_t number) {
  switch (number) {
    case 1: return "event_id";
    case 2: return "event_type";
    case 3: return "aggregate_id";
    case 4: return "aggregate_type";
    case 5: return "aggregate_version";
    case 6: return "correlation_id";
    case 7: return "causation_id";
    case 8: return "occurred_at";
    case 9: return "payload";
    case 10: return "payload_content_type";
    default: return nullptr;
  }
}

// Walks protobuf wire format to say why ParseFromArray refused `bytes`. Mirrors what the generated
// parser checks: tags, varints, lengths and groups (in unknown fields).
class WireExplainer {
 public:
  explicit WireExplainer(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), n_(bytes.size()) {}

  std::string explain() {
    std::string why = fields(0, 0);
    if (why.empty()) why = "not a valid DomainEventEnvelope message";
    return "invalid protobuf: " + why;
  }

 private:
  // Reads fields until the end (depth 0) or the end-group tag of `group` (depth > 0). Returns a
  // reason, or "" when everything parsed.
  std::string fields(int depth, uint64_t group) {
    while (i_ < n_) {
      const size_t at = i_;
      uint64_t tag = 0;
      if (!varint(tag) || tag > UINT32_MAX) return "malformed field tag at byte " + std::to_string(at);
      const uint64_t number = tag >> 3;
      const auto wire = static_cast<unsigned>(tag & 7);
      if (number == 0) return "field number 0 at byte " + std::to_string(at);
      const std::string where = "field " + describe(number, depth) + " at byte " + std::to_string(at);
      switch (wire) {
        case 0: {
          uint64_t v = 0;
          if (!varint(v)) return "truncated or malformed varint in " + where;
          break;
        }
        case 1:
          if (n_ - i_ < 8) return "truncated 64-bit value in " + where;
          i_ += 8;
          break;
        case 5:
          if (n_ - i_ < 4) return "truncated 32-bit value in " + where;
          i_ += 4;
          break;
        case 2: {
          uint64_t len = 0;
          if (!varint(len)) return "truncated or malformed length in " + where;
          if (len > n_ - i_) {
            return "length " + std::to_string(len) + " beyond the end of the input (" + std::to_string(n_ - i_) +
                   " bytes left) in " + where;
          }
          i_ += len;
          break;
        }
        case 3: {
          if (depth + 1 >= kMaxGroupDepth) return "groups nested too deeply at byte " + std::to_string(at);
          std::string why = fields(depth + 1, number);
          if (!why.empty()) return why;
          break;
        }
        case 4:
          if (depth > 0 && number == group) return {};
          return "unexpected end-group tag at byte " + std::to_string(at);
        default:
          return "invalid wire type " + std::to_string(wire) + " in " + where;
      }
    }
    if (depth > 0) return "group " + std::to_string(group) + " not closed before the end of the input";
    return {};
  }

  static std::string describe(uint64_t number, int depth) {
    const char* name = depth == 0 ? field_name(number) : nullptr;
    std::string out = std::to_string(number);
    if (name) out = std::string(name) + " (" + out + ")";
    return out;
  }

  bool varint(uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 70; shift += 7) {  // at most 10 bytes
      if (i_ >= n_) return false;
      const uint8_t b = p_[i_++];
      out |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }

  const uint8_t* p_;
  size_t n_;
  size_t i_ = 0;
};

DecodeResult decode_unguarded(std::string_view bytes) {
  if (bytes.empty()) return DecodeError{"invalid protobuf: empty input"};
  if (bytes.size() > kMaxBinaryEnvelopeBytes) {
    return DecodeError{"invalid protobuf: " + std::to_string(bytes.size()) + " bytes exceed the limit of " +
                       std::to_string(kMaxBinaryEnvelopeBytes)};
  }
  Envelope& msg = thread_envelope();
  if (!msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    // Drop what the failed parse left, capacity included (Clear() would keep string buffers).
    Envelope().Swap(&msg);
    return DecodeError{WireExplainer(bytes).explain()};
  }
  DomainEvent event;
  // The short texts are copied into the event; the payload's buffer is swapped over without copying.
  event.event_id = msg.event_id();
  event.event_type = msg.event_type();
  event.aggregate_id = msg.aggregate_id();
  event.aggregate_type = msg.aggregate_type();
  event.correlation_id = msg.correlation_id();
  event.causation_id = msg.causation_id();
  event.occurred_at = msg.occurred_at();
  event.payload.swap(*msg.mutable_payload());
  const bool has_version = msg.has_aggregate_version();
  const int64_t version = msg.aggregate_version();
  std::string content_type;
  content_type.swap(*msg.mutable_payload_content_type());
  // The message keeps no large buffer now (its short strings are left as parsed, and any unknown
  // fields until the next parse clears them).
  // What protobuf checks for `string` fields, with the field named.
  for (const auto& [value, name] : {std::pair<std::string_view, const char*>{event.event_type, "event_type"},
                                    {event.aggregate_id, "aggregate_id"},
                                    {event.aggregate_type, "aggregate_type"},
                                    {event.event_id, "event_id"},
                                    {event.correlation_id, "correlation_id"},
                                    {event.causation_id, "causation_id"},
                                    {event.occurred_at, "occurred_at"},
                                    {content_type, "payload_content_type"}}) {
    if (!detail::valid_utf8(value)) {
      return DecodeError{std::string(name) + ": invalid UTF-8"};
    }
  }
  if (std::optional<DecodeError> err = detail::finish_binary_event(event, has_version, version, content_type)) {
    return std::move(*err);
  }
  return event;
}

}  // namespace

DecodeResult decode_protobuf(std::string_view bytes) {
  return detail::guard_decode([&] { return decode_unguarded(bytes); });
}

std::string encode_protobuf(const DomainEvent& event) {
  Envelope msg;
  if (!event.event_id.empty()) msg.set_event_id(event.event_id.str());
  msg.set_event_type(event.event_type.str());
  msg.set_aggregate_id(event.aggregate_id.str());
  msg.set_aggregate_type(event.aggregate_type.str());
  msg.set_aggregate_version(event.aggregate_version);
  if (!event.correlation_id.empty()) msg.set_correlation_id(event.correlation_id.str());
  if (!event.causation_id.empty()) msg.set_causation_id(event.causation_id.str());
  if (!event.occurred_at.empty()) msg.set_occurred_at(event.occurred_at.str());
  if (!event.payload.empty()) msg.set_payload(event.payload);
  if (!event.content_type.empty()) msg.set_payload_content_type(event.content_type.str());
  return msg.SerializeAsString();
}

}  // namespace kingest::codecs
