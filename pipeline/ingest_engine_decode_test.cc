// How the engine picks a message's decoder (content-type header, then the topic's codec, then JSON)
// and how it stores payloads that are not JSON.
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "pipeline/testing/engine_harness.h"

namespace kingest::pipeline::engine_testing {
namespace {

TEST_P(IngestEngineTest, AppendsNonJsonPayloadsAsBytesAndKeepsTheirTypeInMetadata) {
  Harness h(/*slow_decoder=*/false);
  auto e = domain_event("agg-b", 1);
  e.payload = std::string("\x01\x02\xff", 3);
  e.content_type = "application/x-avro";
  auto msg = message({"task-events", 0}, 0, codecs::encode_protobuf(e));
  msg.content_type = "application/x-protobuf";
  std::vector<SourceMessage> b;
  b.push_back(std::move(msg));
  h.engine->submit(std::move(b), 10);
  h.engine->wait_idle();
  auto events = h.sink.streams()["Task-agg-b"];
  ASSERT_EQ(events.size(), 1u) << (h.dlq.letters().empty() ? "" : h.dlq.letters()[0].detail);
  EXPECT_EQ(events[0].content_type, "application/octet-stream");
  EXPECT_EQ(events[0].data, std::string("\x01\x02\xff", 3));
  EXPECT_NE(events[0].metadata.find("\"payloadContentType\":\"application/x-avro\""), std::string::npos)
      << events[0].metadata;
}

TEST_P(IngestEngineTest, RoutesByContentTypeHeaderThenTopicCodecThenJson) {
  Harness h(/*slow_decoder=*/false, 1u << 20, {{"binary-topic", codecs::Codec::kFlatBuffers}});
  std::vector<SourceMessage> b;
  TopicPartition json_tp{"task-events", 0}, bin_tp{"binary-topic", 0};
  auto with_header = [](SourceMessage m, std::string ct) {
    m.content_type = ct;
    return m;
  };
  auto pb = codecs::encode_protobuf(domain_event("agg-r", 2));
  auto fb = codecs::encode_flatbuffers(domain_event("agg-r", 3));
  b.push_back(message(json_tp, 0, envelope({"agg-r", 1, ""})));  // no header, JSON topic
  b.push_back(with_header(message(json_tp, 1, pb), "application/x-protobuf"));
  b.push_back(message(bin_tp, 0, fb));  // no header: the topic's codec
  b.push_back(with_header(message(json_tp, 2, envelope({"agg-r", 4, ""})), "application/json; charset=utf-8"));
  b.push_back(with_header(message(json_tp, 3, envelope({"agg-q", 1, ""})), "text/plain"));
  b.push_back(message(bin_tp, 1, envelope({"agg-q", 1, ""})));  // JSON bytes on a FlatBuffers topic
  h.engine->submit(std::move(b), 10);
  h.engine->wait_idle();
  auto events = h.sink.streams()["Task-agg-r"];
  ASSERT_EQ(events.size(), 4u);
  for (size_t r = 0; r < 4; ++r) {
    EXPECT_NE(events[r].data.find("\"v\":" + std::to_string(r + 1)), std::string::npos) << events[r].data;
    EXPECT_EQ(events[r].content_type, "application/json");
  }
  auto letters = h.dlq.letters();
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0].reason, "decode-error");
  EXPECT_NE(letters[0].detail.find("text/plain"), std::string::npos) << letters[0].detail;
  EXPECT_EQ(letters[1].reason, "decode-error");
  EXPECT_EQ(letters[1].topic, "binary-topic");
  EXPECT_EQ(h.done_count(), 6u);
}

// Decoding workers note an aggregate type with '-' (KurrentDB's $by_category projection splits its
// streams); the serial stage warns once per type and run, whichever batches and workers saw it, and
// the events are written all the same.
TEST_P(IngestEngineTest, WarnsOncePerRunOfAnAggregateTypeWithADash) {
  auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", ring));
  {
    Harness h(/*slow_decoder=*/false);
    TopicPartition tp{"scan-events", 0};
    auto typed = [&](int64_t offset, const std::string& type, const std::string& id, int version) {
      return message(tp, offset,
                     R"({"eventType":"X","aggregateType":")" + type + R"(","aggregateId":")" + id +
                         R"(","aggregateVersion":)" + std::to_string(version) + "}");
    };
    std::vector<SourceMessage> b1, b2;
    b1.push_back(typed(0, "Vuln-Scan", "1", 1));
    b1.push_back(typed(1, "Vuln-Scan", "2", 1));
    b1.push_back(typed(2, "Task", "3", 1));
    b2.push_back(typed(3, "Vuln-Scan", "1", 2));
    b2.push_back(typed(4, "Port-Scan", "4", 1));
    h.engine->submit(std::move(b1), 10);
    h.engine->submit(std::move(b2), 10);
    h.engine->wait_idle();
    EXPECT_EQ(h.engine->stats().events_appended, 5u);
    EXPECT_EQ(h.sink.streams()["Vuln-Scan-1"].size(), 2u);
  }
  spdlog::set_default_logger(previous);
  std::map<std::string, int> warned;
  for (const std::string& line : ring->last_formatted()) {
    for (const char* type : {"'Vuln-Scan'", "'Port-Scan'", "'Task'"}) {
      if (line.find(type) != std::string::npos && line.find("$by_category") != std::string::npos) ++warned[type];
    }
  }
  EXPECT_EQ(warned["'Vuln-Scan'"], 1);
  EXPECT_EQ(warned["'Port-Scan'"], 1);
  EXPECT_EQ(warned["'Task'"], 0);
}

}  // namespace
}  // namespace kingest::pipeline::engine_testing
