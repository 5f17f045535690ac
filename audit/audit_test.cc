// The auditor's classification against the real embedded store: the store is filled the way the
// ingest writes (ids from derive_event_id, revisions from the version), then changed.
#include "audit/audit.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "pipeline/dead_letter.h"
#include "store/event_store.h"
#include "store/store_sink.h"

namespace kingest::audit {
namespace {

SourceMessage message(const std::string& aggregate, int version, const std::string& payload, int64_t offset,
                      const std::string& event_id = {}) {
  SourceMessage m;
  m.tp = TopicPartition{"task-events", 0};
  m.offset = KafkaOffset{offset};
  std::string v = R"({"eventType":"TaskUpdated","aggregateId":")" + aggregate +
                  R"(","aggregateType":"Task","aggregateVersion":)" + std::to_string(version) +
                  (event_id.empty() ? "" : R"(,"eventId":")" + event_id + "\"") + R"(,"data":)" + payload + "}";
  m.assign_value(v.data(), v.size());
  return m;
}

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *store::EventStore::open({.in_memory = true});
    sink_ = std::make_unique<store::StoreSink>(*store_);
  }

  // Writes the message's event as the ingest does.
  void write(const SourceMessage& m, std::optional<uint64_t> at = std::nullopt, std::string data = {}) {
    auto ev = std::get<DomainEvent>(codecs::decode_message(m, {}));
    std::string stream = rules_.stream_names.render(ev);
    uint64_t rev = *rules_.version_base.revision_of(ev.aggregate_version);
    store::ProposedEvent p{.id = pipeline::derive_event_id(ev, stream, rev),
                           .type = ev.event_type.str(),
                           .content_type = "application/json",
                           .data = data.empty() ? ev.payload : data,
                           .metadata = "{}"};
    uint64_t target = at.value_or(rev);
    ExpectedRevision expected =
        target == 0 ? ExpectedRevision{ExpectNoStream{}} : ExpectedRevision{StreamRevision{target - 1}};
    auto r = store_->append_sync(stream, expected, {p});
    ASSERT_EQ(r.status, store::AppendStatus::kSuccess) << r.message;
  }

  // The events of consecutive messages of one stream in one append (one write).
  void write_together(const std::vector<SourceMessage>& ms) {
    std::string stream;
    std::vector<store::ProposedEvent> events;
    uint64_t first = 0;
    for (const auto& m : ms) {
      auto ev = std::get<DomainEvent>(codecs::decode_message(m, {}));
      stream = rules_.stream_names.render(ev);
      uint64_t rev = *rules_.version_base.revision_of(ev.aggregate_version);
      if (events.empty()) first = rev;
      events.push_back({.id = pipeline::derive_event_id(ev, stream, rev),
                        .type = ev.event_type.str(),
                        .content_type = "application/json",
                        .data = ev.payload,
                        .metadata = "{}"});
    }
    ExpectedRevision expected =
        first == 0 ? ExpectedRevision{ExpectNoStream{}} : ExpectedRevision{StreamRevision{first - 1}};
    auto r = store_->append_sync(stream, expected, std::move(events));
    ASSERT_EQ(r.status, store::AppendStatus::kSuccess) << r.message;
  }

  void other(const std::string& stream, const std::string& type = "Other") {
    auto r = store_->append_sync(stream, ExpectAny{},
                                 {store::ProposedEvent{.id = Uuid::v5(Uuid::nil(), stream + std::to_string(++others_)),
                                                       .type = type,
                                                       .content_type = "application/json",
                                                       .data = "{}",
                                                       .metadata = "{}"}});
    ASSERT_EQ(r.status, store::AppendStatus::kSuccess) << r.message;
  }

  void stray(const std::string& stream, uint64_t expected) {
    auto r = store_->append_sync(stream, StreamRevision{expected},
                                 {store::ProposedEvent{.id = Uuid::v5(Uuid::nil(), "stray"),
                                                       .type = "Stray",
                                                       .content_type = "application/json",
                                                       .data = "{}",
                                                       .metadata = "{}"}});
    ASSERT_EQ(r.status, store::AppendStatus::kSuccess) << r.message;
  }

  // $all as KurrentClient::read_all serves it: from a position, inclusive (the store reads after one).
  AllReader all_reader() {
    return [this](uint64_t from, uint64_t count) -> absl::StatusOr<std::vector<RecordedEventData>> {
      auto r = store_->read_all(from == 0 ? 0 : from - 1, count);
      if (!r.ok()) return r.status();
      std::vector<RecordedEventData> out;
      for (auto& e : *r) {
        out.push_back({e.id, e.revision, std::move(e.type), std::move(e.content_type), std::move(e.data),
                       std::move(e.metadata), std::move(e.stream), e.position});
      }
      return out;
    };
  }

  // How the store is read: each stream in `check`, each stream as soon as seen, $all to its end, or
  // $all within the budget.
  enum class How { kStreams, kPrefetch, kAll, kAuto };
  static constexpr How kEveryWay[] = {How::kStreams, How::kPrefetch, How::kAll, How::kAuto};

  AuditReport audit(std::vector<SourceMessage> messages, const std::set<SourcePosition>& dead = {},
                    How how = How::kStreams, AllReader reader = {}, uint64_t planned = 0) {
    // Small pages: every read takes several.
    CheckOptions options{
        .read_threads = 4, .page_size = 2, .examples = 5, .all_page_size = 3, .planned_messages = planned};
    options.store_read = how == How::kAll    ? StoreRead::kAll
                         : how == How::kAuto ? StoreRead::kAuto
                                             : StoreRead::kStreams;
    Auditor a(rules_);
    a.add_dead_letters(dead);
    if (how == How::kPrefetch) a.prefetch_from(*sink_, options);
    if (how == How::kAll || how == How::kAuto) a.read_all_from(reader ? reader : all_reader(), options);
    a.add(std::move(messages));
    auto r = a.check(*sink_, options);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : AuditReport{};
  }

  // The findings alone: counts and examples, without timings or how the store was read.
  static std::string findings(const AuditReport& r) {
    std::string out;
    for (size_t i = 0; i < kFindingCount; ++i) {
      out += std::string(finding_name(Finding(i))) + "=" + std::to_string(r.counts[i]) + "\n";
      for (const auto& ex : r.examples[i]) {
        out += "  " + ex.stream + "@" + (ex.revision ? std::to_string(*ex.revision) : "-") + " " + ex.topic + "[" +
               std::to_string(ex.partition) + "]@" + std::to_string(ex.offset) + ": " + ex.detail + "\n";
      }
    }
    return out + "streams=" + std::to_string(r.streams) + " messages=" + std::to_string(r.messages);
  }

  Rules rules_;
  int others_ = 0;
  std::unique_ptr<store::EventStore> store_;
  std::unique_ptr<store::StoreSink> sink_;
};

TEST_F(AuditTest, EverythingWrittenIsAccountedFor) {
  std::vector<SourceMessage> ms;
  for (int v = 1; v <= 5; ++v) ms.push_back(message("a", v, R"({"n":)" + std::to_string(v) + "}", v));
  for (const auto& m : ms) write(m);
  // A duplicate of an identical earlier message is a replay's business as usual.
  ms.push_back(message("a", 2, R"({"n":2})", 6));
  for (How how : kEveryWay) {
    auto r = audit(ms, {}, how);
    EXPECT_TRUE(r.accounted()) << r.to_text();
    EXPECT_EQ(r.count(Finding::kOk), 6u);
    EXPECT_EQ(r.streams, 1u);
    EXPECT_EQ(r.store_events_read, 5u);
    EXPECT_EQ(r.store_read, how == How::kAll || how == How::kAuto ? "all" : "streams") << r.to_text();
  }
}

TEST_F(AuditTest, StrayEventIsExtraWithStreamAndRevision) {
  std::vector<SourceMessage> ms = {message("a", 1, "{}", 0), message("a", 2, "{}", 1)};
  for (const auto& m : ms) write(m);
  stray("Task-a", 1);
  auto r = audit(ms);
  EXPECT_FALSE(r.accounted());
  EXPECT_EQ(r.count(Finding::kExtra), 1u);
  ASSERT_EQ(r.examples[size_t(Finding::kExtra)].size(), 1u);
  EXPECT_EQ(r.examples[size_t(Finding::kExtra)][0].stream, "Task-a");
  EXPECT_EQ(r.examples[size_t(Finding::kExtra)][0].revision, 2u);
  EXPECT_NE(r.to_text().find("extra: stream Task-a revision 2"), std::string::npos) << r.to_text();
}

TEST_F(AuditTest, MissingMismatchedAndMisordered) {
  std::vector<SourceMessage> ms = {message("a", 1, "{}", 0),        message("a", 2, R"({"x":1})", 1),
                                   message("b", 1, "{}", 2),        message("b", 2, R"({"y":1})", 3),
                                   message("c", 1, "{}", 4),        message("c", 2, "{}", 5),
                                   message("d", 1, R"({"d":1})", 6)};
  write(ms[0]);  // a: revision 1 never written
  write(ms[2]);
  write(ms[3], std::nullopt, R"({"y":2})");  // b: same id, other data
  write(ms[5], 0);                           // c: the second message's event at revision 0
  write(ms[4], 1);
  write(message("d", 1, R"({"other":1})", 9));  // d: another event (another id) at its revision
  for (How how : kEveryWay) {
    auto r = audit(ms, {}, how);
    EXPECT_FALSE(r.accounted());
    EXPECT_EQ(r.count(Finding::kMissing), 1u) << r.to_text();
    EXPECT_EQ(r.count(Finding::kMismatched), 2u) << r.to_text();
    EXPECT_EQ(r.count(Finding::kMisordered), 2u) << r.to_text();
    EXPECT_EQ(r.count(Finding::kOk), 2u) << r.to_text();
    EXPECT_EQ(r.count(Finding::kExtra), 0u) << r.to_text();
    EXPECT_EQ(r.examples[size_t(Finding::kMissing)][0].stream, "Task-a");
    EXPECT_EQ(r.examples[size_t(Finding::kMissing)][0].revision, 1u);
    EXPECT_EQ(r.examples[size_t(Finding::kMissing)][0].offset, 1);
  }
}

// Many streams with one of every finding, and events a stream read would not show or no message
// names (other streams, system streams, a metadata stream): every way of reading the store finds
// the same.
TEST_F(AuditTest, AllAndPerStreamReadsFindTheSame) {
  std::vector<SourceMessage> ms;
  int64_t offset = 0;
  for (int s = 0; s < 40; ++s) {
    for (int v = 1; v <= 3; ++v) {
      ms.push_back(message("s" + std::to_string(s), v, R"({"s":)" + std::to_string(s * 10 + v) + "}", offset++));
    }
  }
  SourceMessage bad;
  bad.tp = TopicPartition{"task-events", 0};
  bad.assign_value("not json", 8);
  bad.offset = KafkaOffset{offset++};
  ms.push_back(bad);
  bad.offset = KafkaOffset{offset++};
  ms.push_back(bad);
  for (size_t i = 0; i < 120; ++i) {
    if (i % 3 == 0) other("Other-" + std::to_string(i));
    // s3 v3: missing; s5 v2: not written, so s5 v3 lands at its revision (misordered) and that
    // revision holds another event for v2 (mismatched).
    if (i == 3 * 3 + 2 || i == 3 * 5 + 1) continue;
    if (i == 3 * 5 + 2) {
      write(ms[i], 1);
      continue;
    }
    if (i == 3 * 7 + 1) {
      // s7 v2: another event (another id) at its revision.
      write(message("s7", 2, R"({"s":72})", 999, "6f1c3b1e-0000-4000-8000-000000000001"));
      continue;
    }
    if (i == 3 * 9 + 2) {
      write(ms[i], std::nullopt, R"({"changed":true})");  // s9 v3: same id, changed data
      continue;
    }
    write(ms[i]);
  }
  stray("Task-s11", 2);  // s11: a stray fourth event
  other("$$Task-s13", "$metadata");
  other("$stats-127.0.0.1:2113");
  // The dead-letter file names one of the two undecodable messages.
  const std::set<SourcePosition> dead = {{"task-events", 0, offset - 2}};

  const std::string expected = findings(audit(ms, dead, How::kStreams));
  for (How how : kEveryWay) {
    auto r = audit(ms, dead, how);
    EXPECT_EQ(findings(r), expected) << int(how);
    EXPECT_EQ(r.count(Finding::kOk), 115u) << r.to_text();
    EXPECT_EQ(r.count(Finding::kMissing), 1u) << r.to_text();
    EXPECT_EQ(r.count(Finding::kMisordered), 1u) << r.to_text();
    EXPECT_EQ(r.count(Finding::kMismatched), 3u) << r.to_text();
    EXPECT_EQ(r.count(Finding::kExtra), 1u) << r.to_text();
    EXPECT_EQ(r.count(Finding::kDeadLettered), 1u) << r.to_text();
    EXPECT_EQ(r.count(Finding::kUndecodable), 1u) << r.to_text();
    EXPECT_EQ(r.examples[size_t(Finding::kExtra)].at(0).stream, "Task-s11");
    EXPECT_EQ(r.examples[size_t(Finding::kExtra)].at(0).revision, 3u);
    // The store holds little beyond the audited streams: auto reads $all.
    EXPECT_EQ(r.store_read, how == How::kAll || how == How::kAuto ? "all" : "streams");
  }
}

TEST_F(AuditTest, AutoReadsStreamByStreamWhenTheStoreHoldsMuchMore) {
  std::vector<SourceMessage> ms = {message("a", 1, "{}", 0), message("a", 2, "{}", 1)};
  write(ms[0]);
  for (int i = 0; i < 60; ++i) other("Other-" + std::to_string(i % 7));
  write(ms[1]);
  stray("Task-a", 1);
  const std::string expected = findings(audit(ms));
  auto r = audit(ms, {}, How::kAuto);
  EXPECT_EQ(findings(r), expected);
  EXPECT_EQ(r.count(Finding::kExtra), 1u) << r.to_text();
  // 2 messages and 1 stream: a budget of 2 + 16 events, and $all holds 63.
  EXPECT_EQ(r.store_read, "streams");
  EXPECT_NE(r.store_read_note.find("$all holds more than 18 events"), std::string::npos) << r.store_read_note;
  EXPECT_NE(r.to_text().find("$all holds more than 18 events"), std::string::npos) << r.to_text();
  // A larger plan lets the read run ahead while Kafka is read; the budget at the end is what came.
  auto planned = audit(ms, {}, How::kAuto, {}, 1000);
  EXPECT_EQ(findings(planned), expected);
  EXPECT_EQ(planned.store_read, "streams");
  auto all = audit(ms, {}, How::kAll);
  EXPECT_EQ(findings(all), expected);
  EXPECT_EQ(all.store_read, "all");
  EXPECT_EQ(all.store_events_read, 63u);
}

// KurrentDB gives the events of one write one commit position: pages resume at that position and
// skip what they read, even when one write is larger than a page.
TEST_F(AuditTest, AllPagesResumeInsideOneWrite) {
  std::vector<SourceMessage> a, b;
  for (int v = 1; v <= 7; ++v) a.push_back(message("a", v, "{}", v));
  for (int v = 1; v <= 3; ++v) b.push_back(message("b", v, "{}", 10 + v));
  write_together(a);
  write_together(b);
  AllReader shared_positions = [this](uint64_t from, uint64_t count) -> absl::StatusOr<std::vector<RecordedEventData>> {
    auto r = all_reader()(0, 1000);
    if (!r.ok()) return r.status();
    std::map<std::string, uint64_t> first;  // each stream was one write here
    for (const auto& e : *r) first.try_emplace(e.stream, e.position);
    std::vector<RecordedEventData> out;
    for (auto& e : *r) {
      e.position = first[e.stream];
      if (e.position >= from && out.size() < count) out.push_back(std::move(e));
    }
    return out;
  };
  std::vector<SourceMessage> ms = a;
  ms.insert(ms.end(), b.begin(), b.end());
  auto r = audit(ms, {}, How::kAll, shared_positions);
  EXPECT_TRUE(r.accounted()) << r.to_text();
  EXPECT_EQ(r.count(Finding::kOk), 10u);
  EXPECT_EQ(r.store_events_read, 10u);
  EXPECT_EQ(r.store_read, "all");
}

TEST_F(AuditTest, AllReadFailureFailsAllAndAutoReadsStreamByStream) {
  std::vector<SourceMessage> ms = {message("a", 1, "{}", 0)};
  write(ms[0]);
  AllReader denied = [](uint64_t, uint64_t) -> absl::StatusOr<std::vector<RecordedEventData>> {
    return absl::PermissionDeniedError("access denied");
  };
  CheckOptions options{.store_read = StoreRead::kAll};
  {
    Auditor a(rules_);
    a.read_all_from(denied, options);
    a.add(ms);
    auto r = a.check(*sink_, options);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_NE(r.status().message().find("reading $all: access denied"), std::string::npos) << r.status();
  }
  auto r = audit(ms, {}, How::kAuto, denied);
  EXPECT_TRUE(r.accounted()) << r.to_text();
  EXPECT_EQ(r.store_read, "streams");
  EXPECT_NE(r.store_read_note.find("reading $all: access denied (read stream by stream instead)"), std::string::npos)
      << r.store_read_note;
}

TEST_F(AuditTest, StoreReadNames) {
  for (StoreRead r : {StoreRead::kAuto, StoreRead::kStreams, StoreRead::kAll}) {
    EXPECT_EQ(*parse_store_read(to_string(r)), r);
  }
  EXPECT_NE(parse_store_read("every").status().message().find("expected auto, streams or all"), std::string::npos);
}

TEST_F(AuditTest, DeadLettersAccountForMessagesAndUndecodableOnesMustBeThere) {
  SourceMessage bad;
  bad.tp = TopicPartition{"task-events", 0};
  bad.offset = KafkaOffset{7};
  bad.assign_value("not json", 8);
  std::vector<SourceMessage> ms = {message("a", 1, "{}", 0), message("a", 1, R"({"conflict":1})", 1), bad};
  write(ms[0]);
  auto without = audit(ms);
  EXPECT_FALSE(without.accounted());
  EXPECT_EQ(without.count(Finding::kUndecodable), 1u);
  EXPECT_EQ(without.count(Finding::kMismatched), 1u);
  EXPECT_EQ(without.examples[size_t(Finding::kMismatched)][0].revision, 0u);

  // The file as the ingest writes it.
  auto path = std::filesystem::temp_directory_path() / ("ki-audit-dlq-" + std::to_string(::getpid()) + ".ndjson");
  {
    auto dlq = *pipeline::NdjsonDeadLetterFile::open(path);
    ASSERT_TRUE(dlq->write({pipeline::DeadLetter{.reason = "revision-conflict", .topic = "task-events", .offset = 1},
                            pipeline::DeadLetter{.reason = "decode-error", .topic = "task-events", .offset = 7}})
                    .ok());
  }
  auto dead = read_dead_letter_file(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(dead.ok()) << dead.status();
  auto with = audit(ms, *dead);
  EXPECT_TRUE(with.accounted()) << with.to_text();
  EXPECT_EQ(with.count(Finding::kDeadLettered), 2u);
  EXPECT_EQ(with.count(Finding::kOk), 1u);
}

TEST_F(AuditTest, SystemStreamsMustBeDeadLettered) {
  rules_.stream_names = *pipeline::StreamNameTemplate::parse("$ce-{AggregateType}-{AggregateId}");
  auto r = audit({message("a", 1, "{}", 0)});
  EXPECT_EQ(r.count(Finding::kUndecodable), 1u) << r.to_text();
  rules_.allow_system_streams = true;
  EXPECT_EQ(audit({message("a", 1, "{}", 0)}).count(Finding::kMissing), 1u);
}

TEST_F(AuditTest, ReportJsonNamesEveryCount) {
  auto r = audit({});
  std::string j = r.to_json();
  for (const char* k : {"\"ok\":", "\"missing\":", "\"extra\":", "\"misordered\":", "\"mismatched\":",
                        "\"dead_lettered\":", "\"undecodable\":", "\"accounted\":true"}) {
    EXPECT_NE(j.find(k), std::string::npos) << k << " in " << j;
  }
}

}  // namespace
}  // namespace kingest::audit
