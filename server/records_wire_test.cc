// The AppendRecordsRequest read from its bytes against the generated message: the same records,
// checks and events (the metadata compared as JSON values: the generated map prints its keys in
// hash order, the reader in the order sent), and the same verdict on malformed bytes.
#include "server/internal/records_wire.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "proto/kurrentdb/wire.h"
#include "server/internal/server.h"

namespace kingest::server::internal {
namespace {

struct Read {
  std::unique_ptr<const std::string> bytes;  // what the views point into (on the heap: they survive moves)
  absl::Status status;
  std::vector<WireRecord> records;
  std::vector<WireCheck> checks;
};

Read read(std::string bytes) {
  Read r;
  r.bytes = std::make_unique<const std::string>(std::move(bytes));
  r.status = read_append_records(*r.bytes, &r.records, &r.checks);
  return r;
}

// The event the reader's views make, as append_records builds it.
absl::StatusOr<store::ProposedEvent> event_of(const WireRecord& rec) {
  auto id = Uuid::parse(rec.record_id);
  if (!id) return absl::InvalidArgumentError("record_id");
  const auto format = static_cast<v2::SchemaFormat>(rec.schema_format);
  store::ProposedEvent ev{.id = *id,
                          .type = std::string(rec.schema_name),
                          .content_type = format == v2::SCHEMA_FORMAT_JSON ? "application/json" : "application/octet-stream",
                          .data = std::string(rec.data),
                          .metadata = {}};
  if (auto s = append_properties_json(rec, schema_format_name(format), &ev.metadata); !s.ok()) return s;
  return ev;
}

google::protobuf::Struct as_struct(const std::string& json) {
  google::protobuf::Struct s;
  EXPECT_TRUE(wire::properties_from_json(json, s.mutable_fields())) << json;
  return s;
}

// Both readings of `bytes` agree: the generated message through v2_event, the reader through
// append_properties_json.
void expect_same(const std::string& bytes) {
  v2::AppendRecordsRequest req;
  ASSERT_TRUE(req.ParseFromString(bytes));
  auto r = read(bytes);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.records.size(), size_t(req.records_size()));
  for (int i = 0; i < req.records_size(); ++i) {
    const auto& want = req.records(i);
    const auto& got = r.records[size_t(i)];
    EXPECT_EQ(got.stream, want.stream()) << i;
    EXPECT_EQ(got.record_id, want.record_id()) << i;
    EXPECT_EQ(got.schema_name, want.schema().name()) << i;
    EXPECT_EQ(got.schema_format, int64_t(want.schema().format())) << i;
    EXPECT_EQ(got.data, want.data()) << i;
    auto want_ev = v2_event(want);
    auto got_ev = event_of(got);
    ASSERT_EQ(want_ev.ok(), got_ev.ok()) << i << ": " << want_ev.status() << " / " << got_ev.status();
    if (!want_ev.ok()) continue;
    EXPECT_EQ(got_ev->id, want_ev->id);
    EXPECT_EQ(got_ev->type, want_ev->type);
    EXPECT_EQ(got_ev->content_type, want_ev->content_type);
    EXPECT_EQ(got_ev->data, want_ev->data);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(as_struct(got_ev->metadata),
                                                                   as_struct(want_ev->metadata)))
        << got_ev->metadata << "\n" << want_ev->metadata;
    EXPECT_EQ(got_ev->metadata.size(), want_ev->metadata.size());
  }
  ASSERT_EQ(r.checks.size(), size_t(req.checks_size()));
  for (int i = 0; i < req.checks_size(); ++i) {
    EXPECT_EQ(r.checks[size_t(i)].has_stream_state, req.checks(i).has_stream_state()) << i;
    EXPECT_EQ(r.checks[size_t(i)].stream, req.checks(i).stream_state().stream()) << i;
    EXPECT_EQ(r.checks[size_t(i)].expected_state, req.checks(i).stream_state().expected_state()) << i;
  }
}

v2::AppendRecord* add_record(v2::AppendRecordsRequest* req, const std::string& stream, const std::string& type,
                             v2::SchemaFormat format, const std::string& data) {
  auto* rec = req->add_records();
  rec->set_stream(stream);
  rec->set_record_id(Uuid::v4().to_string());
  rec->mutable_schema()->set_name(type);
  rec->mutable_schema()->set_format(format);
  rec->set_data(data);
  return rec;
}

// A request like the pipeline's: metadata with a nested "source" object, plus every Value kind.
v2::AppendRecordsRequest sample() {
  v2::AppendRecordsRequest req;
  auto* a = add_record(&req, "System-1", "SystemRegistered", v2::SCHEMA_FORMAT_JSON, R"({"name":"x"})");
  EXPECT_TRUE(wire::properties_from_json(
      R"({"$correlationId":"6f1c1b9e-52f0-4c4b-9f3e-0c2d7e1f4a10","$causationId":"c","occurredAt":"2024-01-01T00:00:00Z",)"
      R"("aggregateVersion":3,"source":{"topic":"system-events","partition":7,"offset":123456789}})",
      a->mutable_properties()));
  auto* b = add_record(&req, "Task-9", "TaskOpened", v2::SCHEMA_FORMAT_BYTES, std::string("\0\1\2", 3));
  EXPECT_TRUE(wire::properties_from_json(
      R"({"quote\"d":"tab\there \u00e9 \ud83d\ude00","n":-0.25,"big":1e300,"t":true,"f":false,"z":null,)"
      R"("list":[1,"two",[3,{"four":4}],{},[]],"empty":{},"neg":-9007199254740992})",
      b->mutable_properties()));
  add_record(&req, "System-1", "SystemRenamed", v2::SCHEMA_FORMAT_UNSPECIFIED, "");
  auto* c = req.add_checks()->mutable_stream_state();
  c->set_stream("System-1");
  c->set_expected_state(-1);
  c = req.add_checks()->mutable_stream_state();
  c->set_stream("Task-9");
  c->set_expected_state(41);
  c = req.add_checks()->mutable_stream_state();
  c->set_stream("Other");
  c->set_expected_state(-4);
  req.add_checks();  // no type
  return req;
}

TEST(RecordsWire, ReadsWhatTheGeneratedMessageReads) { expect_same(sample().SerializeAsString()); }

// Keys and strings are checked sixteen bytes at a time (eight without SSE2) for bytes JSON escapes
// (or non-ASCII ones): each such byte at every place of strings shorter and longer than a block, and
// of several blocks.
TEST(RecordsWire, EscapesEveryByteThatNeedsItWhereverItIs) {
  const std::vector<std::string> specials = {"\"", "\\", "\n", std::string(1, '\0'), "\x01", "\x1f", "\x7f",
                                             " ", "~", "\xc3\xa9", "\xf0\x9f\x98\x80"};
  v2::AppendRecordsRequest req;
  for (const std::string& special : specials) {
    for (size_t length : {1, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 47}) {
      for (size_t at = 0; at < length; ++at) {
        std::string text(length, 'a');
        text.replace(at, 1, special);
        auto* rec = add_record(&req, "S-1", "T", v2::SCHEMA_FORMAT_JSON, "{}");
        (*rec->mutable_properties())[text].set_string_value(text);
      }
    }
  }
  expect_same(req.SerializeAsString());
}

TEST(RecordsWire, PropertiesInTheOrderSentThenTheSchema) {
  v2::AppendRecordsRequest req;
  auto* rec = add_record(&req, "s", "T", v2::SCHEMA_FORMAT_JSON, "{}");
  (*rec->mutable_properties())["a"].set_number_value(1.5);
  auto r = read(req.SerializeAsString());
  ASSERT_TRUE(r.status.ok()) << r.status;
  std::string json;
  ASSERT_TRUE(append_properties_json(r.records[0], "Json", &json).ok());
  EXPECT_EQ(json, R"({"a":1.5,"$schema.format":"Json","$schema.name":"T"})");

  // A property named like the schema's keys is replaced by them (as the generated path does).
  (*rec->mutable_properties())["$schema.name"].set_string_value("mine");
  r = read(req.SerializeAsString());
  json.clear();
  ASSERT_TRUE(append_properties_json(r.records[0], "Json", &json).ok());
  EXPECT_EQ(json, R"({"a":1.5,"$schema.format":"Json","$schema.name":"T"})");

  rec->clear_properties();
  r = read(req.SerializeAsString());
  json.clear();
  ASSERT_TRUE(append_properties_json(r.records[0], "Bytes", &json).ok());
  EXPECT_EQ(json, R"({"$schema.format":"Bytes","$schema.name":"T"})");
}

// Concatenated encodings merge: later singular fields win, message fields merge, a repeated map
// key keeps its last value; unknown fields are skipped.
TEST(RecordsWire, MergesAsProtobufDoes) {
  v2::AppendRecordsRequest first;
  auto* rec = add_record(&first, "s-1", "First", v2::SCHEMA_FORMAT_JSON, "{}");
  (*rec->mutable_properties())["k"].set_string_value("old");
  (*rec->mutable_properties())["keep"].set_bool_value(true);
  v2::AppendRecord second;
  second.mutable_schema()->set_name("Second");  // format stays JSON
  (*second.mutable_properties())["k"].set_string_value("new");
  second.set_stream("s-2");
  std::string record = rec->SerializeAsString() + second.SerializeAsString();
  // An unknown varint field (15), an unknown fixed32 (16) and an unknown length-delimited (17).
  record += std::string("\x78\x2a", 2) + std::string("\x85\x01\x01\x02\x03\x04", 6) + std::string("\x8a\x01\x02hi", 5);
  v2::AppendRecordsRequest merged;
  ASSERT_TRUE(merged.mutable_records()->Add()->ParseFromString(record));
  ASSERT_EQ(merged.records(0).schema().format(), v2::SCHEMA_FORMAT_JSON);
  ASSERT_EQ(merged.records(0).properties().at("k").string_value(), "new");
  expect_same(merged.SerializeAsString());

  // The same merge from raw bytes (not re-serialized by protobuf): request field 1 = that record.
  std::string request;
  request.push_back('\x0a');
  ASSERT_LT(record.size(), 128u);
  request.push_back(static_cast<char>(record.size()));
  request += record;
  expect_same(request);
  auto r = read(request);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.records[0].stream, "s-2");
  EXPECT_EQ(r.records[0].schema_name, "Second");
  auto ev = event_of(r.records[0]);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(ev->metadata, R"({"keep":true,"k":"new","$schema.format":"Json","$schema.name":"Second"})");
}

TEST(RecordsWire, EveryTruncationIsRefusedOrReadAsProtobufReadsIt) {
  const std::string bytes = sample().SerializeAsString();
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string prefix = bytes.substr(0, n);
    v2::AppendRecordsRequest req;
    const bool parsed = req.ParseFromString(prefix);
    auto r = read(prefix);
    ASSERT_EQ(r.status.ok(), parsed) << "prefix of " << n << " bytes: " << r.status;
    if (parsed) {
      EXPECT_EQ(r.records.size(), size_t(req.records_size())) << n;
      EXPECT_EQ(r.checks.size(), size_t(req.checks_size())) << n;
    }
  }
}

TEST(RecordsWire, RefusesWhatProtobufRefuses) {
  // Field number 0, a group (wire type 3), a varint of 11 bytes, a length past the end.
  for (const std::string& bad : {std::string("\x00\x01", 2), std::string("\x0b"), std::string("\x08") + std::string(10, '\xff') + "\x01",
                                std::string("\x0a\x05\x01")}) {
    v2::AppendRecordsRequest req;
    EXPECT_FALSE(req.ParseFromString(bad));
    EXPECT_FALSE(read(bad).status.ok());
  }
  // A stream name that is not UTF-8.
  v2::AppendRecordsRequest req;
  auto* rec = add_record(&req, "ok", "T", v2::SCHEMA_FORMAT_JSON, "{}");
  std::string bytes = req.SerializeAsString();
  auto at = bytes.find("ok");
  bytes[at] = '\xc3';
  bytes[at + 1] = '\x28';
  EXPECT_FALSE(req.ParseFromString(bytes));
  EXPECT_EQ(read(bytes).status.code(), absl::StatusCode::kInvalidArgument);
  (void)rec;
}

TEST(RecordsWire, PropertiesThatCannotBeJson) {
  v2::AppendRecordsRequest req;
  auto* rec = add_record(&req, "s", "T", v2::SCHEMA_FORMAT_JSON, "{}");
  (*rec->mutable_properties())["inf"].set_number_value(std::numeric_limits<double>::infinity());
  expect_same(req.SerializeAsString());  // both refuse
  auto r = read(req.SerializeAsString());
  ASSERT_TRUE(r.status.ok());
  std::string json;
  EXPECT_EQ(append_properties_json(r.records[0], "Json", &json).code(), absl::StatusCode::kInvalidArgument);

  // Nested deeper than protobuf's recursion limit: refused, not a stack overflow.
  google::protobuf::Value deep;
  deep.set_string_value("leaf");
  for (int i = 0; i < 150; ++i) {
    google::protobuf::Value outer;
    *outer.mutable_list_value()->add_values() = deep;
    deep = outer;
  }
  rec->clear_properties();
  (*rec->mutable_properties())["deep"] = deep;
  std::string bytes;
  ASSERT_TRUE(req.SerializeToString(&bytes));
  r = read(bytes);
  ASSERT_TRUE(r.status.ok());
  json.clear();
  EXPECT_FALSE(append_properties_json(r.records[0], "Json", &json).ok());
}

}  // namespace
}  // namespace kingest::server::internal
