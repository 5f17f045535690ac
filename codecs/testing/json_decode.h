// Test support for the JSON codec's tests: decoding through both overloads (in place and copied)
// and checking they agree, expecting an event or an error, and the inputs the tests share.
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "codecs/json_codec.h"
#include "codecs/testing/strict_json.h"

namespace kingest::codecs::json_testing {

using namespace std::string_literals;
using namespace std::string_view_literals;

// A value with the same padding capacity SourceMessage::assign_value gives (parsed in place).
inline std::string padded(std::string_view json) {
  std::string s;
  s.reserve(json.size() + kValuePadding);
  s.assign(json);
  return s;
}

inline bool same_event(const DomainEvent& a, const DomainEvent& b) {
  return a.event_id == b.event_id && a.event_type == b.event_type && a.aggregate_id == b.aggregate_id &&
         a.aggregate_type == b.aggregate_type && a.aggregate_version == b.aggregate_version &&
         a.correlation_id == b.correlation_id && a.causation_id == b.causation_id &&
         a.occurred_at == b.occurred_at && a.payload == b.payload && a.content_type == b.content_type;
}

// Decodes through both overloads (in place and copied) and checks they agree.
inline DecodeResult decode_both(std::string_view json, JsonShape shape = JsonShape::kFlat) {
  DecodeResult in_place = decode_json(padded(json), shape);
  DecodeResult copied = decode_json(json, shape);
  EXPECT_EQ(in_place.index(), copied.index()) << json;
  if (in_place.index() == copied.index()) {
    if (auto* a = std::get_if<DomainEvent>(&in_place)) {
      EXPECT_TRUE(same_event(*a, std::get<DomainEvent>(copied))) << json;
    } else {
      EXPECT_EQ(std::get<DecodeError>(in_place).reason, std::get<DecodeError>(copied).reason) << json;
    }
  }
  return in_place;
}

inline DomainEvent decode_ok(std::string_view json, JsonShape shape = JsonShape::kFlat) {
  DecodeResult r = decode_both(json, shape);
  if (auto* e = std::get_if<DecodeError>(&r)) {
    ADD_FAILURE() << "unexpected decode error: " << e->reason << "\ninput: " << json;
    return {};
  }
  DomainEvent event = std::get<DomainEvent>(std::move(r));
  EXPECT_TRUE(is_valid_json(event.payload)) << event.payload;
  return event;
}

inline std::string decode_err(std::string_view json, JsonShape shape = JsonShape::kFlat) {
  DecodeResult r = decode_both(json, shape);
  if (auto* e = std::get_if<DecodeError>(&r)) {
    EXPECT_FALSE(e->reason.empty());
    return e->reason;
  }
  ADD_FAILURE() << "expected a decode error, got an event with payload " << std::get<DomainEvent>(r).payload
                << "\ninput: " << json;
  return {};
}

// What the seed's NestJS publisher emits (JSON.stringify of a DomainEvent subclass).
inline constexpr std::string_view kSeedFlat =
    R"({"eventId":"0b5e3c1e-2f4a-4d7e-9a51-3c2f8e6d1a77","eventType":"OrderPlaced",)"
    R"("aggregateId":"order-42","aggregateType":"Order","aggregateVersion":3,)"
    R"("correlationId":"corr-1","causationId":"cause-1","occurredOn":"2024-01-02T03:04:05.678Z",)"
    R"("customerId":"c-7","total":129.95,"lines":[{"sku":"A-1","qty":2}],"gift":false,"note":null})";

inline constexpr std::string_view kNested =
    R"({"eventId":"e-1","eventType":"OrderPlaced","aggregateId":"order-42","aggregateType":"Order",)"
    R"("aggregateVersion":3,"occurredOn":"2024-01-02T03:04:05.678Z",)"
    R"("data": { "customerId" : "c-7", "total": 129.95 },"metadata":{"source":"orders-api"}})";

// Builds a minimal valid flat event around `extra` members (",..." appended after the envelope).
inline std::string minimal(std::string_view extra = {}) {
  std::string s = R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":1)";
  s += extra;
  s += '}';
  return s;
}

}  // namespace kingest::codecs::json_testing
