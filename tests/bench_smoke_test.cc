// `kurrent-ingest-bench` end to end on a small data set of both shapes: every case runs in its own
// process (the broker, serve-store, replay, the probes and the Node.js peer), and the tables, the
// JSON with each shape's ratios and targets, and the shared run report come out. No figure is asserted beyond being
// measured (> 0): speed targets are read from the JSON by people, not by tests.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

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

TEST_F(BenchTest, MeasuresEveryCaseOnBothShapesAndWritesTheTablesTheRatiosAndTheReport) {
  const std::string json = dir_ + "/bench.json";
  const std::string report = dir_ + "/report.json";
  const int rc = run("--events 4000 --streams 200 --runs 1 --unbatched-events 300 --peer-events 200 --peer-dir " +
                     std::string(KI_SOURCE_DIR) + "/bench/peers/nestjs-subscriber --json " + json + " --report " +
                     report + " --work-dir " + dir_ + "/work");
  ASSERT_EQ(rc, 0) << output();
  const std::string out = output();
  for (const char* name : {"shape deep: 4000 events, 200 streams", "shape wide: 4000 events, 1000 streams",
                           "kafka-raw", "sink-raw", "store-raw", "store-raw-file", "pipeline-discard", "e2e-memdb",
                           "e2e-file", "unbatched", "peer", "pipeline_vs_kafka", "e2e_vs_sink", "batched_vs_unbatched",
                           "vs_per_message_peer", "cpu_pipeline_vs_kafka", "store_vs_store_raw", "peak_rss_d_mib",
                           "cpu bound of shape deep", "cpu bound of shape wide", "e2e_vs_kafka_at_cpu_bound"}) {
    EXPECT_NE(out.find(name), std::string::npos) << name << " missing from the tables:\n" << out;
  }

  auto doc = parser_.load(json);
  ASSERT_FALSE(doc.error()) << out;
  EXPECT_EQ(std::string_view(doc["schema"]), "kurrent-ingest/bench/v2");
  EXPECT_EQ(std::string_view(doc["store_api"]), "multi");
  std::vector<std::string> shapes_run;
  for (auto s : doc["shapes_run"].get_array()) shapes_run.emplace_back(std::string_view(s));
  EXPECT_EQ(shapes_run, (std::vector<std::string>{"deep", "wide"}));
  for (const auto& [name, streams] : {std::pair{"deep", 200u}, std::pair{"wide", 1000u}}) {
    SCOPED_TRACE(name);
    auto shape = doc["shapes"][name];
    ASSERT_FALSE(shape.error()) << name << " missing from the JSON";
    EXPECT_EQ(std::string_view(shape["shape"]), name);
    EXPECT_EQ(uint64_t(shape["events"]), 4000u);
    EXPECT_EQ(uint64_t(shape["streams"]), streams);
    EXPECT_DOUBLE_EQ(double(shape["events_per_stream"]), 4000.0 / streams);
    EXPECT_GT(double(shape["bytes_per_event"]), 0);
    EXPECT_GT(uint64_t(shape["partitions_per_topic"]), 0u);
    std::set<std::string> ids;
    for (auto c : shape["cases"].get_array()) {
      const std::string id{std::string_view(c["id"])};
      ids.insert(id);
      const uint64_t expected = id == "e" ? uint64_t(shape["unbatched_sample_events"]) : id == "f" ? 200u : 4000u;
      EXPECT_EQ(uint64_t(c["events"]), expected) << id;
      EXPECT_GT(double(c["events_per_s"]), 0) << id;
      EXPECT_GT(double(c["mb_per_s"]), 0) << id;
      EXPECT_GT(double(c["cpu_s_per_m_events"]), 0) << id;
      EXPECT_GT(double(c["peak_rss_mib"]), 0) << id;
      if (id != "a") {
        EXPECT_GT(double(c["events_per_append"]), 0) << id;
      }
      if (id == "s" || id == "s-file") {
        // Every event written once, in transactions of many appends each.
        EXPECT_GE(double(c["events_per_transaction"]), double(c["events_per_append"])) << id;
      } else if (id != "a") {
        EXPECT_GT(double(c["append_latency_p50_ms"]), 0) << id;
        EXPECT_GE(double(c["append_latency_p99_ms"]), double(c["append_latency_p50_ms"])) << id;
      }
      if (id == "d" || id == "d-file") {
        EXPECT_GT(double(c["store_cpu_s_per_m_events"]), 0) << id;
      }
    }
    EXPECT_EQ(ids, (std::set<std::string>{"a", "b", "s", "s-file", "c", "d", "d-file", "e", "f"}));
    EXPECT_GE(uint64_t(shape["unbatched_sample_events"]), 300u);
    for (const char* ratio : {"e2e_vs_kafka", "e2e_vs_sink", "pipeline_vs_kafka", "batched_vs_unbatched",
                              "vs_per_message_peer", "e2e_file_vs_kafka", "cpu_pipeline_vs_kafka",
                              "store_vs_store_raw", "store_file_vs_store_raw_file"}) {
      double v = 0;
      EXPECT_EQ(shape["ratios"][ratio].get_double().get(v), simdjson::SUCCESS) << ratio;
      EXPECT_GT(v, 0) << ratio;
    }
    EXPECT_GT(double(shape["peak_rss_mib"]), 0);
    EXPECT_GT(double(shape["peak_rss_d_mib"]), 0);
    EXPECT_LE(double(shape["peak_rss_d_mib"]), double(shape["peak_rss_mib"]));
    std::set<std::string> targets;
    for (auto t : shape["targets"].get_array()) {
      const std::string target{std::string_view(t["name"])};
      targets.insert(target);
      bool met = false;
      EXPECT_EQ(t["met"].get_bool().get(met), simdjson::SUCCESS) << target;
      double bound = 0;
      const bool upper = t["at_most"].get_double().get(bound) == simdjson::SUCCESS;
      const bool lower = t["at_least"].get_double().get(bound) == simdjson::SUCCESS;
      EXPECT_NE(upper, lower) << target << " needs exactly one of at_most and at_least";
      EXPECT_EQ(met, upper ? double(t["value"]) <= bound : double(t["value"]) >= bound) << target;
    }
    EXPECT_EQ(targets, (std::set<std::string>{"e2e_vs_kafka", "e2e_vs_sink", "pipeline_vs_kafka",
                                              "batched_vs_unbatched", "vs_per_message_peer", "cpu_pipeline_vs_kafka",
                                              "store_vs_store_raw", "peak_rss_mib", "peak_rss_d_mib"}));

    // The rate each case's CPU allows: every process's CPU per event (as the case lists them)
    // against the cores, and the case's rate against that; the sampled cases are left out.
    struct Listed {
      double rate = 0, cpu_us = 0;
    };
    std::map<std::string, Listed> listed;
    for (auto c : shape["cases"].get_array()) {
      double store = 0, broker = 0;  // absent: none (the store in-process, no broker)
      if (c["store_cpu_s_per_m_events"].get_double().get(store) != simdjson::SUCCESS) store = 0;
      if (c["broker_cpu_s_per_m_events"].get_double().get(broker) != simdjson::SUCCESS) broker = 0;
      listed[std::string(std::string_view(c["id"]))] = {double(c["events_per_s"]),
                                                        double(c["cpu_s_per_m_events"]) + store + broker};
    }
    auto near = [](double a, double b) { return std::abs(a - b) <= 1e-6 * std::max(std::abs(a), std::abs(b)); };
    auto bound = shape["cpu_bound"];
    const uint64_t cores = bound["cores"];
    EXPECT_GE(cores, 1u);
    std::set<std::string> bound_ids;
    double d_at_most = 0;
    for (auto b : bound["cases"].get_array()) {
      const std::string id{std::string_view(b["id"])};
      bound_ids.insert(id);
      const double cpu_us = b["cpu_us_per_event"], at_most = b["events_per_s_at_most"], share = b["share_of_bound"];
      EXPECT_TRUE(near(cpu_us, listed[id].cpu_us)) << id << ": " << cpu_us << " against " << listed[id].cpu_us;
      EXPECT_TRUE(near(at_most, double(cores) * 1e6 / cpu_us)) << id;
      EXPECT_TRUE(near(share, listed[id].rate / at_most)) << id;
      if (id == "d") d_at_most = at_most;
    }
    EXPECT_EQ(bound_ids, (std::set<std::string>{"a", "b", "s", "s-file", "c", "d", "d-file"}));
    EXPECT_TRUE(near(double(bound["e2e_vs_kafka_at_cpu_bound"]), d_at_most / listed["a"].rate));
  }

  auto r = parser_.load(report);
  ASSERT_FALSE(r.error());
  EXPECT_EQ(std::string_view(r["schema"]), "kurrent-ingest/run-report/v1");
  EXPECT_EQ(std::string_view(r["command"]), "bench");
  EXPECT_EQ(uint64_t(r["events_appended"]), 4000u);
  const std::string_view mode = r["append_mode"];  // the replay's, as its own report says
  EXPECT_TRUE(mode == "records" || mode == "batch") << mode;
  for (const char* key : {"deep_ratio_e2e_vs_kafka", "wide_ratio_store_vs_store_raw", "wide_store-raw_events_per_s",
                          "deep_peak_rss_d_mib", "deep_cpu_bound_d_events_per_s", "wide_e2e_vs_kafka_at_cpu_bound"}) {
    double v = 0;
    EXPECT_EQ(r[key].get_double().get(v), simdjson::SUCCESS) << key;
  }
}

TEST_F(BenchTest, OneShapeRunsAloneAndWideFollowsTheEventCountAndTheStoreTakesAStreamGroupPerRequest) {
  const std::string json = dir_ + "/bench.json";
  const int rc = run("--events 2000 --streams 50 --shape wide --runs 1 --cases a,s --store-api append --json " + json +
                     " --work-dir " + dir_ + "/work");
  ASSERT_EQ(rc, 0) << output();
  auto doc = parser_.load(json);
  ASSERT_FALSE(doc.error()) << output();
  EXPECT_EQ(doc["shapes_run"].get_array().size(), 1u);
  EXPECT_TRUE(doc["shapes"]["deep"].error()) << "deep ran though --shape wide";
  EXPECT_EQ(uint64_t(doc["shapes"]["wide"]["streams"]), 500u) << "--streams is the deep shape's only";
  EXPECT_EQ(output().find("shape deep"), std::string::npos) << output();
  EXPECT_EQ(std::string_view(doc["store_api"]), "append");
  for (auto c : doc["shapes"]["wide"]["cases"].get_array()) {
    EXPECT_EQ(uint64_t(c["events"]), 2000u) << std::string_view(c["id"]);
  }
}

TEST_F(BenchTest, UnknownShapeIsAUsageError) {
  EXPECT_EQ(run("--shape tall"), 2);
  EXPECT_NE(output().find("--shape"), std::string::npos) << output();
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
