// The auditor's classification against the real embedded store: the store is filled the way the
// ingest writes (ids from derive_event_id, revisions from the version), then changed.
#include "audit/audit.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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
                           .type = ev.event_type,
                           .content_type = "application/json",
                           .data = data.empty() ? ev.payload : data,
                           .metadata = "{}"};
    uint64_t target = at.value_or(rev);
    ExpectedRevision expected = target == 0 ? ExpectedRevision{ExpectNoStream{}} : ExpectedRevision{StreamRevision{target - 1}};
    auto r = store_->append_sync(stream, expected, {p});
    ASSERT_EQ(r.status, store::AppendStatus::kSuccess) << r.message;
  }

  void stray(const std::string& stream, uint64_t expected) {
    auto r = store_->append_sync(stream, StreamRevision{expected},
                                 {store::ProposedEvent{.id = Uuid::v5(Uuid::nil(), "stray"), .type = "Stray",
                                                       .content_type = "application/json", .data = "{}", .metadata = "{}"}});
    ASSERT_EQ(r.status, store::AppendStatus::kSuccess) << r.message;
  }

  AuditReport audit(std::vector<SourceMessage> messages, const std::set<SourcePosition>& dead = {},
                    bool prefetch = false) {
    const CheckOptions options{.read_threads = 4, .page_size = 2, .examples = 5};
    Auditor a(rules_);
    a.add_dead_letters(dead);
    if (prefetch) a.prefetch_from(*sink_, options);
    a.add(std::move(messages));
    auto r = a.check(*sink_, options);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  }

  Rules rules_;
  std::unique_ptr<store::EventStore> store_;
  std::unique_ptr<store::StoreSink> sink_;
};

TEST_F(AuditTest, EverythingWrittenIsAccountedFor) {
  std::vector<SourceMessage> ms;
  for (int v = 1; v <= 5; ++v) ms.push_back(message("a", v, R"({"n":)" + std::to_string(v) + "}", v));
  for (const auto& m : ms) write(m);
  // A duplicate of an identical earlier message is a replay's business as usual.
  ms.push_back(message("a", 2, R"({"n":2})", 6));
  auto r = audit(ms, {}, /*prefetch=*/true);
  EXPECT_TRUE(r.accounted()) << r.to_text();
  EXPECT_EQ(r.count(Finding::kOk), 6u);
  EXPECT_EQ(r.streams, 1u);
  EXPECT_EQ(r.store_events_read, 5u);
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
  std::vector<SourceMessage> ms = {message("a", 1, "{}", 0), message("a", 2, R"({"x":1})", 1),
                                   message("b", 1, "{}", 2), message("b", 2, R"({"y":1})", 3),
                                   message("c", 1, "{}", 4), message("c", 2, "{}", 5),
                                   message("d", 1, R"({"d":1})", 6)};
  write(ms[0]);  // a: revision 1 never written
  write(ms[2]);
  write(ms[3], std::nullopt, R"({"y":2})");  // b: same id, other data
  write(ms[5], 0);                           // c: the second message's event at revision 0
  write(ms[4], 1);
  write(message("d", 1, R"({"other":1})", 9));  // d: another event (another id) at its revision
  for (bool prefetch : {false, true}) {
    auto r = audit(ms, {}, prefetch);
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
