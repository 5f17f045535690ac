// Decoding valid events: the flat and nested shapes, time fields, Unicode and numbers, parsing in
// place with or without padding, and concurrent decoders.
#include "codecs/testing/json_decode.h"

namespace kingest::codecs::json_testing {
namespace {

// ---------------------------------------------------------------------------------------------
// Shapes

TEST(JsonCodecDecode, FlatSeedShape) {
  DomainEvent e = decode_ok(kSeedFlat);
  EXPECT_EQ(e.event_id, "0b5e3c1e-2f4a-4d7e-9a51-3c2f8e6d1a77");
  EXPECT_EQ(e.event_type, "OrderPlaced");
  EXPECT_EQ(e.aggregate_id, "order-42");
  EXPECT_EQ(e.aggregate_type, "Order");
  EXPECT_EQ(e.aggregate_version, 3);
  EXPECT_EQ(e.correlation_id, "corr-1");
  EXPECT_EQ(e.causation_id, "cause-1");
  EXPECT_EQ(e.occurred_at, "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(e.payload,
            R"({"customerId":"c-7","total":129.95,"lines":[{"sku":"A-1","qty":2}],"gift":false,"note":null})");
  EXPECT_EQ(e.content_type, "application/json");
}

TEST(JsonCodecDecode, NestedShapeTakesDataVerbatimAndIgnoresMetadata) {
  DomainEvent e = decode_ok(kNested, JsonShape::kNested);
  EXPECT_EQ(e.event_id, "e-1");
  EXPECT_EQ(e.event_type, "OrderPlaced");
  EXPECT_EQ(e.aggregate_version, 3);
  EXPECT_EQ(e.payload, R"({ "customerId" : "c-7", "total": 129.95 })");
}

TEST(JsonCodecDecode, NestedShapeWithoutMetadataAndDataFirst) {
  DomainEvent e = decode_ok(
      R"({"data":{"x":[1,2]},"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":0})",
      JsonShape::kNested);
  EXPECT_EQ(e.payload, R"({"x":[1,2]})");
  EXPECT_EQ(e.aggregate_version, 0);
}

TEST(JsonCodecDecode, NestedWithEmptyDataObject) {
  EXPECT_EQ(decode_ok(minimal(R"(,"data":{})"), JsonShape::kNested).payload, "{}");
}

TEST(JsonCodecDecode, FlatNeverReshapesASingleDataField) {
  // The published object minus the envelope, always: a lone `data` member is payload.
  EXPECT_EQ(decode_ok(kNested).payload,
            R"({"data": { "customerId" : "c-7", "total": 129.95 },"metadata":{"source":"orders-api"}})");
  EXPECT_EQ(decode_ok(minimal(R"(,"data":{"x":1})")).payload, R"({"data":{"x":1}})");
}

TEST(JsonCodecDecode, NestedShapeRefusesWhatItWouldDrop) {
  EXPECT_EQ(decode_err(minimal(R"(,"data":{"x":1},"other":2)"), JsonShape::kNested),
            "nested shape: unexpected top-level field \"other\" (the payload goes under \"data\"; the json codec "
            "takes the flat shape)");
  EXPECT_EQ(decode_err(minimal(R"(,"occurredOn":"t","timestamp":1,"data":{})"), JsonShape::kNested),
            "nested shape: unexpected top-level field \"timestamp\" (the payload goes under \"data\"; the json "
            "codec takes the flat shape)");
  EXPECT_EQ(decode_err(minimal(R"(,"data":[1])"), JsonShape::kNested), "nested shape: \"data\" is not a JSON object");
  EXPECT_EQ(decode_err(minimal(), JsonShape::kNested), "nested shape: missing \"data\" object");
  EXPECT_EQ(decode_err(minimal(R"(,"data":{},"data":{})"), JsonShape::kNested),
            "nested shape: unexpected top-level field \"data\" (the payload goes under \"data\"; the json codec "
            "takes the flat shape)");
}

TEST(JsonCodecDecode, DataBesideOtherPayloadFieldsStaysFlat) {
  DomainEvent e = decode_ok(minimal(R"(,"data":{"x":1},"other":2)"));
  EXPECT_EQ(e.payload, R"({"data":{"x":1},"other":2})");
  e = decode_ok(minimal(R"(,"other":2,"data":{"x":1},"metadata":{"m":1})"));
  EXPECT_EQ(e.payload, R"({"other":2,"data":{"x":1},"metadata":{"m":1}})");
}

TEST(JsonCodecDecode, DataThatIsNotAnObjectStaysFlat) {
  EXPECT_EQ(decode_ok(minimal(R"(,"data":[1,2])")).payload, R"({"data":[1,2]})");
  EXPECT_EQ(decode_ok(minimal(R"(,"data":"text")")).payload, R"({"data":"text"})");
  EXPECT_EQ(decode_ok(minimal(R"(,"data":null,"metadata":{})")).payload, R"({"data":null,"metadata":{}})");
}

TEST(JsonCodecDecode, RepeatedDataIsFlat) {
  EXPECT_EQ(decode_ok(minimal(R"(,"data":{"a":1},"data":{"b":2})")).payload, R"({"data":{"a":1},"data":{"b":2}})");
}

TEST(JsonCodecDecode, MetadataWithoutDataIsPayload) {
  EXPECT_EQ(decode_ok(minimal(R"(,"metadata":{"m":1})")).payload, R"({"metadata":{"m":1}})");
}

TEST(JsonCodecDecode, NoPayloadFieldsGivesEmptyObject) {
  DomainEvent e = decode_ok(minimal());
  EXPECT_EQ(e.payload, "{}");
  EXPECT_EQ(e.event_id, "");
  EXPECT_EQ(e.correlation_id, "");
  EXPECT_EQ(e.causation_id, "");
  EXPECT_EQ(e.occurred_at, "");
}

TEST(JsonCodecDecode, WhitespaceEverywhereAndMemberTextVerbatim) {
  DomainEvent e = decode_ok(
      " \n{ \"eventType\" : \"T\" ,\n\t\"a\" :  [ 1 , {\"b\" : 2 } ] ,\"aggregateId\":\"a\",\r\n"
      "\"aggregateType\":\"A\", \"aggregateVersion\" : 7 , \"c\"\t:\t\"d\" \n}\n ");
  EXPECT_EQ(e.payload, "{\"a\" :  [ 1 , {\"b\" : 2 } ],\"c\"\t:\t\"d\"}");
  EXPECT_EQ(e.aggregate_version, 7);
}

TEST(JsonCodecDecode, PayloadKeysKeptVerbatimIncludingEscapes) {
  EXPECT_EQ(decode_ok(minimal(R"(,"k\u00e9y":1,"q\"uote":2)")).payload, R"({"k\u00e9y":1,"q\"uote":2})");
}

TEST(JsonCodecDecode, EscapedEnvelopeKeyIsTheEnvelopeField) {
  DomainEvent e = decode_ok(
      R"({"event\u0054ype":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":1})");
  EXPECT_EQ(e.event_type, "T");
  EXPECT_EQ(e.payload, "{}");
}

TEST(JsonCodecDecode, AnEscapeAnywhereInAnEnvelopeKeyIsRead) {
  // Keys of 9 to 16 bytes, read with one compare of sixteen: the escape at every place.
  for (const std::string key : {"eventType", "aggregateId", "aggregateType", "aggregateVersion"}) {
    for (size_t at = 0; at < key.size(); ++at) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\u%04x", static_cast<unsigned>(key[at]));
      std::string escaped = key;
      escaped.replace(at, 1, hex);
      std::string json = R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":1})";
      json.replace(json.find(key), key.size(), escaped);
      const DomainEvent e = decode_ok(json);
      ASSERT_EQ(e.payload, "{}") << escaped;
      ASSERT_EQ(e.event_type, "T") << escaped;
      ASSERT_EQ(e.aggregate_version, 1) << escaped;
    }
  }
}

TEST(JsonCodecDecode, AnEscapeAnywhereInAnEnvelopeStringOrKeyIsRead) {
  // Every length around the eight-byte words the escape check reads, the escape at every place.
  for (size_t n = 1; n <= 80; ++n) {
    for (size_t at = 0; at < n; ++at) {
      std::string raw(n, 'a');
      std::string escaped = raw;
      raw[at] = 'b';
      escaped.replace(at, 1, "\\u0062");
      DomainEvent e = decode_ok(R"({"eventType":")" + escaped + R"(","aggregateId":"a","aggregateType":"A",)" +
                                R"("aggregateVersion":1,")" + escaped + R"(":1})");
      ASSERT_EQ(e.event_type, raw) << n << " " << at;
      ASSERT_EQ(e.payload, "{\"" + escaped + "\":1}") << n << " " << at;
    }
    // None, and bytes one bit away from a backslash: the text as it is.
    const std::string plain(n, '\x5d');
    EXPECT_EQ(decode_ok(R"({"eventType":")" + plain + R"(","aggregateId":"a","aggregateType":"A","aggregateVersion":1})")
                  .event_type,
              plain);
  }
}

// ---------------------------------------------------------------------------------------------
// Time

TEST(JsonCodecDecode, TimeStringKeptVerbatim) {
  EXPECT_EQ(decode_ok(minimal(R"(,"occurredOn":"2024-01-02T03:04:05+01:00")")).occurred_at,
            "2024-01-02T03:04:05+01:00");
  EXPECT_EQ(decode_ok(minimal(R"(,"timestamp":"yesterday")")).occurred_at, "yesterday");
}

TEST(JsonCodecDecode, NumericEpochMillisRenderedAsIso8601) {
  EXPECT_EQ(decode_ok(minimal(R"(,"occurredOn":1704164645678)")).occurred_at, "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(decode_ok(minimal(R"(,"occurredAt":0)")).occurred_at, "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(decode_ok(minimal(R"(,"timestamp":-1)")).occurred_at, "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(decode_ok(minimal(R"(,"timestamp":1704164645678.9)")).occurred_at, "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(decode_ok(minimal(R"(,"timestamp":1.7041646456e12)")).occurred_at, "2024-01-02T03:04:05.600Z");
  EXPECT_EQ(decode_ok(minimal(R"(,"occurredOn":253402300799999)")).occurred_at, "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(decode_ok(minimal(R"(,"occurredOn":-62167219200000)")).occurred_at, "0000-01-01T00:00:00.000Z");
  EXPECT_EQ(decode_err(minimal(R"(,"occurredOn":253402300800000)")),
            "occurredOn: epoch milliseconds out of range (years 0000-9999): 253402300800000");
}

TEST(JsonCodecDecode, TimePrecedenceIsOccurredOnThenOccurredAtThenTimestamp) {
  EXPECT_EQ(decode_ok(minimal(R"(,"timestamp":"ts","occurredAt":"at","occurredOn":"on")")).occurred_at, "on");
  EXPECT_EQ(decode_ok(minimal(R"(,"timestamp":"ts","occurredAt":"at")")).occurred_at, "at");
  EXPECT_EQ(decode_ok(minimal(R"(,"timestamp":0,"occurredOn":null)")).occurred_at, "1970-01-01T00:00:00.000Z");
  // Only the envelope's time leaves the payload; the other time-named members stay, untouched.
  EXPECT_EQ(decode_ok(minimal(R"(,"timestamp":"ts","occurredAt":"at","p":1)")).payload, R"({"timestamp":"ts","p":1})");
  EXPECT_EQ(decode_ok(minimal(R"(,"occurredOn":"on","timestamp":1700000000000)")).payload,
            R"({"timestamp":1700000000000})");
  EXPECT_EQ(decode_ok(minimal(R"(,"timestamp":0,"occurredOn":null)")).payload, R"({"occurredOn":null})");
  // A member that is not the time is not judged as one.
  EXPECT_EQ(decode_ok(minimal(R"(,"occurredOn":"on","timestamp":true,"occurredAt":{"tz":"Z"})")).payload,
            R"({"timestamp":true,"occurredAt":{"tz":"Z"}})");
  EXPECT_EQ(decode_ok(minimal(R"(,"occurredOn":"on","timestamp":1e300)")).payload, R"({"timestamp":1e300})");
  // The one that is the time is.
  EXPECT_EQ(decode_err(minimal(R"(,"occurredOn":true,"timestamp":1)")),
            "occurredOn: expected a string or epoch milliseconds, got boolean");
  EXPECT_EQ(decode_err(minimal(R"(,"occurredAt":[1],"timestamp":1)")),
            "occurredAt: expected a string or epoch milliseconds, got array");
  EXPECT_NE(decode_err(minimal(R"(,"occurredOn":"on","timestamp":tru)")).find("invalid JSON"), std::string::npos);
}

TEST(EpochMillisToIso8601, RendersUtcWithMilliseconds) {
  EXPECT_EQ(epoch_millis_to_iso8601(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(epoch_millis_to_iso8601(1704164645678), "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(epoch_millis_to_iso8601(1709164800000), "2024-02-29T00:00:00.000Z");  // leap day
  EXPECT_EQ(epoch_millis_to_iso8601(951868800000), "2000-03-01T00:00:00.000Z");
  EXPECT_EQ(epoch_millis_to_iso8601(-86400000), "1969-12-31T00:00:00.000Z");
  EXPECT_EQ(epoch_millis_to_iso8601(-62167219200001), "-0001-12-31T23:59:59.999Z");
  EXPECT_EQ(epoch_millis_to_iso8601(253402300800000), "+10000-01-01T00:00:00.000Z");
  EXPECT_FALSE(epoch_millis_to_iso8601(INT64_MIN).empty());
  EXPECT_FALSE(epoch_millis_to_iso8601(INT64_MAX).empty());
}

// ---------------------------------------------------------------------------------------------
// Unicode and numbers

TEST(JsonCodecDecode, UnicodeRawAndEscaped) {
  DomainEvent e = decode_ok(
      R"({"eventType":"注文が作成された","aggregateId":"注文-42","aggregateType":"Caf\u00e9",)"
      R"("aggregateVersion":1,"correlationId":"\ud83d\ude00","name":"東京都 渋谷区","city":"Caf\u00e9",)"
      R"("emoji":"\ud83d\ude00","raw":"é😀"})");
  EXPECT_EQ(e.event_type, "注文が作成された");
  EXPECT_EQ(e.aggregate_id, "注文-42");
  EXPECT_EQ(e.aggregate_type, "Café");        // envelope strings are unescaped
  EXPECT_EQ(e.correlation_id, "\xF0\x9F\x98\x80");
  EXPECT_EQ(e.payload,                         // payload text is byte for byte
            R"({"name":"東京都 渋谷区","city":"Caf\u00e9","emoji":"\ud83d\ude00","raw":"é😀"})");
}

TEST(JsonCodecDecode, InvalidUnicodeIsAnError) {
  EXPECT_NE(decode_err(minimal(",\"bad\":\"\xC3\x28\"")).find("invalid JSON"), std::string::npos);
  EXPECT_NE(decode_err(minimal(",\"bad\":\"\xFF\"")).find("invalid JSON"), std::string::npos);
  EXPECT_NE(decode_err(minimal(R"(,"bad":"\ud800")")).find("invalid JSON in field \"bad\""), std::string::npos);
  EXPECT_NE(decode_err(minimal(R"(,"bad":"\u00zz")")).find("invalid JSON in field \"bad\""), std::string::npos);
  EXPECT_NE(decode_err(minimal(R"(,"bad":"\x")")).find("invalid JSON in field \"bad\""), std::string::npos);
}

TEST(JsonCodecDecode, BigAndOddNumbersInPayloadSurviveByteForByte) {
  constexpr std::string_view members =
      R"("big":123456789012345678901234567890,"neg":-123456789012345678901234567890,)"
      R"("u64":18446744073709551616,"tiny":1e-400,"huge":-1.5E+400,"precise":0.10000000000000000000001,)"
      R"("zero":-0,"arr":[123456789012345678901234567890,-0.0e0])";
  DomainEvent e = decode_ok(minimal(","s + std::string(members)));
  EXPECT_EQ(e.payload, "{" + std::string(members) + "}");
}

TEST(JsonCodecDecode, InvalidPayloadValuesAreErrors) {
  for (std::string_view bad : {"[1 2]", "[1,]", "[,1]", "{\"a\" 1}", "{\"a\":1,}", "{,}", "{\"a\"}", "[1}",
                               "{\"a\":1]", "tru", "nul", "fals", "truex", "01", "1.", ".5", "-", "+1", "1e",
                               "1e+", "0x10", "NaN", "Infinity", "-Infinity", "'x'", "[\"a\" \"b\"]",
                               "{1:2}", "[[[]]", "[]]", "{\"a\":\"b\":1}", "[\"a\":1]",
                               "{\"a\":1:2}", "[1:2]", "\"x\":1", "1:2", "{\"a\":{\"b\":\"c\":{}}}",
                               "[\"a\",\"b\":\"c\"]", "{\"a\":[]:1}", "{\"a\":null:1}"}) {
    const std::string reason = decode_err(minimal(",\"p\":"s + std::string(bad)));
    EXPECT_NE(reason.find("invalid JSON"), std::string::npos) << bad << " -> " << reason;
  }
}

// ---------------------------------------------------------------------------------------------
// Padding and threads

TEST(JsonCodecDecode, WithoutPaddingCapacityEqualsWithPadding) {
  for (std::string_view json : {kSeedFlat, kNested}) {
    std::string unpadded(json);
    unpadded.shrink_to_fit();
    ASSERT_LT(unpadded.capacity(), unpadded.size() + simdjson::SIMDJSON_PADDING);
    const std::string with_padding = padded(json);
    ASSERT_GE(with_padding.capacity(), with_padding.size() + simdjson::SIMDJSON_PADDING);

    DecodeResult a = decode_json(unpadded);
    DecodeResult b = decode_json(with_padding);
    DecodeResult c = decode_json(std::string_view(json));
    ASSERT_TRUE(std::holds_alternative<DomainEvent>(a));
    ASSERT_TRUE(std::holds_alternative<DomainEvent>(b));
    ASSERT_TRUE(std::holds_alternative<DomainEvent>(c));
    EXPECT_TRUE(same_event(std::get<DomainEvent>(a), std::get<DomainEvent>(b)));
    EXPECT_TRUE(same_event(std::get<DomainEvent>(a), std::get<DomainEvent>(c)));
    EXPECT_EQ(std::get<DomainEvent>(a).event_type, "OrderPlaced");
  }
}

TEST(JsonCodecDecode, SourceMessageValueParsesInPlace) {
  SourceMessage msg;
  msg.assign_value(kSeedFlat.data(), kSeedFlat.size());
  ASSERT_GE(msg.value.capacity(), msg.value.size() + simdjson::SIMDJSON_PADDING);
  DecodeResult r = decode_json(msg.value);
  ASSERT_TRUE(std::holds_alternative<DomainEvent>(r));
  EXPECT_EQ(std::get<DomainEvent>(r).aggregate_id, "order-42");
  EXPECT_EQ(msg.value, kSeedFlat);  // input untouched
}

TEST(JsonCodecDecode, ConcurrentDecodersAgree) {
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &mismatches] {
      for (int i = 0; i < 2000; ++i) {
        const std::string id = "agg-" + std::to_string(t) + "-" + std::to_string(i);
        const std::string json = R"({"eventType":"T","aggregateId":")" + id +
                                 R"(","aggregateType":"A","aggregateVersion":)" + std::to_string(i) +
                                 R"(,"n":)" + std::to_string(i) + "}";
        DecodeResult r = (i % 2) ? decode_json(json) : decode_json(std::string_view(json));
        auto* e = std::get_if<DomainEvent>(&r);
        if (!e || e->aggregate_id != id || e->aggregate_version != i ||
            e->payload != "{\"n\":" + std::to_string(i) + "}") {
          ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace kingest::codecs::json_testing
