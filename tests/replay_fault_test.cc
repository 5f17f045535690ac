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
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kTopics = "system-events,vulnerability-events,task-events,relationship-events";

// A child process running `kurrent-ingest ARGS` (through sh, output to a file).
class Process {
 public:
  Process(const std::string& args, const std::string& out) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string cmd = "exec " + std::string(KI_BINARY) + " " + args + " >> " + out + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      ::_exit(127);
    }
  }
  ~Process() {
    if (pid_ > 0) kill(SIGKILL);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Exit code (or 128 + signal), waiting up to `timeout`; -1 when still running.
  int wait(std::chrono::milliseconds timeout) {
    auto end = Clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (Clock::now() >= end) return -1;
      std::this_thread::sleep_for(20ms);
    }
    return code_;
  }
  int kill(int sig) {
    if (pid_ <= 0) return code_;
    ::kill(pid_, sig);
    return wait(60s);
  }

 private:
  pid_t pid_ = -1;
  int code_ = -1;
};

std::string read_line(const std::string& file, std::chrono::milliseconds timeout) {
  auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    std::ifstream in(file);
    std::string line;
    if (std::getline(in, line) && !line.empty()) return line;
    std::this_thread::sleep_for(20ms);
  }
  return {};
}

std::string slurp(const std::string& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ReplayFaultTest : public ::testing::Test {
 protected:
  std::string dir_ = std::filesystem::temp_directory_path() / ("ki-replay-fault-" + std::to_string(::getpid()));

  void SetUp() override {
    std::filesystem::create_directories(dir_);
    broker_ = std::make_unique<Process>("broker --topics " + kTopics + " --partitions 8 --bootstrap-file " + dir_ +
                                            "/bootstrap",
                                        dir_ + "/broker.out");
    bootstrap_ = read_line(dir_ + "/bootstrap", 20s);
    ASSERT_FALSE(bootstrap_.empty()) << slurp(dir_ + "/broker.out");
  }
  void TearDown() override {
    store_.reset();
    broker_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  void start_store(const std::string& listen = "127.0.0.1:0") {
    std::filesystem::remove(dir_ + "/address");
    store_ = std::make_unique<Process>("serve-store --db " + dir_ + "/events.db --listen " + listen +
                                           " --address-file " + dir_ + "/address",
                                       dir_ + "/store.out");
    address_ = read_line(dir_ + "/address", 20s);
    ASSERT_FALSE(address_.empty()) << slurp(dir_ + "/store.out");
  }

  int run(const std::string& args, std::chrono::milliseconds timeout = 120s) {
    Process p(args, dir_ + "/run.out");
    int code = p.wait(timeout);
    return code < 0 ? p.kill(SIGKILL) : code;
  }

  std::string url() const { return "'kurrentdb://" + address_ + "?tls=false'"; }

  std::string replay_args(const std::string& group) const {
    return "replay --brokers " + bootstrap_ + " --topics " + kTopics + " --group " + group + " --kurrent " + url() +
           " --dlq-file " + dir_ + "/dead-letters.ndjson --report " + dir_ + "/report.json --progress-s 2" +
           " -X session.timeout.ms=4000 -X heartbeat.interval.ms=500 --retry-for-s 120";
  }

  std::string report() const { return slurp(dir_ + "/report.json"); }

  std::unique_ptr<Process> broker_;
  std::unique_ptr<Process> store_;
  std::string bootstrap_;
  std::string address_;
};

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// "key": value from the report.
uint64_t field(const std::string& report, const std::string& key) {
  auto at = report.find("\"" + key + "\":");
  if (at == std::string::npos) return ~uint64_t{0};
  return std::stoull(report.substr(at + key.size() + 3));
}

TEST_F(ReplayFaultTest, KilledAtRandomPointsAndRerunEndsWithExactlyTheProducedEvents) {
  constexpr int kEvents = 100000;
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events " + std::to_string(kEvents) + " --seed 11"), 0)
      << slurp(dir_ + "/run.out");
  start_store();

  std::mt19937 rng(std::random_device{}());
  int kills = 0;
  int runs = 0;
  int last = -1;
  auto deadline = Clock::now() + 8min;
  while (Clock::now() < deadline) {
    ++runs;
    const size_t joins_before = count(slurp(dir_ + "/run.out"), "assigned ");
    Process p(replay_args("fault-kill"), dir_ + "/run.out");
    if (kills < 5) {
      // A random point after the group gave this run its partitions: mid-ingest or near the end.
      int code = -1;
      while (code < 0 && count(slurp(dir_ + "/run.out"), "assigned ") == joins_before) code = p.wait(50ms);
      if (code < 0) code = p.wait(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 2500)(rng)));
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
  ASSERT_EQ(last, 0) << "the last replay ends done after " << runs << " runs and " << kills << " kills\n"
                     << slurp(dir_ + "/run.out");
  EXPECT_GE(kills, 1) << "at least one replay was killed part-way";
  ASSERT_EQ(run("verify --kurrent " + url() + " --events " + std::to_string(kEvents) + " --seed 11"), 0)
      << slurp(dir_ + "/run.out");

  // Everything is there: a replay from the beginning (a new group) appends nothing.
  ASSERT_EQ(run(replay_args("fault-again")), 0) << slurp(dir_ + "/run.out");
  auto r = report();
  EXPECT_EQ(field(r, "events_appended"), 0u) << r;
  EXPECT_EQ(field(r, "duplicates"), uint64_t(kEvents)) << r;
  EXPECT_EQ(field(r, "dead_lettered"), 0u) << r;
  std::cout << "replay kill -9: " << runs << " runs, " << kills << " kills, " << kEvents
            << " events verified (0 lost, 0 duplicated)\n";
}

TEST_F(ReplayFaultTest, TheStoreServerKilledAndRestartedDuringAReplay) {
  constexpr int kEvents = 60000;
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events " + std::to_string(kEvents) + " --seed 12"), 0)
      << slurp(dir_ + "/run.out");
  start_store();
  const std::string listen = address_;
  Process replay(replay_args("fault-store"), dir_ + "/run.out");
  std::this_thread::sleep_for(3500ms);  // past the group join, into the ingest
  store_->kill(SIGKILL);                // acknowledged writes are durable (synchronous=FULL)
  std::this_thread::sleep_for(1500ms);
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
  // Each instance writes its own report; the killed one writes none.
  auto args = [&](int i) {
    std::string a = replay_args("fault-three");
    return a.replace(a.find(dir_ + "/report.json"), (dir_ + "/report.json").size(),
                     dir_ + "/report-" + std::to_string(i) + ".json");
  };
  Process a(args(0), dir_ + "/run.out");
  Process b(args(1), dir_ + "/run.out");
  Process c(args(2), dir_ + "/run.out");
  // Killed once the group has handed out partitions (the three share them) and work has begun.
  auto until = Clock::now() + 60s;
  while (count(slurp(dir_ + "/run.out"), "assigned ") < 3 && Clock::now() < until) std::this_thread::sleep_for(50ms);
  std::this_thread::sleep_for(800ms);
  EXPECT_EQ(c.kill(SIGKILL), 128 + SIGKILL) << "the third instance was still running when killed";
  EXPECT_EQ(a.wait(240s), 0) << slurp(dir_ + "/run.out");
  EXPECT_EQ(b.wait(240s), 0) << slurp(dir_ + "/run.out");
  ASSERT_EQ(run("verify --kurrent " + url() + " --events " + std::to_string(kEvents) + " --seed 13"), 0)
      << slurp(dir_ + "/run.out");
}

}  // namespace
