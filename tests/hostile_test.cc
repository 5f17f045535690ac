// Hostile and careless input against the real processes (the standalone `broker`, `serve-store`
// over a file database, `generate`, `replay`, `dlq replay`, `verify`): settings that would lose
// events, binary dead letters, torn dead-letter writes, missing topics, a broker that goes away and
// signals while the store does not answer. Every attack ends in a clear error or in exactly the
// produced events.
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kafka/producer.h"
#include "kafka/testing/read_topic.h"
#include "tests/process_fixture.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using kingest::testing::Process;
using kingest::testing::field;
using kingest::testing::read_line;
using kingest::testing::slurp;
using kingest::testing::wait_for_text;

class HostileTest : public ::testing::Test {
 protected:
  std::string dir_ = std::filesystem::temp_directory_path() / ("ki-hostile-" + std::to_string(::getpid()) + "-" +
                                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());

  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override {
    store_.reset();
    broker_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  void start_broker(const std::string& topics = "task-events,system-events", int partitions = 4) {
    broker_ = std::make_unique<Process>("broker --topics " + topics + " --partitions " + std::to_string(partitions) +
                                            " --bootstrap-file " + dir_ + "/bootstrap",
                                        dir_ + "/broker.out");
    bootstrap_ = read_line(dir_ + "/bootstrap", 20s);
    ASSERT_FALSE(bootstrap_.empty()) << slurp(dir_ + "/broker.out");
  }
  void start_store(const std::string& listen = "127.0.0.1:0") {
    std::filesystem::remove(dir_ + "/address");
    store_ = std::make_unique<Process>("serve-store --db " + dir_ + "/events.db --listen " + listen +
                                           " --address-file " + dir_ + "/address",
                                       dir_ + "/store.out");
    address_ = read_line(dir_ + "/address", 20s);
    ASSERT_FALSE(address_.empty()) << slurp(dir_ + "/store.out");
  }

  // Runs to the end (killed after `timeout`); the output goes to `out` (default run.out).
  int run(const std::string& args, std::chrono::milliseconds timeout = 120s, const std::string& out = "",
          const std::string& shell_prefix = "") {
    Process p(args, out.empty() ? dir_ + "/run.out" : out, shell_prefix);
    int code = p.wait(timeout);
    return code < 0 ? p.kill(SIGKILL) : code;
  }
  std::string output() const { return slurp(dir_ + "/run.out"); }

  std::string url() const { return "'kurrentdb://" + address_ + "?tls=false'"; }
  std::string replay_args(const std::string& topics, const std::string& group) const {
    return "replay --brokers " + bootstrap_ + " --topics " + topics + " --group " + group + " --kurrent " + url() +
           " --dlq-file " + dir_ + "/dead-letters.ndjson --report " + dir_ + "/report.json --progress-s 1" +
           " -X session.timeout.ms=4000 -X heartbeat.interval.ms=500";
  }
  std::string report() const { return slurp(dir_ + "/report.json"); }

  std::unique_ptr<Process> broker_;
  std::unique_ptr<Process> store_;
  std::string bootstrap_ = "127.0.0.1:1";
  std::string address_ = "127.0.0.1:1";
};

// -------- settings ---------------------------------------------------------------------------------

TEST_F(HostileTest, DashXCannotChangeTheSettingsOffsetsAndDeadLettersRelyOn) {
  // Refused before anything is contacted: nothing listens at the addresses.
  const std::pair<std::string, std::string> consumer[] = {
      {"enable.auto.commit=true", ""},
      {"enable.auto.offset.store=true", ""},
      {"group.id=other", "--group"},
      {"bootstrap.servers=127.0.0.1:2", "--brokers"},
      {"auto.offset.reset=latest", "--from"},
      {"isolation.level=read_uncommitted", ""},
      {"partition.assignment.strategy=range", ""},
  };
  for (const auto& [setting, flag] : consumer) {
    std::filesystem::remove(dir_ + "/run.out");
    for (const char* command : {"replay", "run"}) {
      EXPECT_EQ(run(std::string(command) + " --brokers 127.0.0.1:1 --topics t --kurrent " + url() + " -X " + setting,
                    30s),
                2)
          << command << " -X " << setting << "\n"
          << output();
    }
    const std::string key = setting.substr(0, setting.find('='));
    EXPECT_NE(output().find("-X " + key), std::string::npos) << "the error names the key\n" << output();
    if (!flag.empty()) {
      EXPECT_NE(output().find(flag), std::string::npos) << "and the flag to use\n" << output();
    }
  }
  std::ofstream(dir_ + "/letters.ndjson") << "";
  for (const char* setting : {"acks=1", "acks=0", "bootstrap.servers=127.0.0.1:2", "transactional.id=x"}) {
    std::filesystem::remove(dir_ + "/run.out");
    EXPECT_EQ(run("dlq replay --file " + dir_ + "/letters.ndjson --brokers 127.0.0.1:1 -X " + setting, 30s), 2)
        << setting << "\n"
        << output();
    EXPECT_NE(output().find(std::string(setting).substr(0, std::string(setting).find('='))), std::string::npos)
        << output();
  }
  // Settings that only tune are taken.
  EXPECT_EQ(run("dlq replay --file " + dir_ + "/letters.ndjson --brokers 127.0.0.1:1 -X acks=all -X linger.ms=1", 30s),
            0)
      << output();
}

TEST_F(HostileTest, CarelessFlagsAreUsageErrorsBeforeTheRun) {
  const std::string base = "replay --brokers 127.0.0.1:1 --topics t --kurrent " + url();
  std::filesystem::remove(dir_ + "/run.out");
  EXPECT_EQ(run(base + " --group ''", 30s), 2) << output();
  EXPECT_NE(output().find("--group"), std::string::npos) << output();
  std::filesystem::remove(dir_ + "/run.out");
  EXPECT_EQ(run(base + " --report " + dir_ + "/no-such-dir/report.json", 30s), 2) << output();
  EXPECT_NE(output().find("--report"), std::string::npos) << output();
  EXPECT_EQ(run(base + " --report " + dir_, 30s), 2) << "a directory\n" << output();
  EXPECT_EQ(run(base + " --max-append-size 0", 30s), 2) << output();
  EXPECT_EQ(run(base + " --max-append-size -5", 30s), 2) << output();
  EXPECT_EQ(run(base + " --kafka-timeout-s 0", 30s), 2) << output();
}

// -------- Kafka ------------------------------------------------------------------------------------

TEST_F(HostileTest, AMissingTopicIsAnErrorUnlessAllowed) {
  start_broker();
  start_store();
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events 200 --topics task-events --seed 41"), 0) << output();
  std::filesystem::remove(dir_ + "/run.out");
  EXPECT_EQ(run(replay_args("task-events,task-evnets", "missing")), 4) << output();
  EXPECT_NE(output().find("task-evnets"), std::string::npos) << "the error names the topic\n" << output();
  EXPECT_EQ(run(replay_args("task-events,task-evnets", "missing") + " --allow-missing-topics"), 0) << output();
  EXPECT_EQ(field(report(), "events_read"), 200u) << report();
  // Asking did not create it: it is still missing.
  EXPECT_EQ(run(replay_args("task-evnets", "missing")), 4) << output();
}

// The two kill tests below need a run that is still writing when the kill comes, whatever the
// machine's speed: 100,000 events over two topics of 16 partitions (about 2 MiB a partition, inside
// what the embedded broker keeps, ~5 MiB: more would lose the oldest and dead-letter the rest as
// revision gaps, quickly), read 50 events a batch with one batch in flight, take well over ten seconds.
constexpr int kKillPartitions = 16;
constexpr const char* kSlowReplay = " --batch-max-events 50 --max-batches-in-flight 1";

TEST_F(HostileTest, TheBrokerKilledMidReplayStopsTheRunWithinTheKafkaTimeout) {
  start_broker("task-events,system-events", kKillPartitions);
  start_store();
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events 100000 --topics task-events,system-events --seed 42"),
            0)
      << output();
  std::filesystem::remove(dir_ + "/run.out");
  Process replay(replay_args("task-events,system-events", "broker-gone") + kSlowReplay + " --kafka-timeout-s 5",
                 dir_ + "/run.out");
  ASSERT_TRUE(kingest::testing::wait_for_first_commit(bootstrap_, "broker-gone", "task-events,system-events", 60s))
      << output();
  broker_->kill(SIGKILL);
  const auto killed = Clock::now();
  const int code = replay.wait(5s + 10s);
  const double took = std::chrono::duration<double>(Clock::now() - killed).count();
  ASSERT_EQ(code, 4) << "stopped (exit 4) within --kafka-timeout-s + 10 s, took " << took << " s\n" << output();
  EXPECT_NE(output().find("--kafka-timeout-s"), std::string::npos) << output();
  EXPECT_NE(report().find("\"outcome\":\"fatal\""), std::string::npos) << report();
  std::cout << "broker killed: replay exited 4 after " << took << " s (--kafka-timeout-s 5)\n";
}

TEST_F(HostileTest, SigtermTakesEffectWithinSecondsWhileAppendsAreRetried) {
  start_broker();
  start_store();
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events 20000 --topics task-events --seed 43"), 0) << output();
  std::filesystem::remove(dir_ + "/run.out");
  Process replay(replay_args("task-events", "sigterm") + " --retry-for-s 600", dir_ + "/run.out");
  ASSERT_TRUE(wait_for_text(dir_ + "/run.out", "assigned ", 60s)) << output();
  const size_t reports = kingest::testing::count(output(), "progress: ");
  store_->kill(SIGKILL);  // appends now fail and are retried for up to 10 minutes
  // The run goes on reporting (every second) without its store: the signal comes while it waits.
  ASSERT_TRUE(kingest::testing::eventually([&] { return kingest::testing::count(output(), "progress: ") >= reports + 2; },
                                           60s, "two progress reports after the store went away"))
      << output();
  replay.signal(SIGTERM);
  const auto signalled = Clock::now();
  const int code = replay.wait(5s);
  const double took = std::chrono::duration<double>(Clock::now() - signalled).count();
  ASSERT_EQ(code, 130) << "exited (130) within 5 s of SIGTERM, took " << took << " s\n" << output();
  EXPECT_NE(report().find("\"outcome\":\"interrupted\""), std::string::npos) << report();
  std::cout << "SIGTERM while retrying: replay exited 130 after " << took << " s\n";
  // Nothing lost: the store back, the same group finishes with exactly the produced events.
  start_store(address_);
  ASSERT_EQ(run(replay_args("task-events", "sigterm"), 180s), 0) << output();
  ASSERT_EQ(run("verify --kurrent " + url() + " --events 20000 --topics task-events --seed 43"), 0) << output();
}

TEST_F(HostileTest, TheStoreKilledAndNotRestartedStopsTheRunWithinRetryForPlusTenSeconds) {
  start_broker("task-events,system-events", kKillPartitions);
  start_store();
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events 100000 --topics task-events,system-events --seed 44"),
            0)
      << output();
  std::filesystem::remove(dir_ + "/run.out");
  Process replay(replay_args("task-events,system-events", "store-gone") + kSlowReplay + " --retry-for-s 5",
                 dir_ + "/run.out");
  ASSERT_TRUE(kingest::testing::wait_for_first_commit(bootstrap_, "store-gone", "task-events,system-events", 60s))
      << output();
  store_->kill(SIGKILL);  // appends (and any reads) in flight now fail, and nothing comes back
  const auto killed = Clock::now();
  const int code = replay.wait(5s + 10s);
  const double took = std::chrono::duration<double>(Clock::now() - killed).count();
  ASSERT_EQ(code, 4) << "stopped (exit 4) within --retry-for-s + 10 s, took " << took << " s\n" << output();
  EXPECT_NE(report().find("\"outcome\":\"fatal\""), std::string::npos) << report();
  std::cout << "store killed: replay exited 4 after " << took << " s (--retry-for-s 5)\n";
}

TEST_F(HostileTest, TwoConcurrentReplaysOfTheSameEventsNeitherConflictNorDoubleAnything) {
  start_broker("task-events", 8);
  start_store();
  constexpr int kEvents = 40000;
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events " + std::to_string(kEvents) +
                " --streams 4000 --topics task-events --seed 45"),
            0)
      << output();
  // Two groups over the same topic into the same store, at the same time: each event is written by
  // one of them; the other finds it written, however often a stream moves under it (no
  // revision-conflict for identical events).
  auto args = [&](const std::string& group) {
    return "replay --brokers " + bootstrap_ + " --topics task-events --group " + group + " --kurrent " + url() +
           " --dlq-file " + dir_ + "/" + group + ".ndjson --report " + dir_ + "/" + group + ".json --progress-s 1" +
           " -X session.timeout.ms=4000 -X heartbeat.interval.ms=500";
  };
  Process first(args("one"), dir_ + "/one.out");
  Process second(args("two"), dir_ + "/two.out");
  ASSERT_EQ(first.wait(180s), 0) << slurp(dir_ + "/one.out");
  ASSERT_EQ(second.wait(180s), 0) << slurp(dir_ + "/two.out");
  const std::string a = slurp(dir_ + "/one.json");
  const std::string b = slurp(dir_ + "/two.json");
  // Every event is stored once, by one of them: together they appended exactly that many (an append
  // sent again after a lost answer finds its own events by the run named on its first event).
  EXPECT_EQ(field(a, "events_appended") + field(b, "events_appended"), uint64_t(kEvents)) << a << "\n" << b;
  EXPECT_EQ(field(a, "events_appended") + field(a, "duplicates"), uint64_t(kEvents)) << a;
  EXPECT_EQ(field(b, "events_appended") + field(b, "duplicates"), uint64_t(kEvents)) << b;
  EXPECT_EQ(field(a, "dead_lettered") + field(b, "dead_lettered"), 0u) << a << "\n" << b;
  ASSERT_EQ(run("verify --kurrent " + url() + " --events " + std::to_string(kEvents) +
                " --streams 4000 --topics task-events --seed 45"),
            0)
      << output();
  std::cout << "two concurrent replays: " << field(a, "events_appended") << " + " << field(b, "events_appended")
            << " appended = " << kEvents << " stored\n";
}

// -------- dead letters -----------------------------------------------------------------------------

TEST_F(HostileTest, ProtobufLettersThroughDlqReplayAreIngestedByteIdentical) {
  start_broker();
  start_store();
  const std::string workload = " --events 600 --streams 30 --format protobuf --topics task-events --seed 44";
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + workload), 0) << output();
  // Streams named like KurrentDB's system streams: every event is dead-lettered.
  ASSERT_EQ(run(replay_args("task-events", "proto") + " --stream-template '$p-{AggregateType}-{AggregateId}'"), 3)
      << output();
  EXPECT_EQ(field(report(), "dead_lettered"), 600u) << report();
  const std::string letters = slurp(dir_ + "/dead-letters.ndjson");
  EXPECT_EQ(letters.find("\"value\":"), std::string::npos) << "protobuf bytes are not UTF-8: base64 only";
  EXPECT_NE(letters.find("\"value_base64\":"), std::string::npos);
  EXPECT_NE(letters.find("\"content_type\":"), std::string::npos);
  ASSERT_EQ(run("dlq replay --file " + dir_ + "/dead-letters.ndjson --brokers " + bootstrap_), 0) << output();
  ASSERT_EQ(run(replay_args("task-events", "proto")), 0) << output();
  EXPECT_EQ(field(report(), "events_appended"), 600u) << report();
  ASSERT_EQ(run("verify --kurrent " + url() + workload.substr(0, workload.find(" --topics")) +
                " --topics task-events --seed 44"),
            0)
      << "the store holds exactly the generated events\n"
      << output();
}

TEST_F(HostileTest, DlqReplaySkipsAMalformedLineAndDeliversTheRest) {
  start_broker();
  start_store();
  auto producer = kingest::kafka::Producer::create(bootstrap_);
  ASSERT_TRUE(producer.ok()) << producer.status();
  auto event = [](const std::string& aggregate, int version) {
    return R"({"eventId":"00000000-0000-4000-8000-00000000000)" + std::to_string(version) +
           R"(","eventType":"TaskUpdated","aggregateId":")" + aggregate +
           R"(","aggregateType":"Task","aggregateVersion":)" + std::to_string(version) + "}";
  };
  {
    std::ofstream out(dir_ + "/letters.ndjson");
    auto letter = [&](int version) {
      std::string e = event("m", version), escaped;
      for (char ch : e) {
        if (ch == '"') escaped += '\\';
        escaped += ch;
      }
      return R"({"reason":"decode-error","topic":"task-events","key":"m","value":")" + escaped + "\"}\n";
    };
    out << letter(1) << letter(2) << R"({"reason":"decode-error","topic":"task-events","key":"m","val)" << "\n"
        << letter(3) << "not json at all\n" << letter(4);
  }
  ASSERT_EQ(run("dlq replay --file " + dir_ + "/letters.ndjson --brokers " + bootstrap_), 3)
      << "done, with lines it could not use\n"
      << output();
  EXPECT_NE(output().find("letters.ndjson:3"), std::string::npos) << output();
  EXPECT_NE(output().find("letters.ndjson:5"), std::string::npos) << output();
  EXPECT_NE(output().find("4 dead letter(s) produced"), std::string::npos) << output();
  ASSERT_EQ(run(replay_args("task-events", "malformed")), 0) << output();
  EXPECT_EQ(field(report(), "events_appended"), 4u) << "every good letter was delivered\n" << report();
}

TEST_F(HostileTest, DlqReplayKeepsNullKeysBinaryBytesAndTheContentType) {
  start_broker("task-events,check", 1);
  {
    std::ofstream out(dir_ + "/letters.ndjson");
    // value_base64 "/wAQ" = ff 00 10; key_base64 "/v8=" = fe ff.
    out << R"({"reason":"decode-error","topic":"task-events","key":null,"content_type":"application/x-protobuf","value_base64":"/wAQ"})"
        << "\n"
        << R"({"reason":"decode-error","topic":"task-events","key":"","value":"caf\u00e9"})" << "\n"
        << R"({"reason":"decode-error","topic":"task-events","key_base64":"/v8=","value":"x"})" << "\n"
        // Written before letters were lossless: a lossy value beside the base64 of the bytes.
        << R"({"reason":"decode-error","topic":"task-events","key":"k","value":"\ufffd\u0000\u0010","value_base64":"/wAQ"})"
        << "\n";
  }
  ASSERT_EQ(run("dlq replay --topic check --file " + dir_ + "/letters.ndjson --brokers " + bootstrap_), 0) << output();
  auto got = kingest::kafka::testing::read_topic(bootstrap_, "check", 1, 4);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_TRUE(got[0].key_null) << "a null key stays null";
  EXPECT_EQ(got[0].value, std::string("\xff\x00\x10", 3));
  EXPECT_EQ(got[0].header("content-type").value_or(""), "application/x-protobuf");
  EXPECT_FALSE(got[1].key_null) << "an empty key stays an empty key";
  EXPECT_EQ(got[1].key, "");
  EXPECT_EQ(got[1].value, "caf\xc3\xa9");
  EXPECT_EQ(got[1].header("content-type").value_or(""), "");
  EXPECT_EQ(got[2].key, "\xfe\xff");
  EXPECT_EQ(got[3].value, std::string("\xff\x00\x10", 3)) << "the original bytes, not the lossy text";
}

TEST_F(HostileTest, ATornDeadLetterWriteLeavesAReadableFileAndACorrectCommit) {
  start_broker("task-events", 1);
  start_store();
  auto producer = kingest::kafka::Producer::create(bootstrap_);
  ASSERT_TRUE(producer.ok()) << producer.status();
  // 40 poison messages of ~30 KB each (not JSON), between good events.
  int good = 0;
  for (int i = 0; i < 40; ++i) {
    const std::string agg = "t" + std::to_string(i);
    ASSERT_TRUE((*producer)
                    ->produce("task-events", agg,
                              R"({"eventType":"TaskUpdated","aggregateId":")" + agg +
                                  R"(","aggregateType":"Task","aggregateVersion":1})")
                    .ok());
    ++good;
    ASSERT_TRUE((*producer)->produce("task-events", "poison-" + std::to_string(i), "poison-" + std::to_string(i) + ":" +
                                                                                  std::string(30000, 'x'))
                    .ok());
  }
  ASSERT_TRUE((*producer)->flush(30s).ok());
  const std::string dlq = dir_ + "/dead-letters.ndjson";
  // The file may grow to 100 KiB (ulimit -f counts 512-byte blocks in dash): the fourth letter
  // does not fit. First the kernel kills the run in the middle of the write (SIGXFSZ), the way a
  // crash tears a line; then, with the signal ignored, the write fails (EFBIG) as on a full disk.
  const int killed = run(replay_args("task-events", "torn"), 120s, dir_ + "/limited.out", "ulimit -f 200;");
  EXPECT_EQ(killed, 128 + SIGXFSZ) << slurp(dir_ + "/limited.out");
  const std::string torn = slurp(dlq);
  ASSERT_FALSE(torn.empty());
  EXPECT_NE(torn.back(), '\n') << "the crash left a partial last line";

  const int failed = run(replay_args("task-events", "torn"), 120s, dir_ + "/limited.out", "ulimit -f 200; trap '' XFSZ;");
  EXPECT_EQ(failed, 4) << "a dead letter that cannot be written stops the run\n" << slurp(dir_ + "/limited.out");
  EXPECT_NE(slurp(dir_ + "/limited.out").find("cut off a partial last line"), std::string::npos)
      << slurp(dir_ + "/limited.out");
  std::string after = slurp(dlq);
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after.back(), '\n') << "cut back to its last complete line";

  // Space again: the run finishes, every line is a letter and every poison message has one.
  ASSERT_EQ(run(replay_args("task-events", "torn")), 3) << output();
  std::ifstream in(dlq);
  simdjson::dom::parser parser;
  std::set<std::string> poisoned;
  int lines = 0;
  for (std::string line; std::getline(in, line);) {
    ++lines;
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << "line " << lines << ": " << line.substr(0, 200);
    poisoned.insert(std::string(std::string_view(doc["key"])));
  }
  EXPECT_EQ(poisoned.size(), 40u);
  // The commit is where the letters are: the group has nothing left to read.
  ASSERT_EQ(run(replay_args("task-events", "torn")), 0) << output();
  EXPECT_EQ(field(report(), "events_read"), 0u) << report();
  ASSERT_EQ(run("dlq replay --file " + dlq + " --brokers " + bootstrap_ + " --topic dlq-check"), 0) << output();
  EXPECT_NE(output().find(std::to_string(lines) + " dead letter(s) produced"), std::string::npos) << output();
}

}  // namespace
