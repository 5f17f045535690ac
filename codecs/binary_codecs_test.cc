// Protobuf and FlatBuffers envelope codecs, the payload/content-type rules they share, and
// content-type routing (codec.h). The golden files (golden_test.cc) pin exact bytes; this suite
// checks properties: round trips, agreement between the three formats, every error path, and that
// damaged input never crashes.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "codecs/binary_envelope.h"
#include "codecs/codec.h"
#include "proto/envelope.pb.h"
#include "proto/envelope_generated.h"
#include "proto/internal/envelope_unchecked.pb.h"

namespace kingest::codecs {
namespace {

using namespace std::string_literals;
namespace pbv1 = kurrent_ingest::envelope::v1;
namespace fbv1 = kurrent_ingest::envelope::v1;

DomainEvent sample_event() {
  DomainEvent e;
  e.event_id = "0b5e3c1e-2f4a-4d7e-9a51-3c2f8e6d1a77";
  e.event_type = "VulnerabilityDetected";
  e.aggregate_id = "vuln-注文-42";
  e.aggregate_type = "Vulnerability";
  e.aggregate_version = 12;
  e.correlation_id = "corr \"quoted\"";
  e.causation_id = "cause-1";
  e.occurred_at = "2024-01-02T03:04:05.678Z";
  e.payload = R"({"total":123456789012345678901234567890,"name":"Caf\u00e9","tags":["a","b"],"nested":{"x":null}})";
  e.content_type = "application/json";
  return e;
}

void expect_same(const DomainEvent& a, const DomainEvent& b) {
  EXPECT_EQ(a.event_id, b.event_id);
  EXPECT_EQ(a.event_type, b.event_type);
  EXPECT_EQ(a.aggregate_id, b.aggregate_id);
  EXPECT_EQ(a.aggregate_type, b.aggregate_type);
  EXPECT_EQ(a.aggregate_version, b.aggregate_version);
  EXPECT_EQ(a.correlation_id, b.correlation_id);
  EXPECT_EQ(a.causation_id, b.causation_id);
  EXPECT_EQ(a.occurred_at, b.occurred_at);
  EXPECT_EQ(a.payload, b.payload);
  EXPECT_EQ(a.content_type, b.content_type);
}

bool same(const DomainEvent& a, const DomainEvent& b) {
  return a.event_id == b.event_id && a.event_type == b.event_type && a.aggregate_id == b.aggregate_id &&
         a.aggregate_type == b.aggregate_type && a.aggregate_version == b.aggregate_version &&
         a.correlation_id == b.correlation_id && a.causation_id == b.causation_id &&
         a.occurred_at == b.occurred_at && a.payload == b.payload && a.content_type == b.content_type;
}

DomainEvent ok(const DecodeResult& r) {
  if (auto* e = std::get_if<DecodeError>(&r)) {
    ADD_FAILURE() << "unexpected decode error: " << e->reason;
    return {};
  }
  return std::get<DomainEvent>(r);
}

std::string err(const DecodeResult& r) {
  if (std::holds_alternative<DomainEvent>(r)) {
    ADD_FAILURE() << "decoded, expected an error";
    return {};
  }
  return std::get<DecodeError>(r).reason;
}

pbv1::DomainEventEnvelope pb_envelope() {
  pbv1::DomainEventEnvelope m;
  m.set_event_type("TaskCreated");
  m.set_aggregate_id("task-1");
  m.set_aggregate_type("Task");
  m.set_aggregate_version(1);
  return m;
}

std::string pb_bytes(const pbv1::DomainEventEnvelope& m) { return m.SerializeAsString(); }

// ---------------------------------------------------------------------------------------------
// Routing

TEST(CodecRouting, ContentTypeHeaders) {
  EXPECT_EQ(codec_for_content_type("application/json"), Codec::kJson);
  EXPECT_EQ(codec_for_content_type("application/json; charset=utf-8"), Codec::kJson);
  EXPECT_EQ(codec_for_content_type("  Application/JSON ;charset=UTF-8"), Codec::kJson);
  EXPECT_EQ(codec_for_content_type("text/json"), Codec::kJson);
  EXPECT_EQ(codec_for_content_type("application/x-protobuf"), Codec::kProtobuf);
  EXPECT_EQ(codec_for_content_type("application/protobuf"), Codec::kProtobuf);
  EXPECT_EQ(codec_for_content_type("application/x-protobuf; messageType=kurrent_ingest.envelope.v1.DomainEventEnvelope"),
            Codec::kProtobuf);
  EXPECT_EQ(codec_for_content_type("application/x-flatbuffers"), Codec::kFlatBuffers);
  EXPECT_EQ(codec_for_content_type("APPLICATION/X-FLATBUFFERS"), Codec::kFlatBuffers);
  for (std::string_view unknown : {"", ";", "application/xml", "text/plain", "application/jsonx", "application/",
                                   "json", "application/x-protobuf2", "application/octet-stream",
                                   "application/vnd.acme+json"}) {
    EXPECT_EQ(codec_for_content_type(unknown), std::nullopt) << unknown;
  }
}

TEST(CodecRouting, NamesAndContentTypesRoundTrip) {
  for (Codec c : {Codec::kJson, Codec::kProtobuf, Codec::kFlatBuffers}) {
    EXPECT_EQ(parse_codec_name(codec_name(c)), c);
    EXPECT_EQ(codec_for_content_type(content_type_for(c)), c);
  }
  EXPECT_EQ(parse_codec_name("json"), Codec::kJson);
  EXPECT_EQ(parse_codec_name("Protobuf"), Codec::kProtobuf);
  EXPECT_EQ(parse_codec_name("flatbuffers"), Codec::kFlatBuffers);
  EXPECT_EQ(parse_codec_name(""), std::nullopt);
  EXPECT_EQ(parse_codec_name("proto"), std::nullopt);
  EXPECT_EQ(parse_codec_name("avro"), std::nullopt);
}

TEST(CodecRouting, UnsupportedReasonIsOneLine) {
  const std::string r = unsupported_content_type_reason("text/plain\r\nX: y");
  EXPECT_EQ(r.find('\n'), std::string::npos);
  EXPECT_NE(r.find("unsupported content-type 'text/plain\\x0d\\x0aX: y'"), std::string::npos) << r;
}

TEST(CodecRouting, DecodeDispatches) {
  const DomainEvent e = sample_event();
  SourceMessage json, pb, fb;
  const std::string j = encode_json(e), p = encode_protobuf(e), f = encode_flatbuffers(e);
  json.assign_value(j.data(), j.size());
  pb.assign_value(p.data(), p.size());
  fb.assign_value(f.data(), f.size());
  expect_same(ok(decode(Codec::kJson, json.value)), e);
  expect_same(ok(decode(Codec::kProtobuf, pb.value)), e);
  expect_same(ok(decode(Codec::kFlatBuffers, fb.value)), e);
  // The wrong codec fails with its own reason.
  EXPECT_NE(err(decode(Codec::kJson, pb.value)).find("invalid JSON"), std::string::npos);
  EXPECT_NE(err(decode(Codec::kFlatBuffers, json.value)).find("invalid FlatBuffers"), std::string::npos);
  EXPECT_NE(err(decode(Codec::kFlatBuffers, pb.value)).find("invalid FlatBuffers"), std::string::npos);
}

TEST(MediaTypes, JsonFamily) {
  EXPECT_TRUE(is_json_media_type("application/json"));
  EXPECT_TRUE(is_json_media_type("application/json;charset=utf-8"));
  EXPECT_TRUE(is_json_media_type("TEXT/JSON"));
  EXPECT_TRUE(is_json_media_type("application/vnd.acme.order+json"));
  EXPECT_TRUE(is_json_media_type("application/cloudevents+json; charset=utf-8"));
  EXPECT_FALSE(is_json_media_type("application/+json"));
  EXPECT_FALSE(is_json_media_type("+json"));
  EXPECT_FALSE(is_json_media_type("application/jsonl"));
  EXPECT_FALSE(is_json_media_type("application/octet-stream"));
  EXPECT_FALSE(is_json_media_type(""));
  EXPECT_EQ(media_type_essence(" a/b ; q=1"), "a/b");
}

// ---------------------------------------------------------------------------------------------
// The same event in all three formats

TEST(EnvelopeFormats, AllThreeDecodeToTheSameEvent) {
  std::vector<DomainEvent> events;
  events.push_back(sample_event());
  DomainEvent minimal;
  minimal.event_type = "T";
  minimal.aggregate_id = "1";
  minimal.aggregate_type = "A";
  minimal.aggregate_version = 0;
  minimal.payload = "{}";
  events.push_back(minimal);
  DomainEvent unicode = sample_event();
  unicode.event_type = "タスク更新";
  unicode.payload = R"({"emoji":"🚀","rtl":"שלום","esc":"\ud83d\ude80"})";
  events.push_back(unicode);
  DomainEvent max_version = minimal;
  max_version.aggregate_version = INT64_MAX;
  events.push_back(max_version);
  for (const DomainEvent& e : events) {
    SCOPED_TRACE(e.event_type);
    const DomainEvent from_json = ok(decode_json(encode_json(e)));
    const DomainEvent from_pb = ok(decode_protobuf(encode_protobuf(e)));
    const DomainEvent from_fb = ok(decode_flatbuffers(encode_flatbuffers(e)));
    expect_same(from_json, e);
    expect_same(from_pb, e);
    expect_same(from_fb, e);
  }
}

TEST(EnvelopeFormats, BinaryPayloadsRoundTripInBothBinaryFormats) {
  DomainEvent e = sample_event();
  e.payload.clear();
  for (int i = 0; i < 256; ++i) e.payload.push_back(static_cast<char>(i));
  e.content_type = "application/octet-stream";
  expect_same(ok(decode_protobuf(encode_protobuf(e))), e);
  expect_same(ok(decode_flatbuffers(encode_flatbuffers(e))), e);
  e.content_type = "image/png";
  expect_same(ok(decode_protobuf(encode_protobuf(e))), e);
  expect_same(ok(decode_flatbuffers(encode_flatbuffers(e))), e);
}

// ---------------------------------------------------------------------------------------------
// Payload and content type rules (shared by both binary codecs)

struct PayloadCase {
  std::string payload;
  std::string declared;
  std::string want_payload;       // when decoding succeeds
  std::string want_content_type;  // empty: decoding must fail
};

TEST(EnvelopeFormats, PayloadContentTypeRules) {
  const std::vector<PayloadCase> cases = {
      {R"({"a":1})", "", R"({"a":1})", "application/json"},
      {R"(  {"a":1}  )", "", R"(  {"a":1}  )", "application/json"},  // kept byte for byte
      {R"({"a":1})", "application/json", R"({"a":1})", "application/json"},
      {R"({"a":1})", "application/json; charset=utf-8", R"({"a":1})", "application/json"},
      {R"({"a":1})", "application/vnd.acme+json", R"({"a":1})", "application/json"},
      {"", "", "{}", "application/json"},
      {"", "application/json", "{}", "application/json"},
      {"", "application/octet-stream", "", "application/octet-stream"},
      {"[1,2]", "", "[1,2]", "application/octet-stream"},  // JSON, but not an object
      {"\"text\"", "", "\"text\"", "application/octet-stream"},
      {R"({"a":1} x)", "", R"({"a":1} x)", "application/octet-stream"},
      {R"({"a":1}{"b":2})", "", R"({"a":1}{"b":2})", "application/octet-stream"},
      {"\x00\x01{"s, "", "\x00\x01{"s, "application/octet-stream"},
      {R"({"a":1})", "text/plain", R"({"a":1})", "text/plain"},  // declared non-JSON: verbatim
      {"hello", "text/plain; charset=utf-8", "hello", "text/plain; charset=utf-8"},
      {"[1,2]", "application/json", "", ""},
      {R"({"a":})", "application/json", "", ""},
      {R"({"a":1} x)", "application/json", "", ""},
      {R"({"a":01})", "application/json", "", ""},
      {"{\"a\":\"\xff\"}", "application/json", "", ""},
      {std::string(2000, '[') + std::string(2000, ']'), "application/json", "", ""},
  };
  for (const PayloadCase& c : cases) {
    SCOPED_TRACE("payload '" + c.payload.substr(0, 40) + "' declared '" + c.declared + "'");
    pbv1::DomainEventEnvelope m = pb_envelope();
    m.set_payload(c.payload);
    m.set_payload_content_type(c.declared);
    DecodeResult from_pb = decode_protobuf(pb_bytes(m));

    flatbuffers::FlatBufferBuilder b;
    const auto type = b.CreateString("TaskCreated"), id = b.CreateString("task-1"), agg = b.CreateString("Task");
    const auto payload = b.CreateVector(reinterpret_cast<const uint8_t*>(c.payload.data()), c.payload.size());
    const auto declared = c.declared.empty() ? flatbuffers::Offset<flatbuffers::String>() : b.CreateString(c.declared);
    b.Finish(fbv1::CreateDomainEventEnvelopeFb(b, 0, type, id, agg, 1, 0, 0, 0, payload, declared), "KIEV");
    DecodeResult from_fb =
        decode_flatbuffers(std::string_view(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()));

    for (const DecodeResult* r : {&from_pb, &from_fb}) {
      if (c.want_content_type.empty()) {
        EXPECT_NE(err(*r).find("payload: content type \"" + c.declared + "\" but not a valid JSON object: "),
                  std::string::npos);
      } else {
        const DomainEvent e = ok(*r);
        EXPECT_EQ(e.payload, c.want_payload);
        EXPECT_EQ(e.content_type, c.want_content_type);
      }
    }
  }
}

TEST(EnvelopeFormats, Utf8CheckAgreesWithSimdjson) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 40, 'a');
    for (char& c : s) {
      const uint64_t r = rng();
      c = static_cast<char>(r % 4 == 0 ? r >> 8 : 0x20 + (r >> 8) % 90);  // mostly ASCII
    }
    ASSERT_EQ(detail::valid_utf8(s), simdjson::validate_utf8(s.data(), s.size())) << i;
  }
  EXPECT_TRUE(detail::valid_utf8(""));
  EXPECT_TRUE(detail::valid_utf8("0123456789abcdef-Zoë-🚀"));
  EXPECT_FALSE(detail::valid_utf8("0123456789abcdef\xc3"));
  EXPECT_FALSE(detail::valid_utf8("\xed\xa0\x80"));  // a UTF-16 surrogate
}

TEST(EnvelopeFormats, CheckJsonObject) {
  EXPECT_EQ(check_json_object("{}"), std::nullopt);
  EXPECT_EQ(check_json_object(" {\"n\":123456789012345678901234567890,\"x\":[1e400,-0]} \n"), std::nullopt);
  EXPECT_EQ(check_json_object("[]"), "expected a JSON object, got array");
  EXPECT_EQ(check_json_object("1"), "expected a JSON object, got number");
  EXPECT_NE(check_json_object(""), std::nullopt);
  EXPECT_NE(check_json_object("{} {}"), std::nullopt);
  EXPECT_NE(check_json_object("{\"a\":tru}"), std::nullopt);
  EXPECT_NE(check_json_object("{\"a\":\"\\x\"}"), std::nullopt);
  EXPECT_NE(check_json_object("{\"a\":1,}"), std::nullopt);
  EXPECT_NE(check_json_object("{\"a\" 1}"), std::nullopt);
  // Interleaving with decode_json on the same thread (shared parser) changes nothing.
  const std::string json = encode_json(sample_event());
  EXPECT_EQ(ok(decode_json(json)).payload, sample_event().payload);
  EXPECT_EQ(check_json_object(sample_event().payload), std::nullopt);
  EXPECT_EQ(ok(decode_json(std::string_view(json))).payload, sample_event().payload);
}

// ---------------------------------------------------------------------------------------------
// Protobuf

TEST(ProtobufCodec, DecoderTwinMatchesThePublicSchema) {
  using google::protobuf::FieldDescriptor;
  const auto* pub = pbv1::DomainEventEnvelope::descriptor();
  const auto* twin = pbv1::internal::DomainEventEnvelopeUnchecked::descriptor();
  ASSERT_EQ(pub->field_count(), twin->field_count());
  ASSERT_EQ(pub->field_count(), 10);
  for (int i = 0; i < pub->field_count(); ++i) {
    const FieldDescriptor* a = pub->field(i);
    const FieldDescriptor* b = twin->FindFieldByNumber(a->number());
    ASSERT_NE(b, nullptr) << a->name();
    EXPECT_EQ(a->name(), b->name());
    EXPECT_EQ(a->has_presence(), b->has_presence()) << a->name();
    EXPECT_EQ(a->is_repeated(), b->is_repeated()) << a->name();
    if (a->type() == FieldDescriptor::TYPE_STRING) {
      EXPECT_EQ(b->type(), FieldDescriptor::TYPE_BYTES) << a->name();
    } else {
      EXPECT_EQ(a->type(), b->type()) << a->name();
    }
  }
}

TEST(ProtobufCodec, InvalidUtf8IsAReasonNotALogLine) {
  testing::internal::CaptureStderr();
  auto m = pb_envelope();
  const std::string bytes = pb_bytes(m) + "\x3a\x02\xff\xfe"s;  // causation_id
  EXPECT_EQ(err(decode_protobuf(bytes)), "causation_id: invalid UTF-8");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(ProtobufCodec, RequiredFields) {
  {
    auto m = pb_envelope();
    m.clear_event_type();
    EXPECT_EQ(err(decode_protobuf(pb_bytes(m))), "missing required field event_type");
  }
  {
    auto m = pb_envelope();
    m.set_aggregate_id("");
    EXPECT_EQ(err(decode_protobuf(pb_bytes(m))), "missing required field aggregate_id");
  }
  {
    auto m = pb_envelope();
    m.clear_aggregate_type();
    EXPECT_EQ(err(decode_protobuf(pb_bytes(m))), "missing required field aggregate_type");
  }
  {
    auto m = pb_envelope();
    m.clear_aggregate_version();
    EXPECT_EQ(err(decode_protobuf(pb_bytes(m))), "missing required field aggregate_version");
  }
  {
    auto m = pb_envelope();
    m.set_aggregate_version(0);  // explicitly present
    EXPECT_EQ(ok(decode_protobuf(pb_bytes(m))).aggregate_version, 0);
  }
  {
    auto m = pb_envelope();
    m.set_aggregate_version(INT64_MIN);
    EXPECT_EQ(err(decode_protobuf(pb_bytes(m))),
              "aggregate_version: expected a non-negative integer, got -9223372036854775808");
  }
}

TEST(ProtobufCodec, MalformedInputReasons) {
  EXPECT_EQ(err(decode_protobuf("")), "invalid protobuf: empty input");
  EXPECT_EQ(err(decode_protobuf("\x0f"s)), "invalid protobuf: invalid wire type 7 in field event_id (1) at byte 0");
  EXPECT_EQ(err(decode_protobuf("\x12\x09Task"s)),
            "invalid protobuf: length 9 beyond the end of the input (4 bytes left) in field event_type (2) at byte 0");
  EXPECT_EQ(err(decode_protobuf("\x28"s)),
            "invalid protobuf: truncated or malformed varint in field aggregate_version (5) at byte 0");
  EXPECT_EQ(err(decode_protobuf("\x28\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"s)),
            "invalid protobuf: truncated or malformed varint in field aggregate_version (5) at byte 0");
  EXPECT_EQ(err(decode_protobuf("\x00\x01"s)), "invalid protobuf: field number 0 at byte 0");
  EXPECT_EQ(err(decode_protobuf("\x1a\x02\xc3\x28"s)), "aggregate_id: invalid UTF-8");
  EXPECT_EQ(err(decode_protobuf(pb_bytes(pb_envelope()) + "\x52\x01\x80"s)), "payload_content_type: invalid UTF-8");
  EXPECT_EQ(err(decode_protobuf("\x0b\x08\x01"s)), "invalid protobuf: group 1 not closed before the end of the input");
  EXPECT_EQ(err(decode_protobuf("\x0c"s)), "invalid protobuf: unexpected end-group tag at byte 0");
  // A group in an unknown field is skipped like any unknown field.
  std::string with_group = pb_bytes(pb_envelope()) + "\xa3\x06\x08\x01\xa4\x06"s;  // field 100 group
  EXPECT_EQ(ok(decode_protobuf(with_group)).event_type, "TaskCreated");
}

TEST(ProtobufCodec, OversizedInputIsRejectedBeforeParsing) {
  const std::string big((size_t{64} << 20) + 1, '\0');
  EXPECT_EQ(err(decode_protobuf(big)), "invalid protobuf: 67108865 bytes exceed the limit of 67108864");
  EXPECT_EQ(err(decode_flatbuffers(big)), "invalid FlatBuffers: 67108865 bytes exceed the limit of 67108864");
}

TEST(ProtobufCodec, LastValueOfARepeatedScalarFieldWins) {
  auto m = pb_envelope();
  std::string bytes = pb_bytes(m) + "\x12\x04Next"s;  // event_type again
  EXPECT_EQ(ok(decode_protobuf(bytes)).event_type, "Next");
}

TEST(ProtobufCodec, ReusedThreadMessageLeavesNothingBehind) {
  DomainEvent full = sample_event();
  expect_same(ok(decode_protobuf(encode_protobuf(full))), full);
  // A following minimal message must not inherit any field of the previous one.
  const DomainEvent m = ok(decode_protobuf(pb_bytes(pb_envelope())));
  EXPECT_EQ(m.event_id, "");
  EXPECT_EQ(m.correlation_id, "");
  EXPECT_EQ(m.occurred_at, "");
  EXPECT_EQ(m.payload, "{}");
  // Nor after a failure in the middle of a message.
  std::string partial = encode_protobuf(full);
  partial.resize(partial.size() - 3);
  EXPECT_FALSE(err(decode_protobuf(partial)).empty());
  EXPECT_EQ(ok(decode_protobuf(pb_bytes(pb_envelope()))).causation_id, "");
}

TEST(ProtobufCodec, EveryPrefixFailsOrDecodesConsistently) {
  const std::string bytes = encode_protobuf(sample_event());
  size_t failures = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    DecodeResult r = decode_protobuf(std::string_view(bytes).substr(0, n));
    if (auto* e = std::get_if<DecodeError>(&r)) {
      ++failures;
      EXPECT_FALSE(e->reason.empty());
    } else {
      // A prefix that ends on a field boundary is a valid, shorter message.
      const DomainEvent& d = std::get<DomainEvent>(r);
      EXPECT_EQ(d.event_type, "VulnerabilityDetected");
    }
  }
  EXPECT_GT(failures, bytes.size() / 2);
}

// ---------------------------------------------------------------------------------------------
// FlatBuffers

struct FbOptions {
  bool event_type = true, aggregate_id = true, aggregate_type = true, version = true;
  std::string type_value = "TaskCreated";
  int64_t version_value = 1;
  const char* identifier = "KIEV";
};

std::string fb_bytes(const FbOptions& o) {
  flatbuffers::FlatBufferBuilder b;
  const auto type = o.event_type ? b.CreateString(o.type_value) : flatbuffers::Offset<flatbuffers::String>();
  const auto id = o.aggregate_id ? b.CreateString("task-1") : flatbuffers::Offset<flatbuffers::String>();
  const auto agg = o.aggregate_type ? b.CreateString("Task") : flatbuffers::Offset<flatbuffers::String>();
  fbv1::DomainEventEnvelopeFbBuilder t(b);
  t.add_event_type(type);
  t.add_aggregate_id(id);
  t.add_aggregate_type(agg);
  if (o.version) t.add_aggregate_version(o.version_value);
  b.Finish(t.Finish(), o.identifier);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

TEST(FlatBuffersCodec, RequiredFields) {
  EXPECT_EQ(ok(decode_flatbuffers(fb_bytes({}))).event_type, "TaskCreated");
  EXPECT_EQ(err(decode_flatbuffers(fb_bytes({.event_type = false}))), "missing required field event_type");
  EXPECT_EQ(err(decode_flatbuffers(fb_bytes({.aggregate_id = false}))), "missing required field aggregate_id");
  EXPECT_EQ(err(decode_flatbuffers(fb_bytes({.aggregate_type = false}))), "missing required field aggregate_type");
  EXPECT_EQ(err(decode_flatbuffers(fb_bytes({.version = false}))), "missing required field aggregate_version");
  EXPECT_EQ(err(decode_flatbuffers(fb_bytes({.type_value = ""}))),
            "event_type: expected a non-empty string, got an empty string");
  EXPECT_EQ(ok(decode_flatbuffers(fb_bytes({.version_value = 0}))).aggregate_version, 0);
  EXPECT_EQ(err(decode_flatbuffers(fb_bytes({.version_value = -3}))),
            "aggregate_version: expected a non-negative integer, got -3");
  EXPECT_EQ(err(decode_flatbuffers(fb_bytes({.type_value = "a\xffz"}))), "event_type: invalid UTF-8");
}

TEST(FlatBuffersCodec, StructuralFailures) {
  EXPECT_EQ(err(decode_flatbuffers("")), "invalid FlatBuffers: empty input");
  EXPECT_EQ(err(decode_flatbuffers("\x08\x00\x00"s)),
            "invalid FlatBuffers: 3 bytes, shorter than a buffer header (8 bytes)");
  EXPECT_EQ(err(decode_flatbuffers(fb_bytes({.identifier = "XY\n\""}))),
            "invalid FlatBuffers: file identifier \"XY\\x0a\\x22\", expected \"KIEV\"");
  EXPECT_EQ(err(decode_flatbuffers("\x08\x00\x00\x00KIEV"s)).rfind("invalid FlatBuffers: the verifier rejected", 0), 0u);
  // A buffer without an identifier (plain Finish) has the table's bytes where the identifier goes.
  flatbuffers::FlatBufferBuilder b;
  const auto type = b.CreateString("T");
  b.Finish(fbv1::CreateDomainEventEnvelopeFb(b, 0, type));
  const std::string no_id(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  EXPECT_NE(err(decode_flatbuffers(no_id)).find("file identifier"), std::string::npos);
}

TEST(FlatBuffersCodec, SelfReferencingRootIsHarmless) {
  // The root table and its vtable both start at byte 0: no field can be read, nothing overreads.
  std::string self = "\x00\x00\x00\x00KIEV"s + std::string(8, '\0');
  EXPECT_FALSE(err(decode_flatbuffers(self)).empty());
}

TEST(FlatBuffersCodec, MisalignedInputDecodesTheSame) {
  const DomainEvent e = sample_event();
  const std::string bytes = encode_flatbuffers(e);
  for (size_t shift = 1; shift < 8; ++shift) {
    std::string buf(shift, '\0');
    buf += bytes;
    expect_same(ok(decode_flatbuffers(std::string_view(buf).substr(shift))), e);
  }
}

TEST(FlatBuffersCodec, EveryPrefixFailsOrDecodesTheSameEvent) {
  const DomainEvent e = sample_event();
  const std::string bytes = encode_flatbuffers(e);
  size_t failures = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    DecodeResult r = decode_flatbuffers(std::string_view(bytes).substr(0, n));
    if (std::holds_alternative<DecodeError>(r)) {
      ++failures;
    } else {
      // Only trailing alignment padding can be cut without damage.
      EXPECT_GE(n + 4, bytes.size());
      expect_same(std::get<DomainEvent>(r), e);
    }
  }
  EXPECT_GE(failures + 4, bytes.size());
}

// ---------------------------------------------------------------------------------------------
// Damaged input and threads (the fuzzers in fuzz/ go much further; this runs in every build)

TEST(BinaryCodecs, RandomMutationsNeverCrashOrThrow) {
  const std::vector<std::string> seeds = {encode_protobuf(sample_event()), encode_flatbuffers(sample_event())};
  std::mt19937_64 rng(7);
  size_t decoded = 0, failed = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string s = seeds[round % 2];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[at] = static_cast<char>(rng()); break;
        case 1: s.erase(at, 1 + rng() % 8); break;
        default: s.insert(at, 1, static_cast<char>(rng())); break;
      }
      if (s.empty()) s = "x";
    }
    for (const DecodeResult& r : {decode_protobuf(s), decode_flatbuffers(s)}) {
      if (auto* e = std::get_if<DomainEvent>(&r)) {
        ++decoded;
        EXPECT_FALSE(e->event_type.empty());
        EXPECT_GE(e->aggregate_version, 0);
        // Whatever decodes re-encodes to the same event.
        expect_same(ok(decode_protobuf(encode_protobuf(*e))), *e);
        expect_same(ok(decode_flatbuffers(encode_flatbuffers(*e))), *e);
      } else {
        ++failed;
        const std::string& reason = std::get<DecodeError>(r).reason;
        EXPECT_FALSE(reason.empty());
        EXPECT_EQ(reason.find('\n'), std::string::npos) << reason;
      }
    }
  }
  EXPECT_GT(decoded, 100u);
  EXPECT_GT(failed, 100u);
}

TEST(BinaryCodecs, ConcurrentDecodersAgree) {
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &mismatches] {
      for (int i = 0; i < 2000; ++i) {
        DomainEvent e = sample_event();
        e.aggregate_id = "agg-" + std::to_string(t) + "-" + std::to_string(i);
        e.aggregate_version = i;
        e.payload = "{\"n\":" + std::to_string(i) + "}";
        const std::string bytes = (i % 2) ? encode_protobuf(e) : encode_flatbuffers(e);
        DecodeResult r = (i % 2) ? decode_protobuf(bytes) : decode_flatbuffers(bytes);
        auto* d = std::get_if<DomainEvent>(&r);
        if (!d || !same(*d, e)) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace kingest::codecs
