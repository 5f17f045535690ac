// The stream browser in a real browser, and `audit` after an event's id changed in the store. Every
// part is a separate process, as users run them: the embedded Kafka (`broker`), `serve-store --db
// FILE --http 127.0.0.1:0`, `generate` and `replay`; headless Chromium loads the stream list, follows
// its first link to a stream's page, and loads the statistics; the rendered DOM is checked and a
// screenshot of each page is kept in the build tree (KI_ARTIFACT_DIR). Then the store is stopped, an
// event's id is changed in its SQLite file, and `audit` must exit 4 naming the stream and revision,
// reading $all and reading stream by stream.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "core/testing/eventually.h"
#include "tests/processes.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kEvents = 400;  // 20 streams of 20 events
const std::string kTopics = "system-events,vulnerability-events,task-events,relationship-events";

using kingest::testing::count;
using kingest::testing::Process;
using kingest::testing::read_line;
using kingest::testing::ShellProcess;
using kingest::testing::slurp;

class StreamBrowserTest : public ::testing::Test {
 protected:
  std::string dir_ = std::filesystem::temp_directory_path() / ("ki-browser-" + std::to_string(::getpid()));
  std::string artifacts_ = KI_ARTIFACT_DIR;

  void SetUp() override {
    std::filesystem::create_directories(dir_);
    std::filesystem::create_directories(artifacts_);
    broker_ = std::make_unique<Process>("broker --partitions 2 --bootstrap-file " + dir_ + "/bootstrap",
                                        dir_ + "/broker.out");
    bootstrap_ = read_line(dir_ + "/bootstrap", 20s);
    ASSERT_FALSE(bootstrap_.empty()) << slurp(dir_ + "/broker.out");
    start_store();
  }
  void TearDown() override {
    store_.reset();
    broker_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  void start_store() {
    std::filesystem::remove(dir_ + "/address");
    std::filesystem::remove(dir_ + "/http");
    store_ = std::make_unique<Process>("serve-store --db " + dir_ + "/events.db --listen 127.0.0.1:0 --address-file " +
                                           dir_ + "/address --http 127.0.0.1:0 --http-address-file " + dir_ + "/http",
                                       dir_ + "/store.out");
    address_ = read_line(dir_ + "/address", 20s);
    http_ = read_line(dir_ + "/http", 20s);
    ASSERT_FALSE(address_.empty() || http_.empty()) << slurp(dir_ + "/store.out");
  }

  [[nodiscard]] std::string url() const { return "kurrentdb://" + address_ + "?tls=false"; }

  // `kurrent-ingest ARGS` to its end: the exit code; the output goes to OUT (appended).
  int run(const std::string& args, const std::string& out) {
    Process p(args, out);
    return p.wait(120s);
  }

  // Chromium's rendered DOM of `page` (after scripts, if there were any), and its screenshot.
  std::string browse(const std::string& page, const std::string& shot) {
    const std::string chrome = std::string(KI_CHROMIUM) + " --headless --no-sandbox --disable-gpu --no-first-run " +
                               "--user-data-dir=" + dir_ + "/chromium --window-size=1400,900 ";
    const std::string target = "http://" + http_ + page;
    std::string dom = dir_ + "/dom.html";
    std::filesystem::remove(dom);
    ShellProcess dump("exec " + chrome + "--dump-dom '" + target + "' > " + dom + " 2>/dev/null; true", "/dev/null");
    EXPECT_EQ(dump.wait(90s), 0) << "chromium --dump-dom " << target;
    std::string png = artifacts_ + "/" + shot;
    std::filesystem::remove(png);
    ShellProcess snap("exec " + chrome + "--screenshot=" + png + " '" + target + "'", dir_ + "/chromium.out");
    EXPECT_EQ(snap.wait(90s), 0) << slurp(dir_ + "/chromium.out");
    EXPECT_GT(std::filesystem::exists(png) ? std::filesystem::file_size(png) : 0, 10000u) << png;
    return slurp(dom);
  }

  std::string bootstrap_;
  std::string address_;
  std::string http_;
  std::unique_ptr<Process> broker_;
  std::unique_ptr<Process> store_;
};

TEST_F(StreamBrowserTest, ChromiumShowsStreamsEventsAndStatsAndAuditSeesAChangedId) {
  const std::string out = dir_ + "/commands.out";
  ASSERT_EQ(run("generate --brokers " + bootstrap_ + " --events " + std::to_string(kEvents) + " --seed 4", out), 0)
      << slurp(out);
  ASSERT_EQ(run("replay --brokers " + bootstrap_ + " --topics " + kTopics + " --kurrent " + url(), out), 0) << slurp(out);
  // The store's port changes when it restarts below.
  auto audit = [&] { return "audit --brokers " + bootstrap_ + " --topics " + kTopics + " --kurrent " + url(); };
  ASSERT_EQ(run(audit(), out), 0) << slurp(out);

  // The stream list: every stream with its 20 events.
  std::string list = browse("/", "browser-streams.png");
  ASSERT_NE(list.find("<table id=\"streams\">"), std::string::npos) << list;
  EXPECT_EQ(count(list, "<tr class=\"stream\">"), size_t(kEvents / 20)) << list;
  EXPECT_EQ(count(list, "<td class=\"num events\">20</td>"), size_t(kEvents / 20)) << list;
  EXPECT_NE(list.find("20 stream(s)"), std::string::npos);

  // Follow the first stream's link, as a user would.
  std::smatch link;
  ASSERT_TRUE(std::regex_search(list, link, std::regex("<td class=\"name\"><a href=\"(/streams/[^\"]+)\">([^<]+)</a>")))
      << list;
  const std::string stream = link[2];
  std::string page = browse(link[1], "browser-stream.png");
  EXPECT_NE(page.find("<h1 id=\"stream-name\">" + stream + "</h1>"), std::string::npos) << page;
  EXPECT_EQ(count(page, "<tr class=\"event\""), 20u) << page;
  EXPECT_NE(page.find("id=\"rev-0\""), std::string::npos);
  EXPECT_NE(page.find("id=\"rev-19\""), std::string::npos);
  EXPECT_LT(page.find("id=\"rev-19\""), page.find("id=\"rev-0\"")) << "newest first";
  EXPECT_EQ(count(page, "<pre class=\"data\">{\n  \""), 20u) << "pretty JSON data";
  EXPECT_NE(page.find("\"aggregateVersion\": 1"), std::string::npos) << "pretty metadata";
  // Each event after the first names its predecessor as causation: a link to that event.
  EXPECT_GE(count(page, "class=\"link-causationId\" href=\"/events/"), 19u) << page;

  std::string stats = browse("/stats", "browser-stats.png");
  EXPECT_NE(stats.find("<dd id=\"stat-events\">" + std::to_string(kEvents) + "</dd>"), std::string::npos) << stats;
  EXPECT_NE(stats.find("<dd id=\"stat-streams\">" + std::to_string(kEvents / 20) + "</dd>"), std::string::npos);
  EXPECT_NE(stats.find("MiB</dd>"), std::string::npos);

  // An event's id changed behind the store's back: audit names the stream and the revision.
  ASSERT_EQ(store_->kill(SIGTERM), 0) << slurp(dir_ + "/store.out");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/events.db").c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db,
                                 "UPDATE events SET event_id = randomblob(16) WHERE revision = 7 AND stream_id = "
                                 "(SELECT id FROM streams WHERE name = ?)",
                                 -1, &st, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_bind_text(st, 1, stream.c_str(), -1, SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE) << sqlite3_errmsg(db);
    EXPECT_EQ(sqlite3_changes(db), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  start_store();
  const std::string audit_out = dir_ + "/audit.out";
  // From $all (what auto picks for a store that holds just the replay) and stream by stream.
  for (const std::string how : {"auto", "all", "streams"}) {
    ASSERT_EQ(run(audit() + " --store-read " + how, audit_out), 4) << slurp(audit_out);
    EXPECT_NE(slurp(audit_out).find("mismatched: stream " + stream + " revision 7"), std::string::npos)
        << how << ": " << slurp(audit_out);
    EXPECT_NE(slurp(audit_out).find("mismatched: 1,"), std::string::npos) << how << ": " << slurp(audit_out);
    EXPECT_NE(slurp(audit_out).find(how == "streams" ? "(stream by stream)" : "($all)"), std::string::npos)
        << how << ": " << slurp(audit_out);
  }
}

}  // namespace
