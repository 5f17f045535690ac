#include "inspect/event_json.h"

#include <gtest/gtest.h>

namespace kingest::inspect {
namespace {

TEST(EventJson, KeepsJsonDataAsJsonAndTextAsString) {
  RecordedEventData e;
  e.id = *Uuid::parse("550e8400-e29b-41d4-a716-446655440000");
  e.revision = StreamRevision{3};
  e.type = "TaskCreated";
  e.content_type = "application/json";
  e.data = R"({ "a" : [1, 2] })";
  e.metadata = R"({"$correlationId":"x"})";
  e.stream = "Task-1";
  e.created_ticks = 17649000000000000;  // 2025-12-05T02:00:00Z
  EXPECT_EQ(event_json(e),
            R"({"stream":"Task-1","revision":3,"id":"550e8400-e29b-41d4-a716-446655440000","type":"TaskCreated",)"
            R"("created":"2025-12-05T02:00:00.000000Z","contentType":"application/json","data":{"a":[1,2]},)"
            R"("metadata":{"$correlationId":"x"}})");
  e.content_type = "application/octet-stream";
  e.data = "plain text";
  EXPECT_NE(event_json(e).find(R"("data":"plain text")"), std::string::npos);
  e.data = std::string("\xff\x00\x01", 3);
  EXPECT_NE(event_json(e).find(R"("data":{"base64":"/wAB"})"), std::string::npos);
}

TEST(EventJson, PrettyIndentsAndLeavesStringsAlone) {
  EXPECT_EQ(pretty_json(R"({"a":[1,{}],"b":"x,{y}:","c":[]})"),
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": \"x,{y}:\",\n  \"c\": []\n}");
  EXPECT_EQ(pretty_json(R"({"q":"a\"b,c"})"), "{\n  \"q\": \"a\\\"b,c\"\n}");
}

TEST(EventJson, TicksAsIso8601) {
  EXPECT_EQ(ticks_to_iso8601(0), "");
  EXPECT_EQ(ticks_to_iso8601(10000000), "1970-01-01T00:00:01.000000Z");
  EXPECT_EQ(ticks_to_iso8601(10000015), "1970-01-01T00:00:01.000001Z");
}

}  // namespace
}  // namespace kingest::inspect
