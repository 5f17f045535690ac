// Shared by the fuzz targets: a CHECK that aborts (libFuzzer saves the input as a crash), and the
// properties every decoded event must have whatever codec produced it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "codecs/codec.h"

#define FUZZ_CHECK(cond, ...)                                                   \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                        \
      std::fprintf(stderr, "\n");                                               \
      std::abort();                                                             \
    }                                                                           \
  } while (0)

namespace kingest::fuzz {

inline bool same(const DomainEvent& a, const DomainEvent& b) {
  return a.event_id == b.event_id && a.event_type == b.event_type && a.aggregate_id == b.aggregate_id &&
         a.aggregate_type == b.aggregate_type && a.aggregate_version == b.aggregate_version &&
         a.correlation_id == b.correlation_id && a.causation_id == b.causation_id &&
         a.occurred_at == b.occurred_at && a.payload == b.payload && a.content_type == b.content_type;
}

// Through the JSON envelope a JSON payload is a JSON value: whitespace around it (which a protobuf
// or FlatBuffers envelope carries byte for byte) is not part of it.
inline bool same_through_json(const DomainEvent& a, const DomainEvent& b) {
  auto trimmed = [](std::string_view s) {
    const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && ws(s.back())) s.remove_suffix(1);
    return s;
  };
  DomainEvent x = a;
  DomainEvent y = b;
  x.payload = std::string(trimmed(a.payload));
  y.payload = std::string(trimmed(b.payload));
  return same(x, y);
}

inline bool same(const codecs::DecodeResult& a, const codecs::DecodeResult& b) {
  if (a.index() != b.index()) return false;
  if (auto* e = std::get_if<DomainEvent>(&a)) return same(*e, std::get<DomainEvent>(b));
  return std::get<DecodeError>(a).reason == std::get<DecodeError>(b).reason;
}

inline void check_reason(const DecodeError& e) {
  FUZZ_CHECK(!e.reason.empty(), "empty reason");
  FUZZ_CHECK(e.reason.find('\n') == std::string::npos, "reason spans lines: %s", e.reason.c_str());
}

// Invariants of any decoded event, and round trips through every encoder that can carry it:
// whatever decodes must re-encode to the same event in each format.
inline void check_event(const DomainEvent& e) {
  FUZZ_CHECK(!e.event_type.empty() && !e.aggregate_id.empty() && !e.aggregate_type.empty(), "required field empty");
  FUZZ_CHECK(e.aggregate_version >= 0, "negative version");
  FUZZ_CHECK(!e.content_type.empty(), "no content type");
  const bool json = e.content_type == "application/json";
  if (json) {
    const auto problem = codecs::check_json_object(e.payload);
    FUZZ_CHECK(!problem, "JSON payload is not a JSON object: %s", problem->c_str());
    const codecs::DecodeResult via_json = codecs::decode_json(codecs::encode_json(e, codecs::JsonShape::kNested), codecs::JsonShape::kNested);
    FUZZ_CHECK(std::holds_alternative<DomainEvent>(via_json), "JSON round trip failed: %s",
               std::get<DecodeError>(via_json).reason.c_str());
    FUZZ_CHECK(same_through_json(std::get<DomainEvent>(via_json), e), "JSON round trip changed the event");
  }
  const codecs::DecodeResult via_pb = codecs::decode_protobuf(codecs::encode_protobuf(e));
  FUZZ_CHECK(std::holds_alternative<DomainEvent>(via_pb), "protobuf round trip failed: %s",
             std::get<DecodeError>(via_pb).reason.c_str());
  FUZZ_CHECK(same(std::get<DomainEvent>(via_pb), e), "protobuf round trip changed the event");
  const codecs::DecodeResult via_fb = codecs::decode_flatbuffers(codecs::encode_flatbuffers(e));
  FUZZ_CHECK(std::holds_alternative<DomainEvent>(via_fb), "FlatBuffers round trip failed: %s",
             std::get<DecodeError>(via_fb).reason.c_str());
  FUZZ_CHECK(same(std::get<DomainEvent>(via_fb), e), "FlatBuffers round trip changed the event");
}

inline void check_result(const codecs::DecodeResult& r) {
  if (auto* e = std::get_if<DomainEvent>(&r)) {
    check_event(*e);
  } else {
    check_reason(std::get<DecodeError>(r));
  }
}

}  // namespace kingest::fuzz
