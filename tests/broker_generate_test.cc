// `broker` and `generate` as separate processes, the way the fault tests and users run them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "core/testing/eventually.h"
#include "kafka/raw_consume.h"
#include "tests/processes.h"

namespace {

using namespace std::chrono_literals;

class BrokerProcess {
 public:
  BrokerProcess(const std::string& dir, const std::string& args) : file_(dir + "/bootstrap.txt") {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string cmd = std::string(KI_BINARY) + " broker --bootstrap-file " + file_ + " " + args + " > " + dir +
                        "/broker.out 2>&1";
      ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), nullptr);
      ::_exit(127);
    }
    EXPECT_TRUE(kingest::testing::eventually(
        [&] {
          std::ifstream in(file_);
          return std::getline(in, bootstrap_) && !bootstrap_.empty();
        },
        10s, "a line in the broker's bootstrap file " + file_));
  }
  ~BrokerProcess() {
    if (pid_ > 0) stop();
  }
  int stop() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& bootstrap() const { return bootstrap_; }
  const std::string& file() const { return file_; }

 private:
  pid_t pid_ = -1;
  std::string file_;
  std::string bootstrap_;
};

class ProcessesTest : public ::testing::Test {
 protected:
  std::string dir_ = std::filesystem::temp_directory_path() / ("ki-proc-test-" + std::to_string(::getpid()));
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
};

TEST_F(ProcessesTest, GenerateProducesEveryEventToAStandaloneBroker) {
  BrokerProcess broker(dir_, "--topics orders,payments --partitions 3");
  ASSERT_FALSE(broker.bootstrap().empty()) << "the broker never wrote its bootstrap file";
  std::string cmd = std::string(KI_BINARY) + " generate --brokers " + broker.bootstrap() +
                    " --events 12000 --streams 300 --topics orders,payments --format mixed > " + dir_ + "/gen.out 2>&1";
  ASSERT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 0);
  auto r = kingest::kafka::raw_consume(broker.bootstrap(), {"orders", "payments"}, 12000, 30s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages, 12000u);
  EXPECT_EQ(broker.stop(), 0) << "a signalled broker exits cleanly";
  EXPECT_FALSE(std::filesystem::exists(broker.file())) << "the bootstrap file goes with the broker";
}

// More than one partition of the embedded broker keeps (~5 MiB): generate says that the broker
// deleted some of what it produced, and how to fix it, instead of leaving a replay to dead-letter
// the streams whose first versions are gone. Within what it keeps, the same call succeeds.
TEST_F(ProcessesTest, GenerateFailsWhenTheBrokerDeletedSomeOfWhatItProduced) {
  BrokerProcess broker(dir_, "--topics orders --partitions 1");
  ASSERT_FALSE(broker.bootstrap().empty()) << "the broker never wrote its bootstrap file";
  const std::string out = dir_ + "/gen.out";
  auto generate = [&](int events) {
    std::string cmd = std::string(KI_BINARY) + " generate --brokers " + broker.bootstrap() + " --events " +
                      std::to_string(events) + " --streams 100 --topics orders > " + out + " 2>&1";
    return WEXITSTATUS(std::system(cmd.c_str()));
  };
  ASSERT_EQ(generate(2000), 0) << kingest::testing::slurp(out);
  ASSERT_EQ(generate(20000), 4) << kingest::testing::slurp(out);
  const std::string said = kingest::testing::slurp(out);
  EXPECT_NE(said.find("has already deleted"), std::string::npos) << said;
  EXPECT_NE(said.find("--partitions"), std::string::npos) << said;
}

TEST_F(ProcessesTest, GenerateRejectsBadArgumentsWithUsageErrors) {
  std::string out = dir_ + "/gen.out";
  std::string cmd = std::string(KI_BINARY) + " generate --brokers 127.0.0.1:1 --format yaml > " + out + " 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 2);
  cmd = std::string(KI_BINARY) + " generate --events 10 > " + out + " 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 2) << "--brokers is required";
}

}  // namespace
