// `kurrent-ingest-bench` end to end on a small data set: every case runs in its own process (the
// broker, serve-store, replay, the probes and the Node.js peer), and the table, the JSON with its
// ratios and targets, and the shared run report come out. No figure is asserted beyond being
// measured (> 0): speed targets are read from the JSON by people, not by tests.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace {

class BenchTest : public ::testing::Test {
 protected:
  simdjson::dom::parser parser_;
  std::string dir_ = std::filesystem::temp_directory_path() / ("ki-bench-test-" + std::to_string(::getpid()));
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  int run(const std::string& args) {
    std::string cmd = std::string(KI_BENCH_BINARY) + " " + args + " > " + dir_ + "/out.txt 2>&1";
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  std::string output() const {
    std::ifstream in(dir_ + "/out.txt");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

TEST_F(BenchTest, MeasuresEveryCaseAndWritesTheTableTheRatiosAndTheReport) {
  const std::string json = dir_ + "/bench.json";
  const std::string report = dir_ + "/report.json";
  const int rc = run("--events 4000 --streams 200 --runs 1 --unbatched-events 300 --peer-events 200 --peer-dir " +
                     std::string(KI_SOURCE_DIR) + "/bench/peers/nestjs-subscriber --json " + json + " --report " +
                     report + " --work-dir " + dir_ + "/work");
  ASSERT_EQ(rc, 0) << output();
  const std::string out = output();
  for (const char* name : {"kafka-raw", "sink-raw", "pipeline-discard", "e2e-memdb", "e2e-file", "unbatched", "peer",
                           "pipeline_vs_kafka", "e2e_vs_sink", "batched_vs_unbatched", "vs_per_message_peer"}) {
    EXPECT_NE(out.find(name), std::string::npos) << name << " missing from the table:\n" << out;
  }

  auto doc = parser_.load(json);
  ASSERT_FALSE(doc.error()) << out;
  EXPECT_EQ(std::string_view(doc["schema"]), "kurrent-ingest/bench/v1");
  EXPECT_EQ(uint64_t(doc["events"]), 4000u);
  std::set<std::string> ids;
  for (auto c : doc["cases"].get_array()) {
    const std::string id{std::string_view(c["id"])};
    ids.insert(id);
    const uint64_t expected = id == "e" ? uint64_t(doc["unbatched_sample_events"]) : id == "f" ? 200u : 4000u;
    EXPECT_EQ(uint64_t(c["events"]), expected) << id;
    EXPECT_GT(double(c["events_per_s"]), 0) << id;
    EXPECT_GT(double(c["mb_per_s"]), 0) << id;
    EXPECT_GT(double(c["cpu_s_per_m_events"]), 0) << id;
    EXPECT_GT(double(c["peak_rss_mib"]), 0) << id;
    if (id != "a") {
      EXPECT_GT(double(c["append_latency_p50_ms"]), 0) << id;
      EXPECT_GE(double(c["append_latency_p99_ms"]), double(c["append_latency_p50_ms"])) << id;
    }
  }
  EXPECT_EQ(ids, (std::set<std::string>{"a", "b", "c", "d", "d-file", "e", "f"}));
  EXPECT_GE(uint64_t(doc["unbatched_sample_events"]), 300u);
  for (const char* ratio : {"e2e_vs_kafka", "e2e_vs_sink", "pipeline_vs_kafka", "batched_vs_unbatched",
                            "vs_per_message_peer"}) {
    double v = 0;
    EXPECT_EQ(doc["ratios"][ratio].get_double().get(v), simdjson::SUCCESS) << ratio;
    EXPECT_GT(v, 0) << ratio;
  }
  EXPECT_GT(double(doc["peak_rss_mib"]), 0);
  size_t targets = 0;
  for (auto t : doc["targets"].get_array()) {
    bool met = false;
    EXPECT_EQ(t["met"].get_bool().get(met), simdjson::SUCCESS);
    ++targets;
  }
  EXPECT_EQ(targets, 5u) << "c/a, d/b, d/e, d/f and peak RSS";

  auto r = parser_.load(report);
  ASSERT_FALSE(r.error());
  EXPECT_EQ(std::string_view(r["schema"]), "kurrent-ingest/run-report/v1");
  EXPECT_EQ(std::string_view(r["command"]), "bench");
  EXPECT_EQ(uint64_t(r["events_appended"]), 4000u);
}

TEST_F(BenchTest, UnknownCaseIsAUsageErrorThatNamesTheCases) {
  EXPECT_EQ(run("--cases a,x"), 2);
  EXPECT_NE(output().find("unknown case 'x'"), std::string::npos) << output();
}

TEST_F(BenchTest, APeerWithoutItsPackagesIsAUsageErrorThatSaysWhatToRun) {
  EXPECT_EQ(run("--cases f --peer-dir " + dir_), 2);
  EXPECT_NE(output().find("npm ci"), std::string::npos) << output();
}

}  // namespace
