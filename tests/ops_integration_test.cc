// Operating a scheduled run, end to end with the real binary, the embedded Kafka (`broker`) and the
// store behind its gRPC server (`serve-store`): metrics scraped during a replay move and finish
// equal to the report, promtool accepts the endpoint and the textfile, the textfile is never seen
// half-written, the consumer lag falls to 0; job files run the same replay as flags and fail on
// unknown keys; --print-config masks passwords; on a terminal, log lines never run into the bar.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/testing/eventually.h"
#include "tests/processes.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kTopics = "system-events,vulnerability-events,task-events,relationship-events";

using kingest::testing::slurp;

// `kurrent-ingest ARGS` behind ENV. Its output file starts empty: the suite's tests share a folder,
// and what a test reads there is its own.
class Process : public kingest::testing::Process {
 public:
  Process(const std::string& args, const std::string& out, const std::string& env = "")
      : kingest::testing::Process(args, fresh(out), env) {}

 private:
  static const std::string& fresh(const std::string& out) {
    std::filesystem::remove(out);
    return out;
  }
};

std::string wait_line(const std::string& file, const std::string& prefix, std::chrono::milliseconds timeout) {
  std::string found;
  const bool seen = kingest::testing::eventually(
      [&] {
        std::istringstream in(slurp(file));
        for (std::string line; std::getline(in, line);) {
          if (line.starts_with(prefix)) {
            found = line.substr(prefix.size());
            return true;
          }
        }
        return false;
      },
      timeout);
  return seen ? found : std::string();
}

// "key": number from a JSON report.
double field(const std::string& report, const std::string& key) {
  auto at = report.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::stod(report.substr(at + key.size() + 3));
}

// The value of an unlabelled sample `name` in an exposition; -1 when absent.
double sample(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(name + " ")) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

std::pair<int, std::string> shell(const std::string& cmd) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  while (p != nullptr && std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  int status = p == nullptr ? -1 : ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::pair<int, std::string> promtool_check(const std::string& text, const std::string& dir) {
  std::ofstream(dir + "/check.prom") << text;
  return shell(std::string(KI_PROMTOOL) + " check metrics < " + dir + "/check.prom");
}

class OpsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("ki-ops-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    broker_ = new Process("broker --topics " + kTopics + " --partitions 8 --bootstrap-file " + dir_ + "/bootstrap",
                          dir_ + "/broker.out");
    bootstrap_ = wait_line(dir_ + "/bootstrap", "", 20s);
    store_ = new Process("serve-store --mem-db --listen 127.0.0.1:0 --address-file " + dir_ + "/address",
                         dir_ + "/store.out");
    address_ = wait_line(dir_ + "/address", "", 20s);
    Process gen("generate --brokers " + bootstrap_ + " --events 40000 --seed 5", dir_ + "/generate.out");
    generated_ = gen.wait(120s) == 0;
  }
  static void TearDownTestSuite() {
    delete store_;
    delete broker_;
    std::filesystem::remove_all(dir_);
  }
  void SetUp() override {
    ASSERT_FALSE(bootstrap_.empty()) << slurp(dir_ + "/broker.out");
    ASSERT_FALSE(address_.empty()) << slurp(dir_ + "/store.out");
    ASSERT_TRUE(generated_) << slurp(dir_ + "/generate.out");
  }

  static std::string replay_args(const std::string& group) {
    return "replay --brokers " + bootstrap_ + " --topics " + kTopics + " --group " + group +
           " --kurrent 'kurrentdb://" + address_ + "?tls=false' --dlq-file " + dir_ + "/dlq.ndjson";
  }

  static inline std::string dir_;
  static inline Process* broker_ = nullptr;
  static inline Process* store_ = nullptr;
  static inline std::string bootstrap_;
  static inline std::string address_;
  static inline bool generated_ = false;
};

TEST_F(OpsTest, MetricsMoveDuringAReplayAndEndEqualToTheReportWithNoLag) {
  const std::string textfile = dir_ + "/replay.prom";
  Process p(replay_args("ops-metrics") + " --metrics-listen 127.0.0.1:0 --metrics-textfile " + textfile +
                " --progress-s 1 --report " + dir_ + "/metrics-report.json",
            dir_ + "/metrics.out");
  const std::string url = wait_line(dir_ + "/metrics.out", "metrics: ", 30s);
  ASSERT_TRUE(url.starts_with("http://127.0.0.1:")) << slurp(dir_ + "/metrics.out");
  const std::string base = url.substr(0, url.size() - std::string("/metrics").size());
  httplib::Client client(base);
  client.set_connection_timeout(2s);

  std::vector<double> appended;
  double max_lag = 0;
  std::string mid_run_scrape;
  int textfile_reads = 0;
  int code = -1;
  while ((code = p.wait(0ms)) < 0) {
    if (auto res = client.Get("/metrics"); res && res->status == 200) {
      const double a = sample(res->body, "kurrent_ingest_events_appended_total");
      ASSERT_GE(a, 0) << res->body;
      if (!appended.empty()) {
        ASSERT_GE(a, appended.back()) << "a counter went down";
      }
      appended.push_back(a);
      max_lag = std::max(max_lag, sample(res->body, "kurrent_ingest_consumer_lag_all_partitions"));
      if (a > 0 && a < 40000) mid_run_scrape = res->body;
    }
    // Whole or not there yet: never a prefix of one.
    if (std::string t = slurp(textfile); !t.empty()) {
      ++textfile_reads;
      ASSERT_EQ(t.back(), '\n');
      ASSERT_NE(t.find("\nprocess_virtual_memory_bytes "), std::string::npos) << "textfile read part-way:\n" << t;
    }
    std::this_thread::sleep_for(10ms);  // the sampling interval while the replay runs, not a wait for its end
  }
  ASSERT_EQ(code, 0) << slurp(dir_ + "/metrics.out");
  ASSERT_FALSE(mid_run_scrape.empty()) << "no scrape caught the replay part-way; values seen: " << appended.size();
  EXPECT_GT(max_lag, 0);
  EXPECT_GT(textfile_reads, 10);

  const std::string report = slurp(dir_ + "/metrics-report.json");
  const std::string final_text = slurp(textfile);
  EXPECT_EQ(field(report, "events_appended"), 40000) << report;
  EXPECT_EQ(sample(final_text, "kurrent_ingest_events_appended_total"), field(report, "events_appended"));
  EXPECT_EQ(sample(final_text, "kurrent_ingest_events_read_total"), field(report, "events_read"));
  EXPECT_EQ(sample(final_text, "kurrent_ingest_events_duplicate_total"), field(report, "duplicates"));
  EXPECT_EQ(sample(final_text, "kurrent_ingest_events_dead_lettered_total"), field(report, "dead_lettered"));
  EXPECT_EQ(sample(final_text, "kurrent_ingest_append_duration_seconds_count"), field(report, "appends"));
  EXPECT_EQ(sample(final_text, "kurrent_ingest_batches_in_flight"), 0);
  // Lag falls to 0 once the bounded replay's commits are in.
  EXPECT_EQ(sample(final_text, "kurrent_ingest_consumer_lag_all_partitions"), 0) << final_text;
  EXPECT_EQ(field(report, "lag_events"), 0) << report;
  EXPECT_NE(report.find("\"lag_by_topic\":{\"relationship-events\":0,"), std::string::npos) << report;
  EXPECT_GT(field(report, "process_s"), field(report, "elapsed_s"));

  auto [rc_endpoint, said_endpoint] = promtool_check(mid_run_scrape, dir_);
  EXPECT_EQ(rc_endpoint, 0) << said_endpoint << mid_run_scrape;
  auto [rc_file, said_file] = promtool_check(final_text, dir_);
  EXPECT_EQ(rc_file, 0) << said_file << final_text;
}

TEST_F(OpsTest, AJobFileRunsTheSameReplayAsItsFlags) {
  const std::string flags = "replay --brokers " + bootstrap_ +
                            " --topics system-events --topics vulnerability-events --topics task-events --topics "
                            "relationship-events --sink discard --batch-max-events 1000 -X fetch.wait.max.ms=50 --assign";
  const std::string job = dir_ + "/job.toml";
  std::ofstream(job) << "# a replay as a job file\n"
                     << "brokers = \"" << bootstrap_ << "\"\n"
                     << "topics = [\"system-events\", \"vulnerability-events\", \"task-events\", "
                        "\"relationship-events\"]\n"
                     << "sink = \"discard\"\n"
                     << "batch-max-events = 1000\n"
                     << "kafka-property = [\"fetch.wait.max.ms=50\"]\n"
                     << "assign = true\n";
  // The same effective configuration, whichever way it was given.
  auto [rc1, from_flags] = shell(std::string(KI_BINARY) + " " + flags + " --group ops-job --print-config");
  auto [rc2, from_file] = shell(std::string(KI_BINARY) + " replay --config " + job + " --group ops-job --print-config");
  ASSERT_EQ(rc1, 0) << from_flags;
  ASSERT_EQ(rc2, 0) << from_file;
  EXPECT_EQ(from_flags, from_file);

  // And the same run: fresh groups, every event, nothing else.
  Process a(flags + " --group ops-job-flags --dlq-file " + dir_ + "/a.ndjson --report " + dir_ + "/a.json",
            dir_ + "/a.out");
  ASSERT_EQ(a.wait(120s), 0) << slurp(dir_ + "/a.out");
  Process b("replay --config " + job + " --group ops-job-file --dlq-file " + dir_ + "/b.ndjson --report " + dir_ +
                "/b.json",
            dir_ + "/b.out");
  ASSERT_EQ(b.wait(120s), 0) << slurp(dir_ + "/b.out");
  const std::string ra = slurp(dir_ + "/a.json");
  const std::string rb = slurp(dir_ + "/b.json");
  for (const char* key : {"events_read", "events_appended", "duplicates", "dead_lettered", "streams", "lag_events"}) {
    EXPECT_EQ(field(ra, key), field(rb, key)) << key << "\n" << ra << "\n" << rb;
  }
  EXPECT_EQ(field(rb, "events_read"), 40000);
}

TEST_F(OpsTest, AnUnknownKeyExitsTwoNamingItAndItsLine) {
  const std::string job = dir_ + "/unknown.toml";
  std::ofstream(job) << "brokers = \"" << bootstrap_ << "\"\ntopics = \"system-events\"\nbatch-max-event = 10\n";
  auto [rc, out] = shell(std::string(KI_BINARY) + " replay --config " + job);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find(job + ":3: unknown key 'batch-max-event'"), std::string::npos) << out;
}

TEST_F(OpsTest, TheExampleJobFileIsValid) {
  auto [rc, out] = shell("KURRENT_PASSWORD=p1 KAFKA_PASSWORD=p2 " + std::string(KI_BINARY) + " replay --config " +
                         std::string(KI_SOURCE_DIR) + "/docs/nightly-backfill.toml --print-config");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("assign = true"), std::string::npos) << out;
  EXPECT_NE(out.find("sasl.password=****"), std::string::npos) << out;
}

TEST_F(OpsTest, PrintConfigMasksPasswordsFromTheEnvironmentAndFlags) {
  const std::string job = dir_ + "/secret.toml";
  std::ofstream(job) << "brokers = \"" << bootstrap_ << "\"\ntopics = \"system-events\"\n"
                     << "kurrent = \"kurrentdb://admin:${KI_OPS_TEST_PASSWORD}@db.example:2113?tls=true\"\n";
  auto [rc, out] = shell("KI_OPS_TEST_PASSWORD=hunter2 " + std::string(KI_BINARY) + " replay --config " + job +
                         " -X sasl.password=swordfish --print-config");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("kurrent = \"kurrentdb://admin:****@db.example:2113?tls=true\""), std::string::npos) << out;
  EXPECT_NE(out.find("sasl.password=****"), std::string::npos) << out;
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
  EXPECT_EQ(out.find("swordfish"), std::string::npos) << out;
  // An unset variable is an error that names it.
  auto [rc_unset, said] = shell("env -u KI_OPS_TEST_PASSWORD " + std::string(KI_BINARY) + " replay --config " + job +
                                " --print-config");
  EXPECT_EQ(rc_unset, 2) << said;
  EXPECT_NE(said.find("${KI_OPS_TEST_PASSWORD} is not set"), std::string::npos) << said;
}

// What a terminal shows for `raw`: carriage returns go back to the line's start, ESC[K clears to
// its end, other escape sequences (colours) draw nothing.
std::vector<std::string> render_terminal(const std::string& raw) {
  std::vector<std::string> lines;
  std::string line;
  size_t cursor = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == '\n') {
      lines.push_back(line);
      line.clear();
      cursor = 0;
    } else if (c == '\r') {
      cursor = 0;
    } else if (c == '\033' && i + 1 < raw.size() && raw[i + 1] == '[') {
      size_t j = i + 2;
      while (j < raw.size() && !std::isalpha(static_cast<unsigned char>(raw[j]))) ++j;
      if (j < raw.size() && raw[j] == 'K') line.resize(cursor);
      i = j;
    } else {
      if (cursor < line.size()) {
        line[cursor] = c;
      } else {
        line += c;
      }
      ++cursor;
    }
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

TEST_F(OpsTest, OnATerminalLogLinesNeverRunIntoTheBar) {
  // `script` gives the replay a terminal; without --assign the bar is up for the seconds the group
  // takes to form, and the "assigned" log line arrives while it is drawn.
  const std::string capture = dir_ + "/terminal.txt";
  auto [rc, out] = shell("script -qefc \"" + std::string(KI_BINARY) + " " + replay_args("ops-terminal") +
                         " --sink discard --progress bar\" " + capture + " > /dev/null");
  ASSERT_EQ(rc, 0) << out << slurp(capture);
  const auto lines = render_terminal(slurp(capture));
  const std::regex log_line(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} )");
  int bars = 0;
  int logs_after_bar = 0;
  for (const auto& l : lines) {
    const bool bar = l.find("appended/s") != std::string::npos;
    std::smatch m;
    const bool log = std::regex_search(l, m, log_line);
    if (bar && log) ADD_FAILURE() << "a log line ran into the bar: " << l;
    if (bar) ++bars;
    if (log && bars > 0) ++logs_after_bar;
  }
  EXPECT_GT(bars, 0) << slurp(capture);
  EXPECT_GT(logs_after_bar, 0) << "no log line came while the bar was up, so this proves nothing:\n" << slurp(capture);
}

}  // namespace

namespace {

TEST_F(OpsTest, ServeStoreCountsWhatAReplayWrote) {
  const std::string sdir = dir_ + "/metered";
  std::filesystem::create_directories(sdir);
  Process store("serve-store --db " + sdir + "/events.db --listen 127.0.0.1:0 --address-file " + sdir +
                    "/address --metrics-listen 127.0.0.1:0 --metrics-textfile " + sdir + "/store.prom",
                sdir + "/store.out");
  const std::string address = wait_line(sdir + "/address", "", 20s);
  ASSERT_FALSE(address.empty()) << slurp(sdir + "/store.out");
  const std::string url = wait_line(sdir + "/store.out", "metrics: ", 20s);
  ASSERT_FALSE(url.empty()) << slurp(sdir + "/store.out");
  Process replay("replay --brokers " + bootstrap_ + " --topics " + kTopics + " --group ops-store --assign" +
                     " --kurrent 'kurrentdb://" + address + "?tls=false' --dlq-file " + sdir + "/dlq.ndjson --report " +
                     sdir + "/report.json --progress none",
                 sdir + "/replay.out");
  ASSERT_EQ(replay.wait(120s), 0) << slurp(sdir + "/replay.out");
  const std::string report = slurp(sdir + "/report.json");

  httplib::Client client(url.substr(0, url.size() - std::string("/metrics").size()));
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res && res->status == 200);
  EXPECT_EQ(sample(res->body, "kurrent_ingest_store_events_written_total"), field(report, "events_appended"))
      << res->body;
  // The default append mode (records) carries many stream groups in one request, one store append.
  EXPECT_NE(report.find(R"("append_mode":"records")"), std::string::npos) << report;
  EXPECT_GT(sample(res->body, "kurrent_ingest_store_appends_total"), 0);
  EXPECT_LE(sample(res->body, "kurrent_ingest_store_appends_total"), field(report, "kurrent_appends"));
  EXPECT_GT(sample(res->body, "kurrent_ingest_store_transactions_total"), 0);
  EXPECT_GT(sample(res->body, "kurrent_ingest_store_reads_total"), 0);
  EXPECT_GT(sample(res->body, "kurrent_ingest_store_database_bytes"), 0);
  EXPECT_EQ(sample(res->body, "kurrent_ingest_store_append_duration_seconds_count"),
            sample(res->body, "kurrent_ingest_store_appends_total"));
  auto [rc, said] = promtool_check(res->body, sdir);
  EXPECT_EQ(rc, 0) << said << res->body;
}

}  // namespace

namespace {

TEST_F(OpsTest, AssignIsRefusedWhileTheGroupHasMembers) {
  Process member("run --brokers " + bootstrap_ + " --topics " + kTopics +
                     " --group ops-busy --sink discard --progress none --dlq-file " + dir_ + "/busy.ndjson",
                 dir_ + "/busy.out");
  ASSERT_FALSE(wait_line(dir_ + "/busy.out", "", 30s).empty());
  // The member holds its partitions once "assigned" is logged.
  ASSERT_TRUE(kingest::testing::eventually(
      [&] { return slurp(dir_ + "/busy.out").find("assigned ") != std::string::npos; }, 30s, "the member's assignment"))
      << slurp(dir_ + "/busy.out");
  auto [rc, out] = shell(std::string(KI_BINARY) + " replay --brokers " + bootstrap_ + " --topics " + kTopics +
                         " --group ops-busy --sink discard --assign --progress none --dlq-file " + dir_ +
                         "/busy2.ndjson");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("--assign: the broker refused a commit from outside consumer group ops-busy"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("events: "), std::string::npos) << "nothing is ingested when refused:\n" << out;
}

}  // namespace
