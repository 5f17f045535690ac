// What decoding refuses, and the reasons it gives: missing and mistyped envelope fields, bounds,
// duplicate keys, and malformed, truncated, mutated or hostile input.
#include "codecs/testing/json_decode.h"

namespace kingest::codecs::json_testing {
namespace {

// ---------------------------------------------------------------------------------------------
// Required fields and types

class MissingRequiredField : public ::testing::TestWithParam<std::string_view> {};

TEST_P(MissingRequiredField, IsAnErrorNamingTheField) {
  const std::string_view field = GetParam();
  std::string json = "{";
  bool first = true;
  for (auto [name, value] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
           {"eventType", R"("T")"}, {"aggregateId", R"("a")"}, {"aggregateType", R"("A")"},
           {"aggregateVersion", "1"}}) {
    if (name == field) continue;
    if (!first) json += ',';
    first = false;
    json += '"';
    json += name;
    json += "\":";
    json += value;
  }
  json += R"(,"payloadField":1})";
  EXPECT_EQ(decode_err(json), "missing required field " + std::string(field));
}

INSTANTIATE_TEST_SUITE_P(Envelope, MissingRequiredField,
                         ::testing::Values("eventType", "aggregateId", "aggregateType", "aggregateVersion"));

struct WrongValueCase {
  std::string_view field;
  std::string_view value;
  std::string_view reason;
};

class WrongValue : public ::testing::TestWithParam<WrongValueCase> {};

TEST_P(WrongValue, IsAnErrorWithAClearReason) {
  const WrongValueCase& c = GetParam();
  std::string json = "{";
  bool first = true;
  bool replaced = false;
  for (auto [name, value] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
           {"eventType", R"("T")"}, {"aggregateId", R"("a")"}, {"aggregateType", R"("A")"},
           {"aggregateVersion", "1"}}) {
    if (!first) json += ',';
    first = false;
    json += '"';
    json += name;
    json += "\":";
    if (name == c.field) {
      json += c.value;
      replaced = true;
    } else {
      json += value;
    }
  }
  if (!replaced) {
    json += ",\"";
    json += c.field;
    json += "\":";
    json += c.value;
  }
  json += '}';
  EXPECT_EQ(decode_err(json), c.reason) << json;
}

INSTANTIATE_TEST_SUITE_P(
    Envelope, WrongValue,
    ::testing::Values(
        WrongValueCase{"eventType", "5", "eventType: expected a non-empty string, got number"},
        WrongValueCase{"eventType", "null", "eventType: expected a non-empty string, got null"},
        WrongValueCase{"eventType", R"("")", "eventType: expected a non-empty string, got an empty string"},
        WrongValueCase{"eventType", "[\"T\"]", "eventType: expected a non-empty string, got array"},
        WrongValueCase{"eventType", "{}", "eventType: expected a non-empty string, got object"},
        WrongValueCase{"eventType", "true", "eventType: expected a non-empty string, got boolean"},
        WrongValueCase{"aggregateType", "1", "aggregateType: expected a non-empty string, got number"},
        WrongValueCase{"aggregateType", "null", "aggregateType: expected a non-empty string, got null"},
        WrongValueCase{"aggregateId", "1.5", "aggregateId: expected a non-empty string or an integer, got 1.5"},
        WrongValueCase{"aggregateId", "true", "aggregateId: expected a non-empty string or an integer, got boolean"},
        WrongValueCase{"aggregateId", "null", "aggregateId: expected a non-empty string or an integer, got null"},
        WrongValueCase{"aggregateId", R"("")", "aggregateId: expected a non-empty string, got an empty string"},
        WrongValueCase{"aggregateId", "{}", "aggregateId: expected a non-empty string or an integer, got object"},
        WrongValueCase{"aggregateId", "123456789012345678901234567890",
                       "aggregateId: expected a non-empty string or an integer, got out-of-range integer "
                       "123456789012345678901234567890"},
        WrongValueCase{"aggregateVersion", R"("1")",
                       "aggregateVersion: expected a non-negative integer, got string"},
        WrongValueCase{"aggregateVersion", "true", "aggregateVersion: expected a non-negative integer, got boolean"},
        WrongValueCase{"aggregateVersion", "null", "aggregateVersion: expected a non-negative integer, got null"},
        WrongValueCase{"aggregateVersion", "[1]", "aggregateVersion: expected a non-negative integer, got array"},
        WrongValueCase{"aggregateVersion", "1.5", "aggregateVersion: expected a non-negative integer, got 1.5"},
        WrongValueCase{"aggregateVersion", "1.0", "aggregateVersion: expected a non-negative integer, got 1.0"},
        WrongValueCase{"aggregateVersion", "1e3", "aggregateVersion: expected a non-negative integer, got 1e3"},
        WrongValueCase{"aggregateVersion", "-1", "aggregateVersion: expected a non-negative integer, got -1"},
        WrongValueCase{"aggregateVersion", "-9223372036854775808",
                       "aggregateVersion: expected a non-negative integer, got -9223372036854775808"},
        WrongValueCase{"aggregateVersion", "9223372036854775808",
                       "aggregateVersion: expected a non-negative integer, got 9223372036854775808 (beyond the "
                       "int64 range)"},
        WrongValueCase{"aggregateVersion", "123456789012345678901234567890",
                       "aggregateVersion: expected a non-negative integer, got 123456789012345678901234567890 "
                       "(beyond the int64 range)"},
        WrongValueCase{"eventId", "123", "eventId: expected a string, got number"},
        WrongValueCase{"correlationId", "false", "correlationId: expected a string, got boolean"},
        WrongValueCase{"causationId", "{}", "causationId: expected a string, got object"},
        WrongValueCase{"occurredOn", "true", "occurredOn: expected a string or epoch milliseconds, got boolean"},
        WrongValueCase{"occurredAt", "[]", "occurredAt: expected a string or epoch milliseconds, got array"},
        WrongValueCase{"timestamp", "{}", "timestamp: expected a string or epoch milliseconds, got object"},
        WrongValueCase{"occurredOn", "1e20",
                       "occurredOn: epoch milliseconds out of range (years 0000-9999): 1e20"},
        WrongValueCase{"timestamp", "99999999999999999999",
                       "timestamp: epoch milliseconds out of range (years 0000-9999): 99999999999999999999"}));

TEST(JsonCodecDecode, LongBadTokensAreShortenedInReasons) {
  const std::string huge(100, '9');
  const std::string reason = decode_err(
      R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":)" + huge + "}");
  EXPECT_EQ(reason, "aggregateVersion: expected a non-negative integer, got " + std::string(40, '9') +
                        "... (beyond the int64 range)");
}

TEST(JsonCodecDecode, AggregateVersionBounds) {
  EXPECT_EQ(decode_ok(R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":0})")
                .aggregate_version,
            0);
  EXPECT_EQ(decode_ok(R"({"eventType":"T","aggregateId":"a","aggregateType":"A",)"
                      R"("aggregateVersion":9223372036854775807})")
                .aggregate_version,
            INT64_MAX);
}

TEST(JsonCodecDecode, NumericAggregateIdIsRenderedAsDecimalText) {
  auto with_id = [](std::string_view id) {
    return R"({"eventType":"T","aggregateId":)" + std::string(id) +
           R"(,"aggregateType":"A","aggregateVersion":1})";
  };
  EXPECT_EQ(decode_ok(with_id("42")).aggregate_id, "42");
  EXPECT_EQ(decode_ok(with_id("0")).aggregate_id, "0");
  EXPECT_EQ(decode_ok(with_id("-7")).aggregate_id, "-7");
  EXPECT_EQ(decode_ok(with_id("18446744073709551615")).aggregate_id, "18446744073709551615");
  EXPECT_EQ(decode_ok(with_id("-9223372036854775808")).aggregate_id, "-9223372036854775808");
}

TEST(JsonCodecDecode, NullOptionalFieldsAreAbsent) {
  DomainEvent e = decode_ok(minimal(R"(,"eventId":null,"correlationId":null,"causationId":null,"occurredOn":null)"));
  EXPECT_EQ(e.event_id, "");
  EXPECT_EQ(e.correlation_id, "");
  EXPECT_EQ(e.causation_id, "");
  EXPECT_EQ(e.occurred_at, "");
  EXPECT_EQ(e.payload, "{}");  // envelope fields never become payload, even when null
  // Without any time value, the first time-named member is the (empty) time; the others are payload.
  e = decode_ok(minimal(R"(,"timestamp":"","occurredOn":null)"));
  EXPECT_EQ(e.occurred_at, "");
  EXPECT_EQ(e.payload, R"({"timestamp":""})");
}

TEST(JsonCodecDecode, DuplicateEnvelopeKeysAreErrors) {
  EXPECT_EQ(decode_err(minimal(R"(,"eventType":"U")")), "eventType: duplicate field");
  EXPECT_EQ(decode_err(minimal(R"(,"aggregateVersion":1)")), "aggregateVersion: duplicate field");
  EXPECT_EQ(decode_err(minimal(R"(,"eventId":"x","eventId":"x")")), "eventId: duplicate field");
  EXPECT_EQ(decode_err(minimal(R"(,"occurredOn":"x","occurredOn":null)")), "occurredOn: duplicate field");
  EXPECT_EQ(decode_err(minimal(R"(,"causationId":null,"causationId":null)")), "causationId: duplicate field");
  EXPECT_EQ(decode_err(minimal(R"(,"aggregate\u0054ype":"B")")), "aggregateType: duplicate field");
}

TEST(JsonCodecDecode, DuplicatePayloadKeysPassThroughVerbatim) {
  EXPECT_EQ(decode_ok(minimal(R"(,"x":1,"x":2)")).payload, R"({"x":1,"x":2})");
}

// ---------------------------------------------------------------------------------------------
// Malformed input

TEST(JsonCodecDecode, EveryPrefixOfAValidEventFailsCleanly) {
  for (std::string_view valid : {kSeedFlat, kNested}) {
    ASSERT_TRUE(std::holds_alternative<DomainEvent>(decode_json(valid)));
    for (size_t n = 0; n < valid.size(); ++n) {
      const std::string_view prefix = valid.substr(0, n);
      DecodeResult in_place = decode_json(padded(prefix));
      DecodeResult copied = decode_json(prefix);
      ASSERT_TRUE(std::holds_alternative<DecodeError>(in_place)) << "prefix " << n << ": " << prefix;
      ASSERT_TRUE(std::holds_alternative<DecodeError>(copied)) << "prefix " << n << ": " << prefix;
      EXPECT_EQ(std::get<DecodeError>(in_place).reason, std::get<DecodeError>(copied).reason);
      EXPECT_FALSE(std::get<DecodeError>(copied).reason.empty());
    }
  }
}

TEST(JsonCodecDecode, MisplacedColonsAreErrors) {
  for (std::string_view bad : {R"({"eventType":"T":"U","aggregateId":"a","aggregateType":"A","aggregateVersion":1})",
                               R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":1:2})",
                               R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":1,"p":"x":1})",
                               R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":1,"p":2:"x"})",
                               R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":1,"data":{"a":"b":1}})",
                               R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":1,"occurredOn":"x":1})",
                               R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":1,"eventId":null:1})"}) {
    EXPECT_NE(decode_err(bad).find("invalid JSON"), std::string::npos) << bad;
  }
}

TEST(JsonCodecDecode, TruncationReasonCarriesSimdjsonMessage) {
  const std::string reason = decode_err(R"({"eventType":"T","aggregateId":)");
  EXPECT_EQ(reason.rfind("invalid JSON: ", 0), 0u) << reason;
  EXPECT_NE(reason.find(simdjson::error_message(simdjson::INCOMPLETE_ARRAY_OR_OBJECT)), std::string::npos)
      << reason;
}

TEST(JsonCodecDecode, EmptyAndWhitespaceInput) {
  EXPECT_EQ(decode_err(""), "invalid JSON: got empty input: "s + simdjson::error_message(simdjson::EMPTY));
  EXPECT_EQ(decode_err(" \n\t "),
            "invalid JSON: got the text \" \\x0a\\x09 \" (4 bytes): "s + simdjson::error_message(simdjson::EMPTY));
  EXPECT_TRUE(std::holds_alternative<DecodeError>(decode_json(std::string())));
  EXPECT_TRUE(std::holds_alternative<DecodeError>(decode_json(std::string_view())));
  EXPECT_TRUE(std::holds_alternative<DecodeError>(decode_json(static_cast<const char*>(nullptr))));
}

TEST(JsonCodecDecode, ReasonsNamingAKeyStayOnOneLine) {
  // Found by fuzz/json_fuzzer: the unescaped key went into the reason verbatim.
  EXPECT_EQ(decode_err(R"({"ev\ntIf":nt@a})"),
            "invalid JSON in field \"ev\\x0atIf\": "s + simdjson::error_message(simdjson::INCORRECT_TYPE));
  const std::string long_key(100, 'k');
  EXPECT_EQ(decode_err(minimal(",\"" + long_key + "\":tru")).rfind("invalid JSON in field \"" + std::string(64, 'k') + "...\": ", 0),
            0u);
  // Cut at a character boundary: 21 three-byte characters fill 63 bytes, the 22nd would cross 64.
  std::string cjk;
  for (int i = 0; i < 30; ++i) cjk += "漢";
  const std::string reason = decode_err(minimal(",\"" + cjk + "\":tru"));
  EXPECT_NE(reason.find("\"" + cjk.substr(0, 63) + "...\""), std::string::npos) << reason;
}

TEST(JsonCodecDecode, NonObjectTopLevel) {
  EXPECT_EQ(decode_err("[]"), "top level: expected a JSON object, got array \"[]\"");
  EXPECT_EQ(decode_err("[" + minimal() + "]"),
            R"(top level: expected a JSON object, got array "[{"eventType":"T","aggregateId":"a","aggregateType":"A","agg...")");
  EXPECT_EQ(decode_err(R"("x")"), R"(top level: expected a JSON object, got string ""x"")");
  EXPECT_EQ(decode_err("12"), "top level: expected a JSON object, got number \"12\"");
  EXPECT_EQ(decode_err("null"), "top level: expected a JSON object, got null \"null\"");
  EXPECT_EQ(decode_err(" true\n"), "top level: expected a JSON object, got boolean \"true\"");
  EXPECT_NE(decode_err("}").find("invalid JSON"), std::string::npos);
  EXPECT_NE(decode_err("hello").find("invalid JSON"), std::string::npos);
}

TEST(JsonCodecDecode, TextThatIsNotJsonIsQuoted) {
  // NestJS up to 11.1.5 sends a class instance as its string conversion.
  EXPECT_EQ(decode_err("[object Object]").rfind("invalid JSON: got the text \"[object Object]\" (15 bytes): ", 0), 0u)
      << decode_err("[object Object]");
  EXPECT_EQ(decode_err("hello").rfind("invalid JSON: got the text \"hello\" (5 bytes): ", 0), 0u);
  const std::string long_text(100, 'z');
  EXPECT_NE(decode_err(long_text).find("\"" + std::string(60, 'z') + "...\" (100 bytes)"), std::string::npos);
  EXPECT_NE(decode_err("\xff\xfe").find("\\xff\\xfe"), std::string::npos);
}

TEST(JsonCodecDecode, TrailingContentIsAnError) {
  const std::string valid = minimal();
  EXPECT_NE(decode_err(valid + " x").find("invalid JSON"), std::string::npos);
  EXPECT_NE(decode_err(valid + "{}").find("invalid JSON"), std::string::npos);
  EXPECT_NE(decode_err(valid + "}").find("invalid JSON"), std::string::npos);
  EXPECT_NE(decode_err(valid + ",").find("invalid JSON"), std::string::npos);
  EXPECT_NE(decode_err(valid + valid).find("invalid JSON"), std::string::npos);
  EXPECT_EQ(decode_err(valid + "1"), "invalid JSON: got the text \"" + valid.substr(0, 60) + "...\" (77 bytes): "s +
                                         simdjson::error_message(simdjson::INCOMPLETE_ARRAY_OR_OBJECT));
  EXPECT_EQ(decode_ok(valid + " \n\t\r").payload, "{}");
  EXPECT_EQ(decode_ok(" \n" + valid).payload, "{}");
}

TEST(JsonCodecDecode, EmbeddedNulByteIsAnError) {
  std::string json = minimal(R"(,"p":"a)");
  json += '\0';
  json += R"(b"})";
  EXPECT_NE(decode_err(json).find("invalid JSON"), std::string::npos);
  std::string after = minimal();
  after += '\0';
  EXPECT_NE(decode_err(after).find("invalid JSON"), std::string::npos);
}

TEST(JsonCodecDecode, BinaryGarbageNeverCrashes) {
  std::mt19937_64 rng(12345);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(rng() % 300, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    if (i % 2) bytes.insert(0, "{");  // get past the first-byte checks now and then
    DecodeResult r = decode_both(bytes);
    ASSERT_TRUE(std::holds_alternative<DecodeError>(r)) << i;
  }
  EXPECT_NE(decode_err("\xff\xfe\x00\x01"sv).find("invalid JSON"), std::string::npos);
}

TEST(JsonCodecDecode, MutatedEventsEitherDecodeToValidPayloadOrFail) {
  std::mt19937_64 rng(777);
  const std::string_view alphabet = "{}[]\",:0123456789-.eEtrufalsn \\u\x80\xff";
  size_t decoded = 0, failed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(i % 2 ? kSeedFlat : kNested);
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const size_t pos = rng() % bytes.size();
      switch (rng() % 3) {
        case 0: bytes[pos] = alphabet[rng() % alphabet.size()]; break;
        case 1: bytes.erase(pos, 1); break;
        default: bytes.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
      }
    }
    DecodeResult r = decode_both(bytes);
    if (auto* e = std::get_if<DomainEvent>(&r)) {
      ++decoded;
      ASSERT_TRUE(is_valid_json(bytes)) << "accepted invalid JSON: " << bytes;
      ASSERT_TRUE(is_valid_json(e->payload)) << bytes << "\n-> " << e->payload;
      ASSERT_FALSE(e->event_type.empty());
      ASSERT_GE(e->aggregate_version, 0);
    } else {
      ++failed;
    }
  }
  EXPECT_GT(decoded, 0u);
  EXPECT_GT(failed, 0u);
}

TEST(JsonCodecDecode, DeepNesting) {
  // Far deeper than allowed and unbalanced.
  EXPECT_NE(decode_err(minimal(",\"p\":" + std::string(200000, '['))).find("invalid JSON"), std::string::npos);
  // Balanced, beyond the limit.
  const std::string too_deep = std::string(5000, '[') + std::string(5000, ']');
  EXPECT_EQ(decode_err(minimal(",\"p\":" + too_deep)),
            "invalid JSON in field \"p\": "s + simdjson::error_message(simdjson::DEPTH_ERROR));
  const std::string deep_objects = [] {
    std::string s;
    for (int i = 0; i < 3000; ++i) s += "{\"a\":";
    s += "1";
    s += std::string(3000, '}');
    return s;
  }();
  EXPECT_NE(decode_err(minimal(",\"p\":" + deep_objects)).find("invalid JSON"), std::string::npos);
  // Balanced, within the limit: kept verbatim.
  const std::string ok = std::string(1000, '[') + "1" + std::string(1000, ']');
  EXPECT_EQ(decode_ok(minimal(",\"p\":" + ok)).payload, "{\"p\":" + ok + "}");
  // Deep nesting in the nested shape's data.
  const std::string deep_data = "{\"x\":" + std::string(800, '[') + std::string(800, ']') + "}";
  EXPECT_EQ(decode_ok(minimal(",\"data\":" + deep_data), JsonShape::kNested).payload, deep_data);
}

TEST(JsonCodecDecode, TenMegabyteEvents) {
  std::string big_array = "[";
  while (big_array.size() < (10u << 20)) big_array += "{\"k\":\"value\",\"n\":123456789},";
  big_array.back() = ']';
  DomainEvent e = decode_ok(minimal(",\"items\":" + big_array));
  EXPECT_EQ(e.payload, "{\"items\":" + big_array + "}");

  const std::string big_string(10u << 20, 'x');
  EXPECT_EQ(decode_ok(minimal(",\"s\":\"" + big_string + "\"")).payload.size(), big_string.size() + 8);

  const std::string garbage = "{\"a\":" + std::string(10u << 20, '[');
  EXPECT_NE(decode_err(garbage).find("invalid JSON"), std::string::npos);
  EXPECT_EQ(decode_err(std::string(10u << 20, '[')).rfind("invalid JSON: got the text \"[[[", 0), 0u);
  // The thread's buffers shrink back; small events still decode afterwards.
  EXPECT_EQ(decode_ok(kSeedFlat).event_type, "OrderPlaced");
}

}  // namespace
}  // namespace kingest::codecs::json_testing
