// The demo path end to end, as a user runs it: the real binary, the embedded Kafka (librdkafka's
// mock cluster on loopback), the embedded store, then the report it writes.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {

struct DemoRun {
  int exit_code = -1;
  simdjson::dom::element report;
};

class DemoTest : public ::testing::Test {
 protected:
  simdjson::dom::parser parser_;
  std::string dir_ = std::filesystem::temp_directory_path() / ("ki-demo-test-" + std::to_string(::getpid()));
  // The demo's temp dir (TMPDIR of every run), where it must leave nothing it does not announce.
  std::string tmp_ = dir_ + "/tmp";

  void SetUp() override { std::filesystem::create_directories(tmp_); }
  void TearDown() override {
    EXPECT_EQ(demo_dirs(), std::vector<std::string>{}) << "a demo run left these behind:\n" << output();
    std::filesystem::remove_all(dir_);
  }

  // The command line of `kurrent-ingest demo`, its temp dir under this test's own.
  std::string demo() const { return "TMPDIR=" + tmp_ + " " + std::string(KI_BINARY) + " demo "; }
  std::vector<std::string> demo_dirs() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(tmp_)) {
      if (e.path().filename().string().starts_with("kurrent-ingest-demo-")) out.push_back(e.path().string());
    }
    return out;
  }

  DemoRun run(const std::string& args) {
    std::string report = dir_ + "/report.json";
    std::filesystem::remove(report);
    std::string cmd = demo() + args + " --report " + report + " > " + dir_ + "/out.txt 2>&1";
    int rc = std::system(cmd.c_str());
    DemoRun r;
    r.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    auto doc = parser_.load(report);
    EXPECT_FALSE(doc.error()) << "no report written; output:\n" << output();
    if (!doc.error()) r.report = doc.value();
    return r;
  }
  std::string output() const {
    std::string s;
    if (FILE* f = std::fopen((dir_ + "/out.txt").c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
      std::fclose(f);
    }
    return s;
  }
};

TEST_F(DemoTest, IngestsAndVerifiesSixtyThousandEventsInMemory) {
  auto r = run("--events 60000 --mem-db --no-raw-consume");
  ASSERT_EQ(r.exit_code, 0) << output();
  EXPECT_EQ(std::string_view(r.report["schema"]), "kurrent-ingest/run-report/v1");
  // The default path is the production one: the gRPC client against the embedded server, which
  // offers AppendRecords (the default mode `auto` picks it).
  EXPECT_EQ(std::string_view(r.report["sink"]), "kurrentdb-grpc");
  EXPECT_EQ(std::string_view(r.report["append_mode"]), "records");
  EXPECT_EQ(uint64_t(r.report["events_produced"]), 60000u);
  EXPECT_EQ(uint64_t(r.report["events_read"]), 60000u);
  EXPECT_EQ(uint64_t(r.report["events_appended"]), 60000u);
  EXPECT_EQ(uint64_t(r.report["duplicates"]), 0u);
  EXPECT_EQ(uint64_t(r.report["dead_lettered"]), 0u);
  EXPECT_EQ(uint64_t(r.report["streams"]), 3000u);
  EXPECT_GT(uint64_t(r.report["batches"]), 0u);
  EXPECT_GT(double(r.report["events_per_s"]), 0.0);
  EXPECT_TRUE(bool(r.report["verified"]));
  EXPECT_NE(output().find("verified: true"), std::string::npos);
}

TEST_F(DemoTest, VerifiesAMixOfJsonProtobufAndFlatBuffersMessages) {
  auto r = run("--events 20000 --mem-db --format mixed --no-raw-consume");
  ASSERT_EQ(r.exit_code, 0) << output();
  EXPECT_EQ(uint64_t(r.report["events_appended"]), 20000u);
  EXPECT_EQ(uint64_t(r.report["dead_lettered"]), 0u);
  EXPECT_TRUE(bool(r.report["verified"]));
}

TEST_F(DemoTest, EveryAppendModeAndTheInProcessSinkVerify) {
  for (const std::string mode : {"batch", "append", "session"}) {
    auto r = run("--events 10000 --mem-db --no-raw-consume --append-mode " + mode);
    ASSERT_EQ(r.exit_code, 0) << mode << ": " << output();
    EXPECT_EQ(std::string_view(r.report["append_mode"]), mode);
    EXPECT_EQ(uint64_t(r.report["events_appended"]), 10000u) << mode;
    EXPECT_TRUE(bool(r.report["verified"])) << mode;
  }
  auto r = run("--events 10000 --mem-db --no-raw-consume --sink direct");
  ASSERT_EQ(r.exit_code, 0) << output();
  EXPECT_EQ(std::string_view(r.report["sink"]), "embedded-store");
  EXPECT_EQ(std::string_view(r.report["append_mode"]), "direct");
  EXPECT_TRUE(bool(r.report["verified"]));
  // The pipeline alone: appends are encoded and dropped.
  r = run("--events 10000 --no-raw-consume --sink discard");
  ASSERT_EQ(r.exit_code, 0) << output();
  EXPECT_EQ(std::string_view(r.report["sink"]), "discard");
  EXPECT_EQ(uint64_t(r.report["events_appended"]), 10000u);
  EXPECT_NE(output().find("nothing to read back"), std::string::npos) << output();
}

TEST_F(DemoTest, AnUnreachableKurrentDbSaysWhatToCheck) {
  std::string cmd = demo() + "--events 100 --kurrent 'kurrentdb://127.0.0.1:1?tls=false' > " +
                    dir_ + "/out.txt 2>&1";
  int rc = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 4);
  EXPECT_NE(output().find("Is the server up"), std::string::npos) << output();
  cmd = demo() + "--events 100 --kurrent 'http://127.0.0.1:1' > " + dir_ + "/out.txt 2>&1";
  rc = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  EXPECT_NE(output().find("scheme"), std::string::npos) << output();
}

TEST_F(DemoTest, ASecondRunIntoTheSameFileCountsEverythingAsDuplicates) {
  std::string db = dir_ + "/events.db";
  auto first = run("--events 8000 --db " + db + " --no-raw-consume");
  ASSERT_EQ(first.exit_code, 0) << output();
  auto second = run("--events 8000 --db " + db + " --no-raw-consume");
  ASSERT_EQ(second.exit_code, 0) << output();
  EXPECT_EQ(uint64_t(second.report["events_appended"]), 0u);
  EXPECT_EQ(uint64_t(second.report["duplicates"]), 8000u);
  EXPECT_TRUE(bool(second.report["verified"]));
}

TEST_F(DemoTest, KeepsOnlyTheDefaultStoreFileAndSaysHowToRemoveIt) {
  auto r = run("--events 2000 --no-raw-consume");
  ASSERT_EQ(r.exit_code, 0) << output();
  const auto kept = demo_dirs();
  ASSERT_EQ(kept.size(), 1u) << output();
  EXPECT_NE(output().find("kept " + kept[0]), std::string::npos) << output();
  EXPECT_NE(output().find("rm -r " + kept[0]), std::string::npos) << output();
  EXPECT_TRUE(std::filesystem::exists(kept[0] + "/events.db"));
  EXPECT_FALSE(std::filesystem::exists(kept[0] + "/dead-letters.ndjson")) << "an empty dead-letter file says nothing";
  std::filesystem::remove_all(kept[0]);
}

TEST_F(DemoTest, BadFlagsExitWithUsageErrorAndSayWhatToFix) {
  std::string cmd = demo() + "--payload-bytes 600-200 > " + dir_ + "/out.txt 2>&1";
  int rc = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  EXPECT_NE(output().find("--payload-bytes"), std::string::npos) << output();
  cmd = demo() + "--version-base 7 > " + dir_ + "/out.txt 2>&1";
  rc = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  EXPECT_NE(output().find("--version-base"), std::string::npos) << output();
}

}  // namespace
