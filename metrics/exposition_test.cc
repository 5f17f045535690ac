#include "metrics/exposition.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "metrics/output.h"

namespace kingest::metrics {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// promtool's verdict on `text`: its exit code, and what it said.
std::pair<int, std::string> promtool_check(const std::string& text) {
  const std::string path = std::filesystem::temp_directory_path() / ("ki-promtool-" + std::to_string(::getpid()));
  std::ofstream(path) << text;
  std::string cmd = std::string(KI_PROMTOOL) + " check metrics < " + path + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (p != nullptr && std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  int rc = p == nullptr ? -1 : ::pclose(p);
  std::filesystem::remove(path);
  return {rc, out};
}

void fill_sample(Registry& r) {
  r.add([](Exposition& e) {
    e.counter("kurrent_ingest_events_read_total", "Kafka messages read", uint64_t{42});
    e.gauge("kurrent_ingest_consumer_lag", "Messages after the committed offset", 3,
            {{"topic", "t\"x"}, {"partition", "0"}});
    e.gauge("kurrent_ingest_consumer_lag", "Messages after the committed offset", 0, {{"topic", "t"}, {"partition", "1"}});
    e.histogram("kurrent_ingest_append_duration_seconds", "Append latency",
                HistogramSnapshot{.buckets = {{0.001, 2}, {0.01, 5}}, .count = 6, .sum = 0.25});
    e.declare("kurrent_ingest_reconnects_total", "counter", "Calls opened again");
  });
  add_process_metrics(r);
}

TEST(Exposition, FamiliesHaveHelpTypeAndEscapedLabels) {
  Registry reg;
  fill_sample(reg);
  auto text = reg.render();
  EXPECT_NE(text.find("# TYPE kurrent_ingest_events_read_total counter\nkurrent_ingest_events_read_total 42\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("kurrent_ingest_consumer_lag{topic=\"t\\\"x\",partition=\"0\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kurrent_ingest_append_duration_seconds_bucket{le=\"+Inf\"} 6\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kurrent_ingest_append_duration_seconds_bucket{le=\"0.001\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("process_resident_memory_bytes "), std::string::npos) << text;
  EXPECT_EQ(text.find("# TYPE kurrent_ingest_consumer_lag gauge"), text.rfind("# TYPE kurrent_ingest_consumer_lag"));
}

TEST(Exposition, PromtoolAcceptsTheText) {
  Registry reg;
  fill_sample(reg);
  auto [rc, out] = promtool_check(reg.render());
  EXPECT_EQ(rc, 0) << out;
}

TEST(Exposition, PromtoolRejectsABrokenText) {
  // The check above can fail: promtool does reject a malformed exposition.
  auto [rc, out] = promtool_check("# TYPE x counter\nx{le=} 1\n");
  EXPECT_NE(rc, 0) << out;
}

TEST(MetricsOutput, ServesMetricsOnAnEphemeralLoopbackPort) {
  Registry reg;
  fill_sample(reg);
  auto out = MetricsOutput::start(reg, {.listen = "127.0.0.1:0"});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE((*out)->url().starts_with("http://127.0.0.1:")) << (*out)->url();
  const std::string hostport = (*out)->url().substr(7, (*out)->url().size() - 7 - 8);
  httplib::Client client("http://" + hostport);
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(res->get_header_value("Content-Type").starts_with("text/plain; version=0.0.4")) << res->get_header_value("Content-Type");
  EXPECT_NE(res->body.find("kurrent_ingest_events_read_total 42"), std::string::npos) << res->body;
  EXPECT_TRUE((*out)->stop().ok());
}

TEST(MetricsOutput, ListenAddressesDefaultToLoopbackAndErrorsNameTheFlag) {
  EXPECT_EQ(parse_listen(":9464").value(), (std::pair<std::string, int>{"127.0.0.1", 9464}));
  EXPECT_EQ(parse_listen("9464").value(), (std::pair<std::string, int>{"127.0.0.1", 9464}));
  EXPECT_EQ(parse_listen("[::1]:0").value(), (std::pair<std::string, int>{"::1", 0}));
  auto bad = parse_listen("localhost:http");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--metrics-listen"), std::string::npos);
}

TEST(MetricsOutput, AReaderNeverSeesAHalfWrittenTextfile) {
  const std::string path = std::filesystem::temp_directory_path() / ("ki-textfile-" + std::to_string(::getpid()) + ".prom");
  // Large enough that a plain rewrite would be seen part-way.
  Registry reg;
  std::atomic<uint64_t> generation{0};
  reg.add([&](Exposition& e) {
    const uint64_t g = generation.fetch_add(1);
    for (int i = 0; i < 2000; ++i) {
      e.gauge("kurrent_ingest_test_filler", "Filler", double(g), {{"i", std::to_string(i)}});
    }
    e.counter("kurrent_ingest_test_end_total", "Last family", g);
  });
  auto out = MetricsOutput::start(reg, {.textfile = path, .textfile_every = std::chrono::milliseconds(1)});
  ASSERT_TRUE(out.ok()) << out.status();
  int reads = 0;
  while (generation.load() < 200) {
    auto text = slurp(path);
    ++reads;
    ASSERT_FALSE(text.empty());
    ASSERT_NE(text.find("kurrent_ingest_test_end_total "), std::string::npos) << "read " << reads << " was cut short";
    ASSERT_EQ(text.back(), '\n');
  }
  ASSERT_TRUE((*out)->stop().ok());
  auto [rc, said] = promtool_check(slurp(path));
  EXPECT_EQ(rc, 0) << said;
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace kingest::metrics
