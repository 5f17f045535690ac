#include "codecs/json_codec.h"

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

namespace kingest::codecs {
namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;

// A value with the same padding capacity SourceMessage::assign_value gives (parsed in place).
std::string padded(std::string_view json) {
  std::string s;
  s.reserve(json.size() + kValuePadding);
  s.assign(json);
  return s;
}

bool same_event(const DomainEvent& a, const DomainEvent& b) {
  return a.event_id == b.event_id && a.event_type == b.event_type && a.aggregate_id == b.aggregate_id &&
         a.aggregate_type == b.aggregate_type && a.aggregate_version == b.aggregate_version &&
         a.correlation_id == b.correlation_id && a.causation_id == b.causation_id &&
         a.occurred_at == b.occurred_at && a.payload == b.payload && a.content_type == b.content_type;
}

// An independent, strict RFC 8259 checker used as the oracle for "the payload is valid JSON"
// (simdjson's DOM cannot be used: it rejects integers beyond 64 bits, which are valid JSON).
class StrictJson {
 public:
  static bool valid(std::string_view text) {
    StrictJson p{text};
    p.ws();
    if (!p.value(0)) return false;
    p.ws();
    return p.i_ == text.size();
  }

 private:
  explicit StrictJson(std::string_view s) : s_(s) {}
  bool at(char c) const { return i_ < s_.size() && s_[i_] == c; }
  bool eat(char c) {
    if (!at(c)) return false;
    ++i_;
    return true;
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool digits() {
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ > start;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  bool number() {
    eat('-');
    if (eat('0')) {
    } else if (!digits()) {
      return false;
    }
    if (eat('.') && !digits()) return false;
    if (eat('e') || eat('E')) {
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    return true;
  }
  bool hex4(uint32_t& cp) {
    cp = 0;
    for (int k = 0; k < 4; ++k, ++i_) {
      if (i_ >= s_.size()) return false;
      const char c = s_[i_];
      cp <<= 4;
      if (c >= '0' && c <= '9') cp |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') cp |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') cp |= uint32_t(c - 'A' + 10);
      else return false;
    }
    return true;
  }
  bool string() {
    if (!eat('"')) return false;
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) return false;
        const char e = s_[i_++];
        if (e == 'u') {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (!eat('\\') || !eat('u') || !hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
          }
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return false;
        }
        continue;
      }
      if (c < 0x80) {
        ++i_;
        continue;
      }
      size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
      if (n == 0 || i_ + n > s_.size()) return false;
      uint32_t cp = c & (0x7F >> n);
      for (size_t k = 1; k < n; ++k) {
        const auto cc = static_cast<unsigned char>(s_[i_ + k]);
        if ((cc & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (cc & 0x3F);
      }
      if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
          (cp >= 0xD800 && cp <= 0xDFFF)) {
        return false;
      }
      i_ += n;
    }
    return false;
  }
  bool value(int depth) {
    if (depth > 2000) return false;
    if (at('{')) {
      ++i_;
      ws();
      if (eat('}')) return true;
      do {
        ws();
        if (!string()) return false;
        ws();
        if (!eat(':')) return false;
        ws();
        if (!value(depth + 1)) return false;
        ws();
      } while (eat(','));
      return eat('}');
    }
    if (at('[')) {
      ++i_;
      ws();
      if (eat(']')) return true;
      do {
        ws();
        if (!value(depth + 1)) return false;
        ws();
      } while (eat(','));
      return eat(']');
    }
    if (at('"')) return string();
    if (at('t')) return literal("true");
    if (at('f')) return literal("false");
    if (at('n')) return literal("null");
    return number();
  }

  std::string_view s_;
  size_t i_ = 0;
};

bool is_valid_json(std::string_view text) { return StrictJson::valid(text); }

TEST(StrictJsonOracle, AgreesWithTheGrammar) {
  for (std::string_view ok : {"{}", "[]", "0", "-0.5e+3", "123456789012345678901234567890", "\"\\u00e9\"",
                              "\"\\ud83d\\ude00\"", "{\"a\" : [ 1 , true , null ] }", " \"\xC3\xA9\" "}) {
    EXPECT_TRUE(is_valid_json(ok)) << ok;
  }
  for (std::string_view bad : {"", "{", "[1,]", "{\"a\":1,}", "01", "1.", "tru", "\"\\ud800\"", "\"\xFF\"",
                               "\"a\nb\"", "[1 2]", "{} {}", "NaN"}) {
    EXPECT_FALSE(is_valid_json(bad)) << bad;
  }
}

// Decodes through both overloads (in place and copied) and checks they agree.
DecodeResult decode_both(std::string_view json, JsonShape shape = JsonShape::kFlat) {
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

DomainEvent decode_ok(std::string_view json, JsonShape shape = JsonShape::kFlat) {
  DecodeResult r = decode_both(json, shape);
  if (auto* e = std::get_if<DecodeError>(&r)) {
    ADD_FAILURE() << "unexpected decode error: " << e->reason << "\ninput: " << json;
    return {};
  }
  DomainEvent event = std::get<DomainEvent>(std::move(r));
  EXPECT_TRUE(is_valid_json(event.payload)) << event.payload;
  return event;
}

std::string decode_err(std::string_view json, JsonShape shape = JsonShape::kFlat) {
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
constexpr std::string_view kSeedFlat =
    R"({"eventId":"0b5e3c1e-2f4a-4d7e-9a51-3c2f8e6d1a77","eventType":"OrderPlaced",)"
    R"("aggregateId":"order-42","aggregateType":"Order","aggregateVersion":3,)"
    R"("correlationId":"corr-1","causationId":"cause-1","occurredOn":"2024-01-02T03:04:05.678Z",)"
    R"("customerId":"c-7","total":129.95,"lines":[{"sku":"A-1","qty":2}],"gift":false,"note":null})";

constexpr std::string_view kNested =
    R"({"eventId":"e-1","eventType":"OrderPlaced","aggregateId":"order-42","aggregateType":"Order",)"
    R"("aggregateVersion":3,"occurredOn":"2024-01-02T03:04:05.678Z",)"
    R"("data": { "customerId" : "c-7", "total": 129.95 },"metadata":{"source":"orders-api"}})";

// Builds a minimal valid flat event around `extra` members (",..." appended after the envelope).
std::string minimal(std::string_view extra = {}) {
  std::string s = R"({"eventType":"T","aggregateId":"a","aggregateType":"A","aggregateVersion":1)";
  s += extra;
  s += '}';
  return s;
}

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

// ---------------------------------------------------------------------------------------------
// Encoding

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
}  // namespace kingest::codecs
