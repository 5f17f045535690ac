// The aggregate's version is the order, not the partition: unkeyed events (as NestJS's
// `emit(topic, event)` sends them) spread one aggregate over partitions and arrive out of order;
// every one must be stored at its revision, in order, with no dead letter, also across a kill -9
// and with two members in one group. A version that never arrives is dead-lettered at the end of a
// replay, or after the reorder window in `run`, without holding anything else back.
#include <fstream>
#include <random>

#include "kafka/producer.h"
#include "kurrent/kurrent_client.h"
#include "tests/process_fixture.h"

namespace kingest::testing {
namespace {

class ReorderTest : public ProcessFixture {
 protected:
  ReorderTest() : ProcessFixture("ki-reorder") {}

  static constexpr int kEvents = 30000;
  static constexpr int kStreams = 3000;
  const std::string workload_ = "--events 30000 --streams 3000 --key none --burst --seed 21";

  void generate_unkeyed() {
    ASSERT_EQ(run("generate --brokers " + bootstrap_ + " " + workload_), 0) << output();
  }
  int verify() { return run("verify --kurrent " + url() + " " + workload_); }

  std::unique_ptr<kurrent::KurrentClient> client() {
    auto settings = kurrent::parse_connection_string("kurrentdb://" + address_ + "?tls=false");
    EXPECT_TRUE(settings.ok());
    auto c = kurrent::KurrentClient::connect(*settings);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
};

std::string task_event(const std::string& id, const std::string& aggregate, int version) {
  return R"({"eventId":")" + id + R"(","eventType":"TaskUpdated","aggregateId":")" + aggregate +
         R"(","aggregateType":"Task","aggregateVersion":)" + std::to_string(version) + R"(,"step":)" +
         std::to_string(version) + "}";
}

TEST_F(ReorderTest, UnkeyedBurstsOverEightPartitionsAreStoredInOrderWithoutDeadLetters) {
  generate_unkeyed();
  start_store();
  ASSERT_EQ(run(replay_args("unkeyed")), 0) << output();
  const auto r = report();
  EXPECT_EQ(field(r, "events_read"), uint64_t(kEvents)) << r;
  EXPECT_EQ(field(r, "events_appended"), uint64_t(kEvents)) << r;
  EXPECT_EQ(field(r, "dead_lettered"), 0u) << r;
  EXPECT_GT(field(r, "events_reordered"), 0u) << r;
  EXPECT_GT(field(r, "streams_on_several_partitions"), uint64_t(kStreams) / 2) << r;
  EXPECT_EQ(count(output(), "should key messages by aggregate id"), 1u) << "one warning per run";
  ASSERT_EQ(verify(), 0) << "every stream in order at its revisions\n" << output();
}

TEST_F(ReorderTest, KilledMidRunAndRerunLosesDuplicatesAndMisordersNothing) {
  generate_unkeyed();
  start_store();
  std::mt19937 rng(std::random_device{}());
  int kills = 0, last = -1;
  for (int attempt = 0; attempt < 6 && last < 0; ++attempt) {
    const size_t joins_before = count(output(), "assigned ");
    // The runs to be killed go one append at a time (about 3,000 events/s here, 10 s for all),
    // so that a kill at 0.1-1.5 s lands part-way however fast the machine; the last runs at full speed.
    Process p(replay_args("unkeyed-kill") + (kills < 2 ? " --max-appends-in-flight 1" : ""), dir_ + "/run.out");
    if (kills < 2) {
      int code = -1;
      while (code < 0 && count(output(), "assigned ") == joins_before) code = p.wait(50ms);
      if (code < 0) code = p.wait(std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 1500)(rng)));
      if (code < 0) {
        p.kill(SIGKILL);
        ++kills;
        continue;
      }
      last = code;
    } else {
      last = p.wait(180s);
    }
  }
  ASSERT_EQ(last, 0) << output();
  EXPECT_GE(kills, 1) << "a replay was killed part-way";
  EXPECT_EQ(field(report(), "dead_lettered"), 0u) << report();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/dead-letters.ndjson") &&
               std::filesystem::file_size(dir_ + "/dead-letters.ndjson") > 0)
      << slurp(dir_ + "/dead-letters.ndjson");
  ASSERT_EQ(verify(), 0) << "0 lost, 0 duplicated, 0 misordered\n" << output();
}

TEST_F(ReorderTest, VersionsOutOfOrderOnOnePartitionAreStoredInOrder) {
  start_store();
  auto producer = kafka::Producer::create(bootstrap_);
  ASSERT_TRUE(producer.ok());
  std::vector<std::string> ids;
  for (int v = 1; v <= 4; ++v) ids.push_back(Uuid::v4().to_string());
  for (int v : {1, 3, 2, 4}) {
    ASSERT_TRUE((*producer)->produce("task-events", "one", task_event(ids[size_t(v - 1)], "one", v), "application/json").ok());
  }
  ASSERT_TRUE((*producer)->flush(30s).ok());
  ASSERT_EQ(run(replay_args("one-partition")), 0) << output();
  auto c = client();
  ASSERT_TRUE(c);
  auto events = c->read_forwards("Task-one", StreamRevision{0}, 10);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 4u);
  for (size_t r = 0; r < 4; ++r) EXPECT_EQ((*events)[r].id.to_string(), ids[r]) << "revision " << r;
  EXPECT_EQ(field(report(), "dead_lettered"), 0u);
}

TEST_F(ReorderTest, AVersionThatNeverArrivesIsDeadLetteredAtTheEndOfAReplay) {
  start_store();
  auto producer = kafka::Producer::create(bootstrap_);
  ASSERT_TRUE(producer.ok());
  for (int v : {2, 3}) ASSERT_TRUE((*producer)->produce("task-events", {}, task_event(Uuid::v4().to_string(), "lost", v)).ok());
  for (int v : {1, 2}) ASSERT_TRUE((*producer)->produce("system-events", {}, task_event(Uuid::v4().to_string(), "fine", v)).ok());
  ASSERT_TRUE((*producer)->flush(30s).ok());
  ASSERT_EQ(run(replay_args("never")), 3) << "done, with dead letters\n" << output();
  const auto letters = slurp(dir_ + "/dead-letters.ndjson");
  EXPECT_EQ(count(letters, "\"revision-gap\""), 1u) << letters;
  EXPECT_EQ(count(letters, "\"after-dead-letter\""), 1u) << letters;
  EXPECT_EQ(field(report(), "events_appended"), 2u) << "the other stream is not held back\n" << report();
}

TEST_F(ReorderTest, RunGivesAGapUpAfterTheReorderWindow) {
  start_store();
  auto producer = kafka::Producer::create(bootstrap_);
  ASSERT_TRUE(producer.ok());
  ASSERT_TRUE((*producer)->produce("task-events", {}, task_event(Uuid::v4().to_string(), "lost", 2)).ok());
  ASSERT_TRUE((*producer)->produce("task-events", {}, task_event(Uuid::v4().to_string(), "fine", 1)).ok());
  ASSERT_TRUE((*producer)->flush(30s).ok());
  std::string args = replay_args("window");
  args.replace(0, 6, "run");
  Process p(args + " --reorder-window 1s", dir_ + "/run.out");
  const auto deadline = Clock::now() + 60s;
  while (count(slurp(dir_ + "/dead-letters.ndjson"), "revision-gap") == 0 && Clock::now() < deadline) {
    ASSERT_EQ(p.wait(100ms), -1) << output();
  }
  EXPECT_EQ(count(slurp(dir_ + "/dead-letters.ndjson"), "revision-gap"), 1u) << output();
  EXPECT_EQ(p.kill(SIGINT), 130) << output();
  auto c = client();
  ASSERT_TRUE(c);
  auto fine = c->read_forwards("Task-fine", StreamRevision{0}, 10);
  ASSERT_TRUE(fine.ok());
  EXPECT_EQ(fine->size(), 1u);
}

TEST_F(ReorderTest, TwoMembersOfOneGroupStoreUnkeyedEventsOnceAndInOrder) {
  generate_unkeyed();
  start_store();
  Process a(replay_args("two", "report-a.json") + " --reorder-window 2s", dir_ + "/run.out");
  Process b(replay_args("two", "report-b.json") + " --reorder-window 2s", dir_ + "/run.out");
  EXPECT_EQ(a.wait(240s), 0) << output();
  EXPECT_EQ(b.wait(240s), 0) << output();
  const auto ra = report("report-a.json"), rb = report("report-b.json");
  EXPECT_EQ(field(ra, "dead_lettered") + field(rb, "dead_lettered"), 0u) << ra << rb;
  ASSERT_EQ(verify(), 0) << "every event stored once, in order\n" << output();
}

TEST_F(ReorderTest, DlqReplayProducesAStreamsLettersInVersionOrderKeyedByAggregate) {
  start_store();
  // Letters written in the order a gap is given up and filled later: not the versions' order.
  std::vector<std::string> ids;
  for (int v = 1; v <= 3; ++v) ids.push_back(Uuid::v4().to_string());
  const std::string file = dir_ + "/letters.ndjson";
  {
    std::ofstream out(file);
    for (int v : {3, 1, 2}) {
      std::string value = task_event(ids[size_t(v - 1)], "late", v), escaped;
      for (char c : value) {
        if (c == '"') escaped += '\\';
        escaped += c;
      }
      out << R"({"reason":"revision-gap","detail":"","topic":"task-events","partition":0,"offset":)" << v
          << R"(,"key":null,"value":")" << escaped << "\"}\n";
    }
  }
  ASSERT_EQ(run("dlq replay --file " + file + " --brokers " + bootstrap_), 0) << output();
  ASSERT_EQ(run(replay_args("dlq-order")), 0) << output();
  EXPECT_EQ(field(report(), "dead_lettered"), 0u) << report();
  auto c = client();
  ASSERT_TRUE(c);
  auto events = c->read_forwards("Task-late", StreamRevision{0}, 10);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 3u);
  for (size_t r = 0; r < 3; ++r) EXPECT_EQ((*events)[r].id.to_string(), ids[r]) << "revision " << r;
  // Produced keyed by aggregate id, in version order: one partition, offsets rising with the revision.
  auto source = [&](size_t r, const std::string& key) { return field((*events)[r].metadata, key); };
  for (size_t r = 1; r < 3; ++r) {
    EXPECT_EQ(source(r, "partition"), source(0, "partition")) << (*events)[r].metadata;
    EXPECT_GT(source(r, "offset"), source(r - 1, "offset")) << (*events)[r].metadata;
  }
}

}  // namespace
}  // namespace kingest::testing
