#include "pipeline/naming.h"
#include "pipeline/revision_rules.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include "core/json_writer.h"
#include "proto/kurrentdb/records_wire.h"

namespace kingest::pipeline {
namespace {

DomainEvent event() {
  DomainEvent e;
  e.event_type = "SystemRegistered";
  e.aggregate_id = "a1";
  e.aggregate_type = "System";
  e.aggregate_version = 1;
  e.payload = R"({"systemName":"x"})";
  return e;
}

TEST(StreamNameTemplate, RendersTheSeedConventionAndCustomTemplates) {
  auto t = StreamNameTemplate::parse("{AggregateType}-{AggregateId}");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->render(event()), "System-a1");
  auto c = StreamNameTemplate::parse("tenant1.{AggregateType}_{AggregateId}!");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->render(event()), "tenant1.System_a1!");
}

TEST(StreamNameTemplate, RejectsBadTemplatesWithAMessageThatSaysWhy) {
  auto unknown = StreamNameTemplate::parse("{Aggregate}-{AggregateId}");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("{Aggregate}"), std::string::npos);
  EXPECT_FALSE(StreamNameTemplate::parse("{AggregateType}-{AggregateId").ok());
  auto no_id = StreamNameTemplate::parse("{AggregateType}");
  ASSERT_FALSE(no_id.ok());
  EXPECT_NE(no_id.status().message().find("{AggregateId}"), std::string::npos);
}

TEST(VersionBase, MapsVersionsToRevisionsAndNeverToASentinel) {
  auto one = VersionBase::parse("1").value();
  EXPECT_EQ(one.revision_of(1), 0u);
  EXPECT_EQ(one.revision_of(7), 6u);
  EXPECT_EQ(one.revision_of(0), std::nullopt) << "version 0 with base 1 would land on -1 (no_stream)";
  EXPECT_EQ(one.revision_of(-3), std::nullopt);
  auto zero = VersionBase::parse("0").value();
  EXPECT_EQ(zero.revision_of(0), 0u);
  EXPECT_TRUE(VersionBase::parse("none").ok());
  EXPECT_FALSE(VersionBase::parse("2").ok());
}

TEST(EventIds, UsesTheEnvelopeUuidElseAStableNameBasedId) {
  auto e = event();
  e.event_id = "550e8400-e29b-41d4-a716-446655440000";
  EXPECT_EQ(derive_event_id(e, "System-a1", 0).to_string(), e.event_id);
  e.event_id = "evt-17";
  Uuid a = derive_event_id(e, "System-a1", 0);
  EXPECT_EQ(a.bytes()[6] >> 4, 5) << "a v5 id";
  EXPECT_EQ(derive_event_id(e, "System-a1", 0), a) << "a replay proposes the same id";
  EXPECT_NE(derive_event_id(e, "System-a1", 1), a);
  EXPECT_NE(derive_event_id(e, "System-a2", 0), a);
  auto other = e;
  other.payload = R"({"systemName":"y"})";
  EXPECT_NE(derive_event_id(other, "System-a1", 0), a) << "a different event at the same revision differs";
  other = e;
  other.event_id.clear();
  EXPECT_NE(derive_event_id(other, "System-a1", 0), a);
}

TEST(Metadata, CarriesCorrelationCausationTimeAndSource) {
  auto e = event();
  e.correlation_id = "corr-1";
  e.occurred_at = "2024-01-02T03:04:05.678Z";
  e.event_id = "evt-17";
  Uuid id = Uuid::v4();
  Uuid prev = Uuid::v4();
  std::string json = build_metadata(e, id, prev, SourceRef{"system-events", 3, 42});
  simdjson::dom::parser p;
  auto doc = p.parse(json);
  ASSERT_FALSE(doc.error()) << json;
  EXPECT_EQ(std::string_view(doc["$correlationId"]), "corr-1");
  EXPECT_EQ(std::string_view(doc["$causationId"]), prev.to_string());
  EXPECT_EQ(std::string_view(doc["occurredAt"]), "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(std::string_view(doc["eventId"]), "evt-17");
  EXPECT_EQ(std::string_view(doc["source"]["topic"]), "system-events");
  EXPECT_EQ(int64_t(doc["source"]["partition"]), 3);
  EXPECT_EQ(int64_t(doc["source"]["offset"]), 42);
}

TEST(Metadata, DefaultsCorrelationToOwnIdAndFirstCausationToCorrelation) {
  auto e = event();
  Uuid id = Uuid::v4();
  std::string json = build_metadata(e, id, std::nullopt, SourceRef{"t", 0, 0});
  simdjson::dom::parser p;
  auto doc = p.parse(json);
  ASSERT_FALSE(doc.error());
  EXPECT_EQ(std::string_view(doc["$correlationId"]), id.to_string());
  EXPECT_EQ(std::string_view(doc["$causationId"]), id.to_string());
  e.causation_id = "explicit";
  auto doc2 = p.parse(build_metadata(e, id, Uuid::v4(), SourceRef{"t", 0, 0}));
  EXPECT_EQ(std::string_view(doc2["$causationId"]), "explicit") << "an envelope's causation id wins";
}

TEST(Metadata, NamesTheRunWhenGiven) {
  auto e = event();
  const Uuid id = Uuid::v4();
  const Uuid run = Uuid::v4();
  simdjson::dom::parser p;
  auto doc = p.parse(build_metadata(e, id, std::nullopt, SourceRef{"t", 1, 2}, &run));
  ASSERT_FALSE(doc.error());
  EXPECT_EQ(std::string_view(doc["ingestRunId"]), run.to_string());
  EXPECT_EQ(int64_t(doc["source"]["offset"]), 2);
  auto without = p.parse(build_metadata(e, id, std::nullopt, SourceRef{"t", 1, 2}));
  ASSERT_FALSE(without.error());
  EXPECT_TRUE(without["ingestRunId"].error()) << "only an append's first event names the run";
}

// The cases of the metadata: every optional field, texts that JSON escapes, texts over 127 bytes
// (two-byte lengths), numbers past 15 digits and negative ones, a run's marker.
struct MetadataCase {
  DomainEvent event;
  std::optional<Uuid> previous;
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  bool with_run = false;
  [[nodiscard]] SourceRef source() const { return {topic, partition, offset}; }
};

std::vector<MetadataCase> metadata_cases() {
  std::vector<MetadataCase> out;
  out.push_back({event(), std::nullopt, "system-events", 0, 0});
  auto full = event();
  full.correlation_id = "corr-1";
  full.causation_id = "cause-9";
  full.occurred_at = "2024-01-02T03:04:05.678Z";
  full.event_id = "evt-17";
  full.content_type = "application/avro";
  out.push_back({full, Uuid::v4(), "vulnerability-events", 11, 123456789, true});
  auto escaped = event();
  escaped.correlation_id = "quote \" backslash \\ newline \n tab \t control \x01 end";
  escaped.occurred_at = "日本語の時刻 🕒";
  escaped.event_id = std::string(300, 'x');
  out.push_back({escaped, Uuid::v4(), std::string(200, 't'), 2147483647, 10000000000000001, true});
  auto negative = event();
  negative.aggregate_version = -5;
  negative.correlation_id = "c";
  out.push_back({negative, std::nullopt, "t", 0, 999999999999999});
  auto own_id = event();
  own_id.event_id = "550e8400-e29b-41d4-a716-446655440000";
  out.push_back({own_id, Uuid::v4(), "task-events", 5, 7, true});
  return out;
}

TEST(Metadata, TheJsonIsWhatJsonWriterWrites) {
  for (const auto& c : metadata_cases()) {
    const Uuid id = derive_event_id(c.event, "S-1", 0);
    const Uuid run = Uuid::v4();
    const std::string json = build_metadata(c.event, id, c.previous, c.source(), c.with_run ? &run : nullptr);
    simdjson::dom::parser p;
    auto doc = p.parse(json);
    ASSERT_FALSE(doc.error()) << json;
    JsonWriter w;
    w.begin_object();
    for (auto [key, value] : doc.get_object()) {
      w.key(key);
      if (value.is_string()) {
        w.value(std::string_view(value));
      } else if (value.is_int64()) {
        w.value(int64_t(value));
      } else {
        w.begin_object();
        for (auto [k, v] : value.get_object()) {
          w.key(k);
          if (v.is_string()) {
            w.value(std::string_view(v));
          } else {
            w.value(int64_t(v));
          }
        }
        w.end_object();
      }
    }
    w.end_object();
    EXPECT_EQ(json, w.str());
  }
}

TEST(Metadata, AsRecordPropertiesIsWhatTheRecordsEncoderWritesForTheJson) {
  for (const auto& c : metadata_cases()) {
    const Uuid id = derive_event_id(c.event, "S-1", 0);
    const Uuid run = Uuid::v4();
    const Uuid* r = c.with_run ? &run : nullptr;
    SCOPED_TRACE(c.topic);
    EventData from_json{.id = id, .type = "T", .content_type = "application/json", .data = "{}"};
    from_json.metadata = build_metadata(c.event, id, c.previous, c.source(), r);
    EventData from_values = from_json;
    from_values.metadata.clear();
    from_values.properties = "kept";
    ASSERT_TRUE(build_properties(c.event, id, c.previous, c.source(), r, &from_values.properties));
    ASSERT_EQ(from_values.properties.substr(0, 4), "kept") << "appended, not replaced";
    from_values.properties.erase(0, 4);
    std::string a, b;
    ASSERT_FALSE(wire::append_records_fragment("S-1", 0, std::span(&from_json, 1), &a).has_value());
    ASSERT_FALSE(wire::append_records_fragment("S-1", 0, std::span(&from_values, 1), &b).has_value());
    EXPECT_EQ(a, b) << from_json.metadata;
    EXPECT_GT(from_values.properties.size(), 100u);
  }
}

TEST(Metadata, AsRecordPropertiesAtEveryLengthAroundOneByteLengths) {
  // Entries up to 127 bytes are written in one pass; longer ones, or a source object over it, by
  // the two passes: the bytes are the same as the records encoder's for the JSON either way.
  for (size_t n = 0; n <= 160; n += (n < 60 || n > 120) ? 20 : 1) {
    for (int field = 0; field < 3; ++field) {
      auto e = event();
      std::string topic = "task-events";
      if (field == 0) e.correlation_id = std::string(n, 'c');
      if (field == 1) e.occurred_at = std::string(n, 'o');
      if (field == 2) topic = std::string(n, 't');
      const SourceRef source{topic, 3, 99};
      const Uuid id = derive_event_id(e, "S-1", 0);
      EventData from_json{.id = id, .type = "T", .content_type = "application/json", .data = "{}"};
      from_json.metadata = build_metadata(e, id, std::nullopt, source, nullptr);
      EventData from_values = from_json;
      from_values.metadata.clear();
      ASSERT_TRUE(build_properties(e, id, std::nullopt, source, nullptr, &from_values.properties));
      std::string a, b;
      ASSERT_FALSE(wire::append_records_fragment("S-1", 0, std::span(&from_json, 1), &a).has_value());
      ASSERT_FALSE(wire::append_records_fragment("S-1", 0, std::span(&from_values, 1), &b).has_value());
      ASSERT_EQ(a, b) << "field " << field << ", " << n << " bytes: " << from_json.metadata;
    }
  }
}

TEST(Metadata, AsRecordPropertiesRefusesTextThatIsNotUtf8) {
  auto e = event();
  e.correlation_id = "bad \xff byte";
  std::string out = "as it was";
  EXPECT_FALSE(build_properties(e, Uuid::v4(), std::nullopt, SourceRef{"t", 0, 1}, nullptr, &out));
  EXPECT_EQ(out, "as it was");
  e.correlation_id = "c";
  e.occurred_at = "\xc3";  // a truncated two-byte sequence
  EXPECT_FALSE(build_properties(e, Uuid::v4(), std::nullopt, SourceRef{"t", 0, 1}, nullptr, &out));
  EXPECT_FALSE(build_properties(event(), Uuid::v4(), std::nullopt, SourceRef{"\x80", 0, 1}, nullptr, &out));
  EXPECT_EQ(out, "as it was");
}

TEST(WrittenByRun, AnEventNamingARunStartsThatRunsAppend) {
  const Uuid ours = Uuid::v4();
  const Uuid theirs = Uuid::v4();
  const SourceRef src{"t", 0, 0};
  auto recorded = [&](const Uuid* run) {
    RecordedEventData r;
    r.metadata = build_metadata(event(), Uuid::v4(), std::nullopt, src, run);
    return r;
  };
  // Before any marker: not ours; ours, and the events after it; another run's, and after it.
  const std::vector<RecordedEventData> written = {recorded(nullptr), recorded(&ours),  recorded(nullptr),
                                                  recorded(&theirs), recorded(nullptr), recorded(&ours)};
  EXPECT_EQ(written_by_run(written, ours), (std::vector<bool>{false, true, true, false, false, true}));
  EXPECT_EQ(written_by_run(written, theirs), (std::vector<bool>{false, false, false, true, true, false}));
  EXPECT_TRUE(written_by_run({}, ours).empty());
}

TEST(Naming, FlagsAggregateTypesThatBreakCategoryProjection) {
  EXPECT_TRUE(breaks_category_projection("Security-Finding"));
  EXPECT_FALSE(breaks_category_projection("Vulnerability"));
}

}  // namespace
}  // namespace kingest::pipeline
