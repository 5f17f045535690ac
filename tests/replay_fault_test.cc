// Fault tests of `replay` with every part a separate process, the way users run them: the embedded
// Kafka (`broker`), the store behind its gRPC server (`serve-store`, a file database), `generate`,
// and `replay`, which is killed with SIGKILL at random points and rerun until it completes; and a
// store server killed and restarted under a running replay. Each run ends with `verify`: the store
// holds exactly the produced events, every stream's revisions 0..n-1 in order, none lost or doubled.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kafka/producer.h"
#include "kurrent/kurrent_client.h"
#include "tests/process_fixture.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using kingest::testing::count;
using kingest::testing::eventually;
using kingest::testing::field;
using kingest::testing::Process;
using kingest::testing::read_line;
using kingest::testing::slurp;
using kingest::testing::wait_for_first_commit;
using kingest::testing::wait_for_text;
const std::string& kTopics = kingest::testing::kSeedTopics;

class ReplayFaultTest : public kingest::testing::ProcessFixture {
 protected:
  ReplayFaultTest() : ProcessFixture("ki-replay-fault") {}

  // Runs `replay` (group `group`) and kills it with SIGKILL at a random point within the first two
  // seconds after it got its partitions, `max_kills` times, then lets it finish at full speed. Returns the runs and
  // kills; a last replay that does not end done is a fatal test failure.
  std::pair<int, int> replay_killed_until_done(const std::string& group, int max_kills) {
    std::mt19937 rng(std::random_device{}());
    int kills = 0;
    int runs = 0;
    int last = -1;
    auto deadline = Clock::now() + 8min;
    while (Clock::now() < deadline) {
      ++runs;
      const size_t joins_before = count(slurp(dir_ + "/run.out"), "assigned ");
      // The runs to be killed keep at most 8 appends on the wire (about 10,000 events/s here, so a
      // replay takes several seconds however fast the machine); a kill then lands mid-ingest.
      Process p(replay_args(group) + (kills < max_kills ? " --max-appends-in-flight 8" : ""), dir_ + "/run.out");
      if (kills < max_kills) {
        int code = -1;
        while (code < 0 && count(slurp(dir_ + "/run.out"), "assigned ") == joins_before) code = p.wait(50ms);
        if (code < 0) code = p.wait(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 2000)(rng)));
        if (code < 0) {
          p.kill(SIGKILL);
          ++kills;
          continue;
        }
        last = code;
        break;
      }
      last = p.wait(300s);
      break;
    }
    [&] {
      ASSERT_EQ(last, 0) << "the last replay ends done after " << runs << " runs and " << kills << " kills\n"
                         << slurp(dir_ + "/run.out");
    }();
    EXPECT_GE(kills, 1) << "at least one replay was killed part-way";
    return {runs, kills};
  }
};

TEST_F(ReplayFaultTest, KilledAtRandomPointsAndRerunEndsWithExactlyTheProducedEvents) {
  constexpr int kEvents = 100000;
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events " + std::to_string(kEvents) + " --seed 11"), 0)
      << slurp(dir_ + "/run.out");
  start_store();

  const auto [runs, kills] = replay_killed_until_done("fault-kill", 5);
  if (HasFatalFailure()) return;
  ASSERT_EQ(run("verify --kurrent " + url() + " --events " + std::to_string(kEvents) + " --seed 11"), 0)
      << slurp(dir_ + "/run.out");

  // Everything is there: the same group replayed from the beginning appends nothing.
  ASSERT_EQ(run(replay_args("fault-kill") + " --from beginning"), 0) << slurp(dir_ + "/run.out");
  auto r = report();
  EXPECT_EQ(field(r, "events_appended"), 0u) << r;
  EXPECT_EQ(field(r, "duplicates"), uint64_t(kEvents)) << r;
  EXPECT_EQ(field(r, "dead_lettered"), 0u) << r;
  std::cout << "replay kill -9: " << runs << " runs, " << kills << " kills, " << kEvents
            << " events verified (0 lost, 0 duplicated)\n";
}

// The wide shape (many streams, a few events each), where a stream's first append is its own
// check when the sink's answers tell written from duplicate: a kill -9 between a stream's first
// append and its answer must still end with every event once.
class ReplayWideFaultTest : public ReplayFaultTest {
 protected:
  ReplayWideFaultTest() { partitions_ = 32; }  // 300,000 events: about 1.6 MiB per partition
};

TEST_F(ReplayWideFaultTest, KilledAndRerunEndsWithExactlyTheProducedEvents) {
  constexpr int kEvents = 300000;
  constexpr int kStreams = 200000;
  const std::string workload = " --events " + std::to_string(kEvents) + " --streams " + std::to_string(kStreams) +
                               " --seed 14";
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + workload), 0) << slurp(dir_ + "/run.out");
  start_store();
  const auto [runs, kills] = replay_killed_until_done("fault-wide", 1);
  if (HasFatalFailure()) return;
  ASSERT_EQ(run("verify --kurrent " + url() + workload), 0) << slurp(dir_ + "/run.out");
  // The last run counted exactly: what earlier runs wrote as duplicates, the rest as appended.
  auto r = report();
  EXPECT_EQ(field(r, "dead_lettered"), 0u) << r;
  EXPECT_EQ(field(r, "events_appended") + field(r, "duplicates"), field(r, "events_read")) << r;
  std::cout << "wide replay kill -9: " << runs << " runs, " << kills << " kills, " << kEvents << " events of "
            << kStreams << " streams verified (0 lost, 0 duplicated)\n";
}

TEST_F(ReplayFaultTest, TheStoreServerKilledAndRestartedDuringAReplay) {
  constexpr int kEvents = 60000;
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events " + std::to_string(kEvents) + " --seed 12"), 0)
      << slurp(dir_ + "/run.out");
  start_store();
  const std::string listen = address_;
  // Debug logging shows each retry of an append.
  Process replay("--log-level debug " + replay_args("fault-store"), dir_ + "/run.out");
  ASSERT_TRUE(wait_for_first_commit(bootstrap_, "fault-store", kTopics, 120s)) << slurp(dir_ + "/run.out");
  store_->kill(SIGKILL);  // acknowledged writes are durable (synchronous=FULL)
  ASSERT_TRUE(wait_for_text(dir_ + "/run.out", "kurrentdb: retrying", 60s)) << "the replay met the outage";
  start_store(listen);
  int code = replay.wait(240s);
  ASSERT_EQ(code, 0) << slurp(dir_ + "/run.out") << slurp(dir_ + "/store.out");
  ASSERT_EQ(run("verify --kurrent " + url() + " --events " + std::to_string(kEvents) + " --seed 12"), 0)
      << slurp(dir_ + "/run.out");
  auto r = report();
  EXPECT_EQ(field(r, "events_appended") + field(r, "duplicates"), uint64_t(kEvents)) << r;
}

TEST_F(ReplayFaultTest, ThreeInstancesInOneGroupOneKilledTheSurvivorsFinish) {
  constexpr int kEvents = 60000;
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events " + std::to_string(kEvents) + " --seed 13"), 0)
      << slurp(dir_ + "/run.out");
  start_store();
  // Each instance writes its own report; the killed one writes none. At most 8 appends on the wire
  // each, so that the replay outlasts its first commit by seconds however fast the machine. And at
  // most two batches of 512 events inside each: a revoke waits for the revoked partitions' work
  // (up to EngineOptions::revoke_wait, 10 s) before the member rejoins, and the mock coordinator
  // gives a member its session less a second (3 s here) to rejoin. With the default 32 batches of
  // 4,096 behind 8 appends, on a loaded machine, a member still draining missed every rejoin and
  // the group rebalanced every few seconds for a minute without one commit.
  auto args = [&](int i) {
    std::string a = replay_args("fault-three") +
                    " --max-appends-in-flight 8 --max-batches-in-flight 2 --batch-max-events 512";
    return a.replace(a.find(dir_ + "/report.json"), (dir_ + "/report.json").size(),
                     dir_ + "/report-" + std::to_string(i) + ".json");
  };
  // Started a second apart, as instances of a deployment come up: three members joining librdkafka's
  // mock coordinator at once, on a loaded machine, can keep failing its SyncGroups for minutes.
  Process a(args(0), dir_ + "/run.out");
  std::this_thread::sleep_for(1s);
  Process b(args(1), dir_ + "/run.out");
  std::this_thread::sleep_for(1s);
  Process c(args(2), dir_ + "/run.out");
  // Killed once the group has handed out partitions (the three share them) and work has begun.
  ASSERT_TRUE(eventually([&] { return count(slurp(dir_ + "/run.out"), "assigned ") >= 3; }, 60s,
                         "the three instances' assignments"))
      << slurp(dir_ + "/run.out");
  ASSERT_TRUE(wait_for_first_commit(bootstrap_, "fault-three", kTopics, 60s)) << slurp(dir_ + "/run.out");
  EXPECT_EQ(c.kill(SIGKILL), 128 + SIGKILL) << "the third instance was still running when killed";
  EXPECT_EQ(a.wait(240s), 0) << slurp(dir_ + "/run.out");
  EXPECT_EQ(b.wait(240s), 0) << slurp(dir_ + "/run.out");
  ASSERT_EQ(run("verify --kurrent " + url() + " --events " + std::to_string(kEvents) + " --seed 13"), 0)
      << slurp(dir_ + "/run.out");
}

// ---- poison messages, dead letters and `dlq replay` ------------------------------------------------

struct Produced {
  std::string stream;
  std::vector<std::string> ids;  // the ids that must end up in the stream, in order
};

std::string task_event(const std::string& id, const std::string& aggregate, int version, const std::string& extra = "") {
  return R"({"eventId":")" + id + R"(","eventType":"TaskUpdated","aggregateId":")" + aggregate +
         R"(","aggregateType":"Task","aggregateVersion":)" + std::to_string(version) + R"(,"step":)" +
         std::to_string(version) + extra + "}";
}

std::string uuid() { return kingest::Uuid::v4().to_string(); }

TEST_F(ReplayFaultTest, PoisonMessagesAreDeadLetteredAndDlqReplayCompletesTheirStreams) {
  // A server that refuses appends over 256 KiB (older KurrentDB refuses over 1 MiB), so that a
  // 300 KiB event is too large while Kafka still carries it.
  start_store("127.0.0.1:0", "--max-append-size 262144");
  auto producer = kingest::kafka::Producer::create(bootstrap_);
  ASSERT_TRUE(producer.ok()) << producer.status();
  auto send = [&](const std::string& aggregate, const std::string& value) {
    ASSERT_TRUE((*producer)->produce("task-events", aggregate, value, "application/json").ok());
  };
  std::vector<Produced> good;
  for (int g = 0; g < 20; ++g) {
    Produced p{"Task-good-" + std::to_string(g), {}};
    for (int v = 1; v <= 10; ++v) {
      p.ids.push_back(uuid());
      send("good-" + std::to_string(g), task_event(p.ids.back(), "good-" + std::to_string(g), v));
    }
    good.push_back(p);
  }
  // Four poisoned streams: each has a valid prefix (v1, v2), one bad event, then valid events.
  struct Poisoned {
    std::string aggregate;
    std::string first_reason;
    std::vector<std::string> ids;  // v1..v5
  };
  std::vector<Poisoned> poisoned{{"bad-json", "decode-error", {}},
                                 {"gap", "revision-gap", {}},
                                 {"wrong-type", "decode-error", {}},
                                 {"oversized", "event-too-large", {}}};
  for (auto& p : poisoned) {
    for (int v = 1; v <= 5; ++v) p.ids.push_back(uuid());
    for (int v = 1; v <= 5; ++v) {
      const std::string& id = p.ids[size_t(v - 1)];
      if (v == 3 && p.aggregate == "bad-json") {
        send(p.aggregate, task_event(id, p.aggregate, v).substr(0, 40));  // truncated JSON
      } else if (v == 3 && p.aggregate == "gap") {
        continue;  // version 3 never published
      } else if (v == 3 && p.aggregate == "wrong-type") {
        std::string e = task_event(id, p.aggregate, v);
        e.replace(e.find("\"aggregateVersion\":3"), 20, "\"aggregateVersion\":\"three\"");
        send(p.aggregate, e);
      } else if (v == 3 && p.aggregate == "oversized") {
        send(p.aggregate, task_event(id, p.aggregate, v, R"(,"blob":")" + std::string(300 * 1024, 'x') + "\""));
      } else {
        send(p.aggregate, task_event(id, p.aggregate, v));
      }
    }
  }
  ASSERT_TRUE((*producer)->flush(30s).ok());

  const std::string dlq = dir_ + "/dead-letters.ndjson";
  ASSERT_EQ(run(replay_args("poison")), 3) << "done, with dead letters\n" << slurp(dir_ + "/run.out");
  auto r = report();
  EXPECT_EQ(field(r, "events_appended"), uint64_t(20 * 10 + 4 * 2)) << r;

  auto settings = kingest::kurrent::parse_connection_string("kurrentdb://" + address_ + "?tls=false");
  ASSERT_TRUE(settings.ok());
  auto client = kingest::kurrent::KurrentClient::connect(*settings);
  ASSERT_TRUE(client.ok()) << client.status();
  auto ids_of = [&](const std::string& stream) {
    std::vector<std::string> ids;
    auto events = (*client)->read_forwards(stream, kingest::StreamRevision{0}, 1000);
    EXPECT_TRUE(events.ok()) << events.status();
    if (events.ok()) {
      for (size_t i = 0; i < events->size(); ++i) {
        EXPECT_EQ((*events)[i].revision.value(), i) << stream;
        ids.push_back((*events)[i].id.to_string());
      }
    }
    return ids;
  };
  for (const auto& g : good) EXPECT_EQ(ids_of(g.stream), g.ids) << "unaffected streams are complete: " << g.stream;
  const std::string letters = slurp(dlq);
  for (const auto& p : poisoned) {
    EXPECT_EQ(ids_of("Task-" + p.aggregate), std::vector<std::string>(p.ids.begin(), p.ids.begin() + 2))
        << "the valid prefix of " << p.aggregate << " is written, nothing after the bad event";
    // The bad event's letter names its reason; every later event of the stream follows it, in order.
    size_t at = 0;
    size_t bad = std::string::npos;
    for (int v = 3; v <= 5; ++v) {
      if (p.aggregate == "gap" && v == 3) continue;
      size_t next = letters.find(p.ids[size_t(v - 1)], at);
      if (p.aggregate == "bad-json" && v == 3) next = letters.find(p.aggregate, at);  // its id was cut off
      ASSERT_NE(next, std::string::npos) << p.aggregate << " v" << v << " is dead-lettered, after the one before\n"
                                         << letters;
      if (bad == std::string::npos) bad = next;
      at = next + 1;
    }
    size_t line_start = letters.rfind('\n', bad);
    std::string line = letters.substr(line_start == std::string::npos ? 0 : line_start,
                                      letters.find('\n', bad) - (line_start == std::string::npos ? 0 : line_start));
    EXPECT_NE(line.find("\"reason\":\"" + p.first_reason + "\""), std::string::npos) << p.aggregate << ": " << line;
  }

  // The offsets moved past every letter: the same group has nothing left to read.
  ASSERT_EQ(run(replay_args("poison")), 0) << slurp(dir_ + "/run.out");
  EXPECT_EQ(field(report(), "events_read"), 0u) << report();

  // Fixed letters go back through Kafka and complete their streams.
  {
    std::ofstream fixed(dir_ + "/fixed.ndjson");
    for (const auto& p : poisoned) {
      for (int v = 3; v <= 5; ++v) {
        std::string e = task_event(p.ids[size_t(v - 1)], p.aggregate, v);
        std::string escaped;
        for (char ch : e) {
          if (ch == '"' || ch == '\\') escaped += '\\';
          escaped += ch;
        }
        fixed << R"({"reason":"decode-error","topic":"task-events","key":")" << p.aggregate << R"(","value":")"
              << escaped << "\"}\n";
      }
    }
  }
  ASSERT_EQ(run("dlq replay --file " + dir_ + "/fixed.ndjson --brokers " + bootstrap_), 0) << slurp(dir_ + "/run.out");
  ASSERT_EQ(run(replay_args("poison")), 0) << slurp(dir_ + "/run.out");
  EXPECT_EQ(field(report(), "events_appended"), 12u) << report();
  for (const auto& p : poisoned) EXPECT_EQ(ids_of("Task-" + p.aggregate), p.ids) << p.aggregate << " is complete";
  (*client)->close();
}

TEST_F(ReplayFaultTest, AnotherWritersEventsAreNeverOverwrittenCollisionsAreDeadLettered) {
  start_store();
  auto settings = kingest::kurrent::parse_connection_string("kurrentdb://" + address_ + "?tls=false");
  ASSERT_TRUE(settings.ok());
  auto client = kingest::kurrent::KurrentClient::connect(*settings);
  ASSERT_TRUE(client.ok()) << client.status();
  auto producer = kingest::kafka::Producer::create(bootstrap_);
  ASSERT_TRUE(producer.ok()) << producer.status();
  std::vector<std::vector<std::string>> ids(10);
  for (int s = 0; s < 10; ++s) {
    for (int v = 1; v <= 6; ++v) {
      ids[size_t(s)].push_back(uuid());
      std::string agg = "shared-" + std::to_string(s);
      ASSERT_TRUE((*producer)->produce("task-events", agg, task_event(ids[size_t(s)].back(), agg, v)).ok());
    }
  }
  ASSERT_TRUE((*producer)->flush(30s).ok());
  // Another writer puts its own events into the even streams before the replay reaches them.
  std::vector<std::vector<std::string>> theirs(10);
  for (int s = 0; s < 10; s += 2) {
    std::vector<kingest::EventData> events;
    for (int k = 0; k < 3; ++k) {
      events.push_back({kingest::Uuid::v4(), "OtherWriterEvent", "application/json", "{}", "{}"});
      theirs[size_t(s)].push_back(events.back().id.to_string());
    }
    std::promise<kingest::AppendOutcome> done;
    (*client)->append({"Task-shared-" + std::to_string(s), kingest::ExpectNoStream{}, events},
                      [&done](kingest::AppendOutcome o) { done.set_value(o); });
    ASSERT_EQ(done.get_future().get().code, kingest::AppendCode::kSuccess);
  }
  ASSERT_EQ(run(replay_args("collide")), 3) << slurp(dir_ + "/run.out");
  const std::string letters = slurp(dir_ + "/dead-letters.ndjson");
  for (int s = 0; s < 10; ++s) {
    auto events = (*client)->read_forwards("Task-shared-" + std::to_string(s), kingest::StreamRevision{0}, 100);
    ASSERT_TRUE(events.ok()) << events.status();
    std::vector<std::string> got;
    for (const auto& e : *events) got.push_back(e.id.to_string());
    if (s % 2 == 0) {
      EXPECT_EQ(got, theirs[size_t(s)]) << "the other writer's events stay, nothing overwritten or added";
      size_t first = letters.find(ids[size_t(s)][0]);
      ASSERT_NE(first, std::string::npos) << letters;
      size_t line = letters.rfind('\n', first);
      line = line == std::string::npos ? 0 : line;
      EXPECT_NE(letters.substr(line, first - line).find("\"reason\":\"revision-conflict\""), std::string::npos)
          << letters.substr(line, 400);
      EXPECT_NE(letters.find(ids[size_t(s)][5]), std::string::npos) << "the stream's later events are dead-lettered too";
    } else {
      EXPECT_EQ(got, ids[size_t(s)]) << "streams without a collision are complete";
    }
  }
  EXPECT_EQ(field(report(), "conflicts") > 0, true) << report();
  (*client)->close();
}

TEST_F(ReplayFaultTest, RetentionDeletedUnconsumedMessagesTheLossIsReportedAsThePolicySays) {
  // Its own broker with one partition: the mock keeps about 5 MiB per partition and drops the rest
  // from the head, as retention would.
  Process broker("broker --topics retained --partitions 1 --bootstrap-file " + dir_ + "/bootstrap-retained",
                 dir_ + "/broker-retained.out");
  const std::string boot = read_line(dir_ + "/bootstrap-retained", 20s);
  ASSERT_FALSE(boot.empty()) << slurp(dir_ + "/broker-retained.out");
  start_store();
  auto replay = [&](const std::string& extra) {
    return run("replay --brokers " + boot + " --topics retained --group kept --kurrent " + url() + " --dlq-file " + dir_ +
               "/dead-letters.ndjson --report " + dir_ + "/report.json -X session.timeout.ms=4000 " + extra);
  };
  auto producer = kingest::kafka::Producer::create(boot);
  ASSERT_TRUE(producer.ok()) << producer.status();
  auto produce = [&](const std::string& prefix, int streams, int versions, size_t pad) {
    for (int s = 0; s < streams; ++s) {
      for (int v = 1; v <= versions; ++v) {
        std::string agg = prefix + std::to_string(s);
        ASSERT_TRUE((*producer)
                        ->produce("retained", agg,
                                  task_event(uuid(), agg, v, R"(,"pad":")" + std::string(pad, 'p') + "\""))
                        .ok());
      }
    }
    ASSERT_TRUE((*producer)->flush(60s).ok());
  };
  produce("early-", 10, 10, 100);
  ASSERT_EQ(replay(""), 0) << slurp(dir_ + "/run.out");
  // 10 MiB more while nothing consumes: the oldest of it is dropped before anyone reads it.
  produce("late-", 100, 100, 1000);
  ASSERT_EQ(replay(""), 4) << "the default policy stops the run\n" << slurp(dir_ + "/run.out");
  EXPECT_NE(slurp(dir_ + "/run.out").find("deleted by retention before they were ingested"), std::string::npos);
  EXPECT_NE(slurp(dir_ + "/report.json").find("retention"), std::string::npos) << "the report says why";

  int code = replay("--on-data-loss skip");
  EXPECT_TRUE(code == 0 || code == 3) << "skip goes on (a stream cut by the loss dead-letters its gap)\n"
                                      << slurp(dir_ + "/run.out");
  const std::string r = report();
  EXPECT_GT(field(r, "events_lost"), 0u) << r;
  EXPECT_GT(field(r, "events_appended"), 0u) << r;
  EXPECT_EQ(field(r, "events_lost") + field(r, "events_read"), 10000u) << "every late event is read or counted lost\n"
                                                                       << r;
}

TEST_F(ReplayFaultTest, TimeBoundsAreJudgedOnMessageTimestamps) {
  start_store();
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events 3000 --seed 21"), 0) << slurp(dir_ + "/run.out");
  // Time passes between the two productions so that a bound falls between their timestamps: a gap
  // in time on purpose, with nothing to wait on but the clock.
  std::this_thread::sleep_for(1200ms);
  auto now = std::chrono::system_clock::now();
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", std::gmtime(&secs));
  const std::string t = std::string(buf) + "." +
                        std::to_string(1000 + std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  now.time_since_epoch()).count() % 1000).substr(1) + "Z";
  std::this_thread::sleep_for(1200ms);  // and between the bound and the second production
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events 2000 --seed 22"), 0) << slurp(dir_ + "/run.out");

  ASSERT_EQ(run(replay_args("until-time") + " --until-time " + t), 0) << slurp(dir_ + "/run.out");
  EXPECT_EQ(field(report(), "events_read"), 3000u) << "only what was produced before " << t << "\n" << report();
  ASSERT_EQ(run(replay_args("from-time") + " --from time:" + t), 0) << slurp(dir_ + "/run.out");
  EXPECT_EQ(field(report(), "events_read"), 2000u) << "only what was produced after " << t << "\n" << report();
  ASSERT_EQ(run("verify --kurrent " + url() + " --events 3000 --seed 21"), 0) << slurp(dir_ + "/run.out");
  ASSERT_EQ(run("verify --kurrent " + url() + " --events 2000 --seed 22"), 0) << slurp(dir_ + "/run.out");
  // The first group, without a time bound now, picks up exactly the rest.
  ASSERT_EQ(run(replay_args("until-time")), 0) << slurp(dir_ + "/run.out");
  EXPECT_EQ(field(report(), "events_read"), 2000u) << report();
  EXPECT_EQ(field(report(), "events_appended"), 0u) << report();
}

}  // namespace
