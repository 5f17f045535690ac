// FlatBuffers envelope codec: identifier check, Verifier, then field reads (zero-copy until the
// strings are copied into the DomainEvent).
#include "codecs/flatbuffers_codec.h"

#include "codecs/decode_guard.h"

#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "codecs/binary_envelope.h"
#include "proto/envelope_generated.h"

namespace kingest::codecs {
namespace {

namespace fb = kurrent_ingest::envelope::v1;

// The envelope is a single table of strings and a byte vector; anything deeper is not ours.
constexpr flatbuffers::uoffset_t kMaxDepth = 8;
constexpr flatbuffers::uoffset_t kMaxTables = 16;
// Minimum size of a finished buffer with an identifier: root offset + identifier.
constexpr size_t kHeaderBytes = sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength;
// Thread-local aligned copies larger than this are released at the thread's next call.
constexpr size_t kKeepBytes = size_t{4} << 20;

static_assert(kFlatBuffersIdentifier.size() == flatbuffers::kFileIdentifierLength);

std::vector<uint64_t>& aligned_buffer() {
  thread_local std::vector<uint64_t> buffer;
  return buffer;
}

// Copies a string field into `out`. Absent: an error when required, else `out` stays empty.
template <typename Text>
std::optional<DecodeError> read_string(const flatbuffers::String* s, std::string_view name, bool required,
                                       Text& out) {
  if (s == nullptr) {
    if (required) return detail::missing_field(name);
    return std::nullopt;
  }
  if (required && s->size() == 0) {
    return DecodeError{std::string(name) + ": expected a non-empty string, got an empty string"};
  }
  if (!detail::valid_utf8(std::string_view(s->c_str(), s->size()))) return DecodeError{std::string(name) + ": invalid UTF-8"};
  out.assign(std::string_view(s->c_str(), s->size()));
  return std::nullopt;
}

DecodeResult decode_unguarded(std::string_view bytes) {
  if (bytes.empty()) return DecodeError{"invalid FlatBuffers: empty input"};
  if (bytes.size() > kMaxBinaryEnvelopeBytes) {
    return DecodeError{"invalid FlatBuffers: " + std::to_string(bytes.size()) + " bytes exceed the limit of " +
                       std::to_string(kMaxBinaryEnvelopeBytes)};
  }
  if (bytes.size() < kHeaderBytes) {
    return DecodeError{"invalid FlatBuffers: " + std::to_string(bytes.size()) +
                       " bytes, shorter than a buffer header (8 bytes)"};
  }
  const std::string_view id = bytes.substr(sizeof(flatbuffers::uoffset_t), flatbuffers::kFileIdentifierLength);
  if (id != kFlatBuffersIdentifier) {
    return DecodeError{"invalid FlatBuffers: file identifier \"" + detail::printable(id) + "\", expected \"" +
                       std::string(kFlatBuffersIdentifier) + "\""};
  }

  auto data = reinterpret_cast<const uint8_t*>(bytes.data());
  std::vector<uint64_t>& copy = aligned_buffer();
  if (copy.capacity() * sizeof(uint64_t) > kKeepBytes) std::vector<uint64_t>().swap(copy);
  if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0) {
    copy.resize((bytes.size() + sizeof(uint64_t) - 1) / sizeof(uint64_t));
    std::memcpy(copy.data(), bytes.data(), bytes.size());
    data = reinterpret_cast<const uint8_t*>(copy.data());
  }

  flatbuffers::Verifier verifier(data, bytes.size(), kMaxDepth, kMaxTables);
  if (!fb::VerifyDomainEventEnvelopeFbBuffer(verifier)) {
    return DecodeError{"invalid FlatBuffers: the verifier rejected the " + std::to_string(bytes.size()) +
                       "-byte buffer (truncated, or an offset, length or alignment out of bounds)"};
  }
  const fb::DomainEventEnvelopeFb* env = fb::GetDomainEventEnvelopeFb(data);

  DomainEvent event;
  std::optional<DecodeError> err;
  if ((err = read_string(env->event_type(), "event_type", true, event.event_type)) ||
      (err = read_string(env->aggregate_id(), "aggregate_id", true, event.aggregate_id)) ||
      (err = read_string(env->aggregate_type(), "aggregate_type", true, event.aggregate_type)) ||
      (err = read_string(env->event_id(), "event_id", false, event.event_id)) ||
      (err = read_string(env->correlation_id(), "correlation_id", false, event.correlation_id)) ||
      (err = read_string(env->causation_id(), "causation_id", false, event.causation_id)) ||
      (err = read_string(env->occurred_at(), "occurred_at", false, event.occurred_at))) {
    return std::move(*err);
  }
  std::string content_type;
  if ((err = read_string(env->payload_content_type(), "payload_content_type", false, content_type))) {
    return std::move(*err);
  }
  if (const flatbuffers::Vector<uint8_t>* payload = env->payload()) {
    event.payload.assign(reinterpret_cast<const char*>(payload->data()), payload->size());
  }
  const flatbuffers::Optional<int64_t> version = env->aggregate_version();
  if ((err = detail::finish_binary_event(event, version.has_value(), version.value_or(0), content_type))) {
    return std::move(*err);
  }
  return event;
}

}  // namespace

DecodeResult decode_flatbuffers(std::string_view bytes) {
  return detail::guard_decode([&] { return decode_unguarded(bytes); });
}

std::string encode_flatbuffers(const DomainEvent& event) {
  const size_t estimate = 128 + event.event_id.size() + event.event_type.size() + event.aggregate_id.size() +
                          event.aggregate_type.size() + event.correlation_id.size() + event.causation_id.size() +
                          event.occurred_at.size() + event.payload.size() + event.content_type.size();
  flatbuffers::FlatBufferBuilder fbb(estimate);
  auto string = [&fbb](std::string_view s) { return fbb.CreateString(s.data(), s.size()); };
  auto optional_string = [&string](std::string_view s) {
    return s.empty() ? flatbuffers::Offset<flatbuffers::String>() : string(s);
  };
  const auto event_id = optional_string(event.event_id);
  const auto event_type = string(event.event_type);
  const auto aggregate_id = string(event.aggregate_id);
  const auto aggregate_type = string(event.aggregate_type);
  const auto correlation_id = optional_string(event.correlation_id);
  const auto causation_id = optional_string(event.causation_id);
  const auto occurred_at = optional_string(event.occurred_at);
  const auto payload =
      event.payload.empty()
          ? flatbuffers::Offset<flatbuffers::Vector<uint8_t>>()
          : fbb.CreateVector(reinterpret_cast<const uint8_t*>(event.payload.data()), event.payload.size());
  const auto content_type = optional_string(event.content_type);
  fb::DomainEventEnvelopeFbBuilder b(fbb);
  b.add_event_id(event_id);
  b.add_event_type(event_type);
  b.add_aggregate_id(aggregate_id);
  b.add_aggregate_type(aggregate_type);
  b.add_aggregate_version(event.aggregate_version);
  b.add_correlation_id(correlation_id);
  b.add_causation_id(causation_id);
  b.add_occurred_at(occurred_at);
  b.add_payload(payload);
  b.add_payload_content_type(content_type);
  fb::FinishDomainEventEnvelopeFbBuffer(fbb, b.Finish());
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

}  // namespace kingest::codecs
