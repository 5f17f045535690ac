// The v2 properties conversions (proto/kurrentdb/wire.h) against protobuf's own JSON mapping of
// google.protobuf.Struct, which they replace on the hot path.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "kurrent/wire.h"
#include "proto/kurrentdb/records_wire.h"
#include "proto/kurrentdb/wire.h"

namespace kingest::wire {
namespace {

google::protobuf::Struct by_protobuf(const std::string& json) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok()) << json;
  return s;
}

TEST(V2Properties, ParseAsProtobufDoes) {
  for (const std::string& json : {
           std::string(R"({})"),
           std::string(R"({"$correlationId":"9bf3210d-1742-4dcf-8660-6fd4380079f4","aggregateVersion":1,)"
                       R"("source":{"topic":"t","partition":0,"offset":12345678901}})"),
           std::string(R"({"a":1.5,"b":-2e-3,"c":true,"d":false,"e":null,"f":[1,"x",[],{"g":null}],"h":"\u00e9\n\"\\"})"),
           std::string(R"({"big":18446744073709551615,"neg":-9223372036854775808,"f":1.7976931348623157e308})"),
       }) {
    google::protobuf::Struct ours;
    ASSERT_TRUE(properties_from_json(json, ours.mutable_fields())) << json;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(ours, by_protobuf(json)))
        << json << "\nours: " << ours.DebugString() << "\nprotobuf: " << by_protobuf(json).DebugString();
  }
  google::protobuf::Struct s;
  // A name given twice (which protobuf refuses): the last one counts.
  ASSERT_TRUE(properties_from_json(R"({"dup":1,"dup":2})", s.mutable_fields()));
  EXPECT_EQ(s.fields().at("dup").number_value(), 2.0);
  EXPECT_FALSE(properties_from_json("[1,2]", s.mutable_fields()));
  EXPECT_FALSE(properties_from_json("\"text\"", s.mutable_fields()));
  EXPECT_FALSE(properties_from_json("{\"a\":", s.mutable_fields()));
  EXPECT_FALSE(properties_from_json("not json", s.mutable_fields()));
}

TEST(V2Properties, PrintReadsBackAsTheSameStruct) {
  const std::string json =
      R"({"a":1.5,"n":1,"big":12345678901,"tiny":1e-300,"neg":-7,"s":"\u00e9\n\"\\\u0001","t":true,"z":null,)"
      R"("o":{"p":[1,2.25,"q",{"r":false}]},"$schema.name":"Old"})";
  google::protobuf::Struct in;
  ASSERT_TRUE(properties_from_json(json, in.mutable_fields()));
  auto text = properties_to_json(in.fields(), {{"$schema.format", "Json"}, {"$schema.name", "Thing"}});
  ASSERT_TRUE(text.ok()) << text.status();
  // Integral numbers without a fraction, as protobuf prints them.
  EXPECT_NE(text->find(R"("n":1,)"), std::string::npos) << *text;
  EXPECT_NE(text->find(R"("big":12345678901)"), std::string::npos) << *text;
  // The extra pairs replace properties of the same name, once.
  EXPECT_EQ(text->find("Old"), std::string::npos) << *text;
  auto back = by_protobuf(*text);
  auto want = in;
  (*want.mutable_fields())["$schema.format"].set_string_value("Json");
  (*want.mutable_fields())["$schema.name"].set_string_value("Thing");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, want)) << *text;

  google::protobuf::Struct bad;
  (*bad.mutable_fields())["x"].set_number_value(std::numeric_limits<double>::infinity());
  EXPECT_FALSE(properties_to_json(bad.fields(), {}).ok());
}


// The AppendRecords fragments, concatenated, parse into the request that protobuf builds from the
// same events with `fill_v2_record`.
TEST(RecordsWire, FragmentsParseAsTheRequestProtobufBuilds) {
  namespace v2 = kurrentdb::protocol::v2::streams;
  auto event = [](std::string type, std::string content_type, std::string data, std::string metadata) {
    return EventData{.id = Uuid::v4(),
                     .type = type,
                     .content_type = content_type,
                     .data = std::move(data),
                     .metadata = std::move(metadata)};
  };
  const std::vector<EventData> a = {
      event("Created", "application/json", R"({"n":1})",
            R"({"$correlationId":"9bf3210d-1742-4dcf-8660-6fd4380079f4","aggregateVersion":1,"x":[1,"y",[],{"z":null}],)"
            R"("o":{},"s":"","b":true,"f":-2.5e-3,"big":18446744073709551615,"neg":-9223372036854775808})"),
      event("Changed", "application/json", std::string(20000, 'x'), R"({"k":")" + std::string(300, 'v') + R"("})"),
  };
  const std::vector<EventData> b = {event("", "application/octet-stream", "", ""),
                                    event("Bin", "application/octet-stream", std::string("\0\xb3\xff", 3), "{}")};
  const std::vector<EventData> c = {event("T", "application/json", "{}", R"({"a":{"b":{"c":[{"d":1}]}}})")};
  const std::string long_stream = "Long-" + std::string(200, 's');
  struct Part {
    std::string stream;
    std::optional<int64_t> expected;
    const std::vector<EventData>* events;
  };
  const std::vector<Part> parts = {{"A-1", -1, &a}, {"B-2", std::nullopt, &b}, {long_stream, 5000000000, &c}, {"D", -4, &c}};

  v2::AppendRecordsRequest want;
  std::string ours;
  for (const Part& p : parts) {
    if (p.expected) {
      auto* check = want.add_checks()->mutable_stream_state();
      check->set_stream(p.stream);
      check->set_expected_state(*p.expected);
    }
    for (const EventData& e : *p.events) {
      auto* rec = want.add_records();
      ASSERT_FALSE(kurrent::wire::fill_v2_record(e, rec).has_value());
      rec->set_stream(p.stream);
    }
    ASSERT_FALSE(append_records_fragment(p.stream, p.expected, *p.events, &ours).has_value());
  }
  v2::AppendRecordsRequest got;
  ASSERT_TRUE(got.ParseFromString(ours));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, want))
      << "ours: " << got.ShortDebugString().substr(0, 2000) << "\nprotobuf: " << want.ShortDebugString().substr(0, 2000);
  EXPECT_EQ(got.records_size(), 6);
  EXPECT_EQ(got.checks_size(), 3);

  // Metadata that is not a JSON object: an error naming the event, and nothing appended.
  const std::string before = ours;
  const std::vector<EventData> bad = {event("T", "application/json", "{}", "[1]")};
  auto err = append_records_fragment("S", -1, bad, &ours);
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find(bad[0].id.to_string()), std::string::npos) << *err;
  EXPECT_EQ(ours, before);
}

// Metadata of every shape, one event each: the common kind is encoded straight from its text,
// the rest through the DOM; either way the record parses as the one protobuf builds, and what is
// not a JSON object is refused whole.
TEST(RecordsWire, EveryMetadataShapeParsesAsProtobufBuildsIt) {
  namespace v2 = kurrentdb::protocol::v2::streams;
  std::string deep = R"({"d":)";
  for (int i = 0; i < 20; ++i) deep += R"({"d":)";
  deep += "1" + std::string(21, '}');
  const std::vector<std::string> good = {
      std::string(R"({"$correlationId":"9bf3210d-1742-4dcf-8660-6fd4380079f4","$causationId":"9bf3210d-1742-4dcf-8660-6fd4380079f4",)") +
          R"("aggregateVersion":3,"source":{"topic":"task-events","partition":7,"offset":123456},"ingestRunId":"x"})",
      "{}",
      " { } ",
      "{ \"a\" :\t1 ,\n\"b\" : { \"c\" : \"d\" } , \"e\":{} }\r\n",
      R"({"n":999999999999999,"m":-999999999999999,"z":0,"nz":-0})",
      R"({"n":1234567890123456,"m":-1234567890123456,"big":18446744073709551615})",
      R"({"f":1.5,"e":1e3,"E":-2E-2,"i":10})",
      R"({"s":"caf\u00e9","q":"a\"b","raw":"café ☃","bs":"\\"})",
      R"({"t":true,"f":false,"z":null,"a":[1,{"b":[]}],"o":{"p":{"q":{}}}})",
      R"({"dup":1,"dup":"two","":"empty key"})",
      R"({"long":"0123456789abcdefghijklmnopqrstuvwxyz ÀÉÎÕÜ àéîõü ☃☃☃☃☃☃☃☃ 0123456789abcdef"})",
      R"({"long":"0123456789abcdefghijklmnopqrstuvwxyz\n0123456789","o":{"k":"0123456789abcdef0123456789\"x"}})",
      deep,
  };
  for (const std::string& metadata : good) {
    const std::vector<EventData> events = {
        EventData{.id = Uuid::v4(), .type = "T", .content_type = "application/json", .data = "{}", .metadata = metadata}};
    v2::AppendRecordsRequest want;
    auto* rec = want.add_records();
    ASSERT_FALSE(kurrent::wire::fill_v2_record(events[0], rec).has_value()) << metadata;
    rec->set_stream("S-1");
    std::string ours;
    ASSERT_FALSE(append_records_fragment("S-1", std::nullopt, events, &ours).has_value()) << metadata;
    v2::AppendRecordsRequest got;
    ASSERT_TRUE(got.ParseFromString(ours)) << metadata;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, want))
        << metadata << "\nours: " << got.ShortDebugString() << "\nprotobuf: " << want.ShortDebugString();
  }
  const std::vector<std::string> bad = {
      "[1]", "\"s\"", "1", "{", R"({"a":1)", R"({"a":1}x)", R"({"a":01})", R"({"a":-})", R"({"a":tru})",
      R"({"a" 1})", R"({a:1})", R"({"a":1,})", "{\"a\":\"\x01\"}", "{\"a\":\"0123456789abcdef0123\x1f\"}", "{\"a\":\"\xff\"}", "{\"\xc3\":1}",
  };
  for (const std::string& metadata : bad) {
    const std::vector<EventData> events = {
        EventData{.id = Uuid::v4(), .type = "T", .content_type = "application/json", .data = "{}", .metadata = metadata}};
    std::string ours = "kept";
    EXPECT_TRUE(append_records_fragment("S-1", -1, events, &ours).has_value()) << metadata;
    EXPECT_EQ(ours, "kept") << metadata;
  }
}

// Properties built from values (EventData::properties) are sent as the same JSON object's
// properties: in the fragment byte for byte, and in the record protobuf builds.
TEST(RecordsWire, PropertiesFromValuesAreTheJsonObjectsProperties) {
  namespace v2 = kurrentdb::protocol::v2::streams;
  const std::string long_text(200, 'l');
  RecordProperties props;
  props.add_string("s", "text");
  props.add_number("n", -2.5);
  props.open_object("o");
  props.add_bool("t", true);
  props.open_object("inner");
  props.add_string("long", long_text);
  props.close_object();
  props.open_object("empty");
  props.close_object();
  props.add_null("z");
  props.close_object();
  props.add_bool("f", false);
  EventData from_values{.id = Uuid::v4(), .type = "T", .content_type = "application/json", .data = "{}"};
  from_values.properties.resize(props.size());
  EXPECT_EQ(props.write(from_values.properties.data()), from_values.properties.data() + props.size());
  // The same calls in two passes, sized then written, give the same bytes.
  PropertySizer sizes;
  auto calls = [&](auto& to, auto open) {
    to.add_string("s", "text");
    to.add_number("n", -2.5);
    open(to, "o", 0);
    to.add_bool("t", true);
    open(to, "inner", 1);
    to.add_string("long", long_text);
    to.close_object();
    open(to, "empty", 2);
    to.close_object();
    to.add_null("z");
    to.close_object();
    to.add_bool("f", false);
  };
  calls(sizes, [](PropertySizer& to, std::string_view key, size_t) { to.open_object(key); });
  ASSERT_EQ(sizes.size(), props.size());
  std::string two_pass(sizes.size(), '\0');
  PropertyWriter writer(two_pass.data());
  calls(writer, [&](PropertyWriter& to, std::string_view key, size_t k) { to.open_object(key, sizes.object_size(k)); });
  EXPECT_EQ(writer.end(), two_pass.data() + two_pass.size());
  EXPECT_EQ(two_pass, from_values.properties);
  EventData from_json = from_values;
  from_json.properties.clear();
  from_json.metadata =
      R"({"s":"text","n":-2.5,"o":{"t":true,"inner":{"long":")" + long_text + R"("},"empty":{},"z":null},"f":false})";

  std::string a, b;
  ASSERT_FALSE(append_records_fragment("S-1", 3, std::span(&from_json, 1), &a).has_value());
  ASSERT_FALSE(append_records_fragment("S-1", 3, std::span(&from_values, 1), &b).has_value());
  EXPECT_EQ(a, b);

  v2::AppendRecord want, got;
  ASSERT_FALSE(kurrent::wire::fill_v2_record(from_json, &want).has_value());
  ASSERT_FALSE(kurrent::wire::fill_v2_record(from_values, &got).has_value());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, want)) << got.ShortDebugString();
  EXPECT_EQ(
      got.properties().at("o").struct_value().fields().at("inner").struct_value().fields().at("long").string_value(),
      long_text);

  props.clear();
  EXPECT_EQ(props.size(), 0u);
  EventData broken = from_values;
  broken.properties = "\x12\xff";  // a length past the end
  EXPECT_TRUE(kurrent::wire::fill_v2_record(broken, &got).has_value());
}

// The AppendRecords answer read from its bytes against the generated message: the same streams and
// revisions in the same order and the same position, for what serve-store and KurrentDB send, for
// bytes with unknown fields and repeated scalars, and the same verdict on the answer cut at each of
// its first and last 64 bytes.
TEST(RecordsWire, AnswersReadAsProtobufReadsThem) {
  namespace v2 = kurrentdb::protocol::v2::streams;
  auto expect_same = [](const std::string& bytes) {
    v2::AppendRecordsResponse want;
    const bool parsed = want.ParseFromString(bytes);
    RecordsAnswer got;
    ASSERT_EQ(read_records_answer(bytes, &got), parsed) << bytes.size();
    if (!parsed) return;
    ASSERT_EQ(got.revisions.size(), size_t(want.revisions_size()));
    for (int i = 0; i < want.revisions_size(); ++i) {
      EXPECT_EQ(got.revisions[size_t(i)].first, want.revisions(i).stream()) << i;
      EXPECT_EQ(got.revisions[size_t(i)].second, want.revisions(i).revision()) << i;
    }
    EXPECT_EQ(got.position, want.position());
  };
  v2::AppendRecordsResponse resp;
  for (int64_t k = 0; k < 300; ++k) {
    auto* r = resp.add_revisions();
    r->set_stream("Task-" + std::to_string(k * 7919));
    r->set_revision(k % 5 == 0 ? -1 : k * 1000003);
  }
  resp.set_position(std::numeric_limits<int64_t>::max());
  const std::string bytes = resp.SerializeAsString();
  expect_same(bytes);
  expect_same("");
  for (size_t n = 0; n < 64; ++n) expect_same(bytes.substr(0, n));         // every early cut
  for (size_t n = bytes.size() - 64; n < bytes.size(); ++n) expect_same(bytes.substr(0, n));

  // Unknown fields of every wire type, a field of the wrong wire type, repeated scalars (the last
  // wins), an empty entry, a negative position.
  v2::StreamRevision twice;
  twice.set_stream("first");
  twice.set_revision(1);
  v2::StreamRevision second;
  second.set_stream("second");
  second.set_revision(-4);
  std::string odd = resp.SerializeAsString();
  odd += twice.SerializeAsString().insert(0, std::string{char(0x0a), char(twice.ByteSizeLong() +
                                                                           second.ByteSizeLong())}) +
         second.SerializeAsString();
  odd += std::string{char(0x38), char(0x96), char(0x01)};                       // field 7, varint
  odd += std::string{char(0x41)} + std::string(8, '\x01');                     // field 8, fixed64
  odd += std::string{char(0x4a), char(0x02), 'h', 'i'};                        // field 9, bytes
  odd += std::string{char(0x55)} + std::string(4, '\x02');                     // field 10, fixed32
  odd += std::string{char(0x0a), char(0x00)};                                  // an empty StreamRevision
  odd += std::string{char(0x12), char(0x01), 'x'};                             // position as bytes: unknown
  odd += std::string{char(0x10), char(0x03)};                                  // position -2
  expect_same(odd);
  expect_same(std::string{char(0x0b)});                                        // a group: refused by both
  expect_same(std::string{char(0x10), char(0xff)});                            // a cut varint
}

// serve-store's answer written from values: byte for byte what the generated message serializes,
// for streams and revisions of every size class (a zero revision and an empty name left out as
// protobuf leaves them out, negative revisions, a name over 127 bytes, a body over 127 bytes), with
// and without a position, and no revisions at all; and read back by the client's reader.
TEST(RecordsWire, AnswersWrittenAsProtobufWritesThem) {
  namespace v2 = kurrentdb::protocol::v2::streams;
  auto expect_same = [](const std::vector<std::pair<std::string_view, int64_t>>& revisions, int64_t position) {
    v2::AppendRecordsResponse want;
    for (const auto& [stream, revision] : revisions) {
      auto* r = want.add_revisions();
      r->set_stream(std::string(stream));
      r->set_revision(revision);
    }
    want.set_position(position);
    std::string got(records_answer_size(revisions, position), '\xee');
    write_records_answer(revisions, position, got.data());
    EXPECT_EQ(got, want.SerializeAsString()) << revisions.size() << " streams, position " << position;
    RecordsAnswer read;
    ASSERT_TRUE(read_records_answer(got, &read));
    EXPECT_EQ(read.revisions, revisions);
    EXPECT_EQ(read.position, position);
  };
  const std::string long_name = "Vulnerability-" + std::string(200, 'v');
  std::vector<std::pair<std::string_view, int64_t>> revisions;
  for (int64_t revision : {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{63}, int64_t{64}, int64_t{-65}, int64_t{8191},
                           int64_t{1} << 40, std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()}) {
    revisions.emplace_back("Task-0b6e0c1e-3f4a-4a57-9a4b-6c1d2e3f4a5b", revision);
    revisions.emplace_back(long_name, revision);
    revisions.emplace_back("", revision);
  }
  for (int64_t position : {int64_t{0}, int64_t{5}, int64_t{-3}, std::numeric_limits<int64_t>::max()}) {
    expect_same(revisions, position);
    expect_same({}, position);
    expect_same({{"S-1", 0}}, position);
  }
}

}  // namespace
}  // namespace kingest::wire
