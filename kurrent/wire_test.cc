// The v2 properties conversions (proto/kurrentdb/wire.h) against protobuf's own JSON mapping of
// google.protobuf.Struct, which they replace on the hot path.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <limits>
#include <string>

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

}  // namespace
}  // namespace kingest::wire
