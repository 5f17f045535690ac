// The run report against its documentation: the reports of `demo` and `replay` are read with a
// strict parser (duplicate keys, trailing content and anything but one object are errors) and
// compared with README.md's field table both ways: every field documented for the command (and
// not marked "when …") is present, and every field present is documented for it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/testing/eventually.h"
#include "tests/processes.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using kingest::testing::read_line;
using kingest::testing::slurp;

// ---- A strict JSON reader: one object, scalar or nested values, no key twice in any object. ----

class StrictJson {
 public:
  explicit StrictJson(std::string text) : s_(std::move(text)) {}

  // The top-level object's keys; throws std::runtime_error naming the problem and the byte offset.
  std::set<std::string> top_level_keys() {
    ws();
    std::set<std::string> keys;
    object(&keys);
    ws();
    if (i_ != s_.size()) fail("content after the object");
    return keys;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + " at byte " + std::to_string(i_));
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  void expect(char c) {
    ws();
    if (i_ >= s_.size() || s_[i_] != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      const char c = s_[i_++];
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c == '\\') {
        if (i_ >= s_.size()) fail("unfinished escape");
        const char e = s_[i_++];
        if (e == 'u') {
          if (i_ + 4 > s_.size()) fail("short \\u escape");
          for (int k = 0; k < 4; ++k) {
            if (!std::isxdigit(static_cast<unsigned char>(s_[i_ + size_t(k)]))) fail("bad \\u escape");
          }
          out += s_.substr(i_ - 2, 6);
          i_ += 4;
        } else if (std::string("\"\\/bfnrt").find(e) != std::string::npos) {
          out += e;
        } else {
          fail("bad escape");
        }
      } else {
        out += c;
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  void number() {
    const size_t start = i_;
    if (s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else {
      if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) fail("bad number");
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) fail("bad fraction");
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) fail("bad exponent");
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    if (i_ == start) fail("bad number");
  }
  void literal(const char* word) {
    const std::string w(word);
    if (s_.compare(i_, w.size(), w) != 0) fail("bad literal");
    i_ += w.size();
  }
  void value() {
    ws();
    if (i_ >= s_.size()) fail("missing value");
    switch (s_[i_]) {
      case '{': object(nullptr); break;
      case '[': {
        ++i_;
        ws();
        if (i_ < s_.size() && s_[i_] == ']') {
          ++i_;
          break;
        }
        for (;;) {
          value();
          ws();
          if (i_ < s_.size() && s_[i_] == ',') {
            ++i_;
            continue;
          }
          expect(']');
          break;
        }
        break;
      }
      case '"': string(); break;
      case 't': literal("true"); break;
      case 'f': literal("false"); break;
      case 'n': literal("null"); break;
      default: number();
    }
  }
  void object(std::set<std::string>* out) {
    expect('{');
    std::set<std::string> keys;
    ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
    } else {
      for (;;) {
        ws();
        const std::string k = string();
        if (!keys.insert(k).second) fail("duplicate key \"" + k + "\"");
        expect(':');
        value();
        ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        expect('}');
        break;
      }
    }
    if (out != nullptr) *out = std::move(keys);
  }

  std::string s_;
  size_t i_ = 0;
};

TEST(StrictJson, RefusesDuplicateKeysAndTrailingContent) {
  EXPECT_EQ(StrictJson(R"({"a":1,"b":[1,{"a":2}],"c":{"d":null}})").top_level_keys(),
            (std::set<std::string>{"a", "b", "c"}));
  EXPECT_THROW(StrictJson(R"({"a":1,"a":2})").top_level_keys(), std::runtime_error);
  EXPECT_THROW(StrictJson(R"({"a":{"b":1,"b":1}})").top_level_keys(), std::runtime_error);
  EXPECT_THROW(StrictJson(R"({"a":1} {})").top_level_keys(), std::runtime_error);
  EXPECT_THROW(StrictJson(R"({"a":01})").top_level_keys(), std::runtime_error);
  EXPECT_THROW(StrictJson(R"([1])").top_level_keys(), std::runtime_error);
}

// ---- README.md's field table ------------------------------------------------------------------

struct Documented {
  std::map<std::string, std::set<std::string>> always;  // command -> fields always written
  std::map<std::string, std::set<std::string>> any;     // command -> fields it may write
};

Documented documented_fields() {
  const std::string readme = slurp(std::string(KI_SOURCE_DIR) + "/README.md");
  const size_t section = readme.find("## The run report and exit codes");
  EXPECT_NE(section, std::string::npos);
  const size_t end = readme.find("Exit codes:", section);
  std::istringstream lines(readme.substr(section, end - section));
  Documented d;
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.starts_with("| `")) continue;
    // | `a`, `b` | demo, replay, run; when … | meaning |
    const size_t c1 = line.find(" | ", 2);
    const size_t c2 = line.find(" | ", c1 + 3);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    const std::string names = line.substr(2, c1 - 2);
    std::string by = line.substr(c1 + 3, c2 - c1 - 3);
    const bool conditional = by.find(';') != std::string::npos;
    by = by.substr(0, by.find(';'));
    std::vector<std::string> commands;
    std::istringstream cs(by);
    for (std::string c; std::getline(cs, c, ',');) {
      c.erase(0, c.find_first_not_of(' '));
      c.erase(c.find_last_not_of(' ') + 1);
      commands.push_back(c);
    }
    for (size_t p = names.find('`'); p != std::string::npos; p = names.find('`', names.find('`', p + 1) + 1)) {
      const size_t q = names.find('`', p + 1);
      const std::string field = names.substr(p + 1, q - p - 1);
      for (const auto& c : commands) {
        d.any[c].insert(field);
        if (!conditional) d.always[c].insert(field);
      }
    }
  }
  return d;
}

void check_report(const std::string& command, const std::string& path, const std::set<std::string>& also_expected) {
  const std::string text = slurp(path);
  ASSERT_FALSE(text.empty()) << path;
  std::set<std::string> keys;
  try {
    keys = StrictJson(text).top_level_keys();
  } catch (const std::runtime_error& e) {
    FAIL() << command << " report is not strict JSON: " << e.what() << "\n" << text;
  }
  const Documented d = documented_fields();
  ASSERT_FALSE(d.always.at(command).empty());
  for (const auto& f : d.always.at(command)) EXPECT_TRUE(keys.contains(f)) << command << ": missing " << f << "\n" << text;
  for (const auto& f : also_expected) EXPECT_TRUE(keys.contains(f)) << command << ": missing " << f << "\n" << text;
  for (const auto& k : keys) {
    EXPECT_TRUE(d.any.at(command).contains(k)) << command << ": field " << k << " is not documented for it";
  }
}

// ---- The binary's reports ---------------------------------------------------------------------

int run(const std::string& args, const std::string& out) {
  const std::string cmd = std::string(KI_BINARY) + " " + args + " >> " + out + " 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class Background {
 public:
  Background(const std::string& args, const std::string& out) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string cmd = "exec " + std::string(KI_BINARY) + " " + args + " >> " + out + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      ::_exit(127);
    }
  }
  ~Background() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

 private:
  pid_t pid_ = -1;
};

class ReportSchemaTest : public ::testing::Test {
 protected:
  std::string dir_ = std::filesystem::temp_directory_path() / ("ki-report-schema-" + std::to_string(::getpid()));
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }
};

TEST_F(ReportSchemaTest, DemoReportMatchesTheDocumentation) {
  const std::string out = dir_ + "/demo.out";
  ASSERT_EQ(run("demo --events 2000 --partitions 2 --mem-db --report " + dir_ + "/demo.json --dlq-file " + dir_ +
                    "/dlq.ndjson",
                out),
            0)
      << slurp(out);
  check_report("demo", dir_ + "/demo.json",
               {"kurrent", "kurrent_appends", "kurrent_retries", "kurrent_reconnects", "kurrent_redirects",
                "kurrent_requests", "kurrent_streams_per_request", "verify_s", "kafka_raw_events_per_s"});
}

TEST_F(ReportSchemaTest, ReplayReportMatchesTheDocumentation) {
  Background broker("broker --topics system-events --partitions 2 --bootstrap-file " + dir_ + "/bootstrap",
                    dir_ + "/broker.out");
  const std::string bootstrap = read_line(dir_ + "/bootstrap", 20s);
  ASSERT_FALSE(bootstrap.empty()) << slurp(dir_ + "/broker.out");
  Background store("serve-store --mem-db --listen 127.0.0.1:0 --address-file " + dir_ + "/address",
                   dir_ + "/store.out");
  const std::string address = read_line(dir_ + "/address", 20s);
  ASSERT_FALSE(address.empty()) << slurp(dir_ + "/store.out");
  const std::string out = dir_ + "/replay.out";
  ASSERT_EQ(run("generate --brokers " + bootstrap + " --topics system-events --events 500 --streams 20", out), 0)
      << slurp(out);
  // A password in the connection string must not reach the report.
  ASSERT_EQ(run("replay --brokers " + bootstrap + " --topics system-events --group report-schema --kurrent 'esdb://" +
                    "admin:s3cret@" + address + "?tls=false' --report " + dir_ + "/replay.json --dlq-file " + dir_ +
                    "/dlq.ndjson",
                out),
            0)
      << slurp(out);
  check_report("replay", dir_ + "/replay.json",
               {"kurrent", "kurrent_appends", "kurrent_retries", "kurrent_reconnects", "kurrent_redirects",
                "kurrent_requests", "kurrent_streams_per_request", "first_to_last_s", "events_per_append", "append_latency_p50_ms", "append_latency_p99_ms"});
  const std::string report = slurp(dir_ + "/replay.json");
  EXPECT_EQ(report.find("s3cret"), std::string::npos) << report;
  EXPECT_NE(report.find("\"kurrent\":\"esdb://admin:***@" + address), std::string::npos) << report;
}

}  // namespace
