// Encoding events in both shapes, and round trips through decode and encode.
#include "codecs/testing/json_decode.h"

namespace kingest::codecs::json_testing {
namespace {

DomainEvent full_event() {
  DomainEvent e;
  e.event_id = "0b5e3c1e-2f4a-4d7e-9a51-3c2f8e6d1a77";
  e.event_type = "OrderPlaced";
  e.aggregate_id = "注文-42";
  e.aggregate_type = "Order";
  e.aggregate_version = 12;
  e.correlation_id = "corr \"quoted\"";
  e.causation_id = "cause-1";
  e.occurred_at = "2024-01-02T03:04:05.678Z";
  e.payload = R"({"total":123456789012345678901234567890,"name":"Caf\u00e9","tags":["a","b"],"nested":{"x":null}})";
  return e;
}

TEST(JsonCodecEncode, FlatMergesPayloadMembersVerbatim) {
  EXPECT_EQ(encode_json(full_event()),
            R"({"eventId":"0b5e3c1e-2f4a-4d7e-9a51-3c2f8e6d1a77","eventType":"OrderPlaced",)"
            R"("aggregateId":"注文-42","aggregateType":"Order","aggregateVersion":12,)"
            R"("correlationId":"corr \"quoted\"","causationId":"cause-1","occurredOn":"2024-01-02T03:04:05.678Z",)"
            R"("total":123456789012345678901234567890,"name":"Caf\u00e9","tags":["a","b"],"nested":{"x":null}})");
}

TEST(JsonCodecEncode, NestedPutsPayloadUnderData) {
  DomainEvent e = full_event();
  e.event_id.clear();
  e.correlation_id.clear();
  e.causation_id.clear();
  e.occurred_at.clear();
  EXPECT_EQ(encode_json(e, JsonShape::kNested),
            R"({"eventType":"OrderPlaced","aggregateId":"注文-42","aggregateType":"Order","aggregateVersion":12,)"
            R"("data":{"total":123456789012345678901234567890,"name":"Caf\u00e9","tags":["a","b"],"nested":{"x":null}}})");
}

TEST(JsonCodecEncode, EmptyAndNonObjectPayloads) {
  DomainEvent e;
  e.event_type = "T";
  e.aggregate_id = "a";
  e.aggregate_type = "A";
  e.aggregate_version = 0;
  e.payload = "";
  EXPECT_EQ(encode_json(e), R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":0})");
  EXPECT_EQ(encode_json(e, JsonShape::kNested),
            R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":0,"data":{}})");
  e.payload = " { } ";
  EXPECT_EQ(encode_json(e), R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":0})");
  e.payload = "[1,2]";
  EXPECT_EQ(encode_json(e),
            R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":0,"data":"[1,2]"})");
  EXPECT_TRUE(is_valid_json(encode_json(e, JsonShape::kNested)));
}

TEST(JsonCodecEncode, RoundTripBothShapes) {
  for (JsonShape shape : {JsonShape::kFlat, JsonShape::kNested}) {
    const DomainEvent original = full_event();
    const std::string json = encode_json(original, shape);
    ASSERT_TRUE(is_valid_json(json)) << json;
    DomainEvent back = decode_ok(json, shape);
    EXPECT_TRUE(same_event(original, back)) << json << "\n-> " << back.payload;

    DomainEvent minimal_event;
    minimal_event.event_type = "Ping";
    minimal_event.aggregate_id = "p";
    minimal_event.aggregate_type = "Pinger";
    minimal_event.aggregate_version = INT64_MAX;
    minimal_event.payload = "{}";
    DomainEvent minimal_back = decode_ok(encode_json(minimal_event, shape), shape);
    EXPECT_TRUE(same_event(minimal_event, minimal_back)) << encode_json(minimal_event, shape);
  }
}

TEST(JsonCodecEncode, RoundTripOfSeedInputIsStable) {
  DomainEvent first = decode_ok(kSeedFlat);
  EXPECT_EQ(encode_json(first), kSeedFlat);
  DomainEvent nested = decode_ok(kNested, JsonShape::kNested);
  DomainEvent again = decode_ok(encode_json(nested, JsonShape::kNested), JsonShape::kNested);
  EXPECT_TRUE(same_event(nested, again));
}

TEST(JsonCodecEncode, InvalidUtf8InEnvelopeStillEncodesValidJson) {
  DomainEvent e = full_event();
  e.event_type = "bad\xFF";
  const std::string json = encode_json(e);
  EXPECT_TRUE(is_valid_json(json)) << json;
  EXPECT_EQ(decode_ok(json).event_type, "bad\xEF\xBF\xBD");
}

}  // namespace
}  // namespace kingest::codecs::json_testing
