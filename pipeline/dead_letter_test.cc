#include "pipeline/dead_letter.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <signal.h>
#include <sys/resource.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace kingest::pipeline {
namespace {

TEST(Base64, EncodesAllPaddingCases) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode(std::string("\xff\x00\x10", 3)), "/wAQ");
}

TEST(NdjsonDeadLetterFile, AppendsOneParsableLinePerLetterWithTheOriginalBytes) {
  auto dir = std::filesystem::temp_directory_path() / ("ki-dlq-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "dlq.ndjson").string();
  std::filesystem::remove(path);
  {
    auto f = NdjsonDeadLetterFile::open(path).value();
    DeadLetter d{reason::kDecodeError, "aggregateId: missing", "task-events", 2, 17, 1700000000000, "k",
                 std::string("{\"x\":\xff", 6), ""};
    ASSERT_TRUE(f->write({d, d}).ok());
  }
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  simdjson::dom::parser p;
  while (std::getline(in, line)) {
    ++lines;
    auto doc = p.parse(line);
    ASSERT_FALSE(doc.error()) << line;
    EXPECT_EQ(std::string_view(doc["reason"]), "decode-error");
    EXPECT_EQ(std::string_view(doc["topic"]), "task-events");
    EXPECT_EQ(int64_t(doc["partition"]), 2);
    EXPECT_EQ(int64_t(doc["offset"]), 17);
    EXPECT_EQ(std::string_view(doc["value_base64"]), base64_encode(std::string("{\"x\":\xff", 6)));
  }
  EXPECT_EQ(lines, 2);
  std::filesystem::remove_all(dir);
}

TEST(NdjsonDeadLetterFile, OpenFailureNamesThePath) {
  auto f = NdjsonDeadLetterFile::open("/nonexistent-dir/x.ndjson");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("/nonexistent-dir/x.ndjson"), std::string::npos);
}

std::string temp_file(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("ki-dlq-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / name).string();
  std::filesystem::remove(path);
  return path;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string base64_decode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    acc = acc << 6 | uint32_t(std::strchr(k, c) - k);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xff));
    }
  }
  return out;
}

TEST(NdjsonDeadLetterFile, TheOriginalBytesAreRecoverableExactlyAndANullKeyStaysNull) {
  const auto path = temp_file("lossless.ndjson");
  const std::string protobuf("\x0a\x03\x61\x62\x63\x10\xb3\x01\x1a\x00", 10);  // not UTF-8
  constexpr char kWithNul[] = "{\"name\":\"caf\xc3\xa9\",\"nul\":\"\x00\x01\"}";
  const std::string text = std::string(kWithNul, sizeof kWithNul - 1) + std::string("\n\t\"\\", 4);
  {
    auto f = NdjsonDeadLetterFile::open(path).value();
    DeadLetter binary{reason::kDecodeError, "protobuf", "t", 0, 1, -1, std::string("\xfe\xff", 2), protobuf, ""};
    binary.content_type = "application/x-protobuf";
    DeadLetter utf8{reason::kDecodeError, "json", "t", 0, 2, -1, "", text, ""};
    utf8.key_null = true;
    DeadLetter empty_key{reason::kDecodeError, "json", "t", 0, 3, -1, "", "{}", ""};
    ASSERT_TRUE(f->write({binary, utf8, empty_key}).ok());
  }
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 3u);
  simdjson::dom::parser p;
  simdjson::dom::element doc = p.parse(lines[0]);
  EXPECT_TRUE(doc["value"].error()) << "no lossy text beside the base64: " << lines[0];
  EXPECT_EQ(base64_decode(std::string_view(doc["value_base64"])), protobuf);
  EXPECT_EQ(base64_decode(std::string_view(doc["key_base64"])), std::string("\xfe\xff", 2));
  EXPECT_EQ(std::string_view(doc["content_type"]), "application/x-protobuf");
  doc = p.parse(lines[1]);
  EXPECT_EQ(std::string_view(doc["value"]), text) << "valid UTF-8 is carried byte for byte";
  EXPECT_TRUE(doc["value_base64"].error()) << lines[1];
  EXPECT_TRUE(doc["key"].is_null()) << lines[1];
  doc = p.parse(lines[2]);
  EXPECT_EQ(std::string_view(doc["key"]), "") << "an empty key stays an empty string";
  std::filesystem::remove(path);
  std::error_code ignored;
  std::filesystem::remove(std::filesystem::path(path).parent_path(), ignored);  // when empty
}

TEST(NdjsonDeadLetterFile, APartialLastLineLeftByACrashIsCutOffAtOpen) {
  const auto path = temp_file("torn.ndjson");
  DeadLetter d{reason::kDecodeError, "x", "t", 0, 7, -1, "k", "{\"a\":1}", ""};
  const std::string complete = dead_letter_to_json(d) + "\n";
  {
    std::ofstream out(path, std::ios::binary);
    out << complete << complete.substr(0, 25);  // the second record torn mid-way
  }
  {
    auto f = NdjsonDeadLetterFile::open(path).value();
    EXPECT_EQ(f->repaired_bytes(), 25u);
    ASSERT_TRUE(f->write({d}).ok());
  }
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  simdjson::dom::parser p;
  for (const auto& line : lines) EXPECT_FALSE(p.parse(line).error()) << line;

  // A file that is one partial line becomes empty; a file of complete lines is left alone.
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << complete.substr(0, 10);
  }
  EXPECT_EQ(NdjsonDeadLetterFile::open(path).value()->repaired_bytes(), 10u);
  EXPECT_EQ(std::filesystem::file_size(path), 0u);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << complete << complete;
  }
  EXPECT_EQ(NdjsonDeadLetterFile::open(path).value()->repaired_bytes(), 0u);
  EXPECT_EQ(std::filesystem::file_size(path), 2 * complete.size());
  std::filesystem::remove(path);
  std::error_code ignored;
  std::filesystem::remove(std::filesystem::path(path).parent_path(), ignored);  // when empty
}

TEST(NdjsonDeadLetterFile, AWriteThatRunsOutOfSpaceLeavesOnlyCompleteLines) {
  // The file-size limit makes the kernel write part of the record and then refuse the rest (EFBIG),
  // the way a full disk does.
  const auto path = temp_file("full.ndjson");
  DeadLetter small{reason::kDecodeError, "x", "t", 0, 1, -1, "k", "{\"a\":1}", ""};
  DeadLetter large{reason::kDecodeError, "x", "t", 0, 2, -1, "k", std::string(20000, 'x'), ""};
  auto f = NdjsonDeadLetterFile::open(path).value();
  ASSERT_TRUE(f->write({small}).ok());
  // Another writer of the same file (a second member of the group) appends after it: cutting back
  // must never reach into its line.
  auto other = NdjsonDeadLetterFile::open(path).value();
  ASSERT_TRUE(other->write({small}).ok());
  const auto before = std::filesystem::file_size(path);
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGXFSZ, &ignore, &old);
  rlimit saved{};
  getrlimit(RLIMIT_FSIZE, &saved);
  rlimit limited = saved;
  limited.rlim_cur = before + 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  auto s = f->write({small, large});
  setrlimit(RLIMIT_FSIZE, &saved);
  sigaction(SIGXFSZ, &old, nullptr);
  ASSERT_FALSE(s.ok()) << "the record did not fit";
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
  EXPECT_EQ(std::filesystem::file_size(path), before) << "cut back to the last complete line";
  ASSERT_TRUE(f->write({small}).ok()) << "space again: the next record starts on a line of its own";
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 3u);
  simdjson::dom::parser p;
  for (const auto& line : lines) EXPECT_FALSE(p.parse(line).error()) << line;
  std::filesystem::remove(path);
  std::error_code ignored;
  std::filesystem::remove(std::filesystem::path(path).parent_path(), ignored);  // when empty
}

TEST(TeeDeadLetters, WritesToEverySinkAndStopsAtTheFirstFailure) {
  struct Recorder final : DeadLetterSink {
    explicit Recorder(bool fail) : fail(fail) {}
    absl::Status write(const std::vector<DeadLetter>& l) override {
      seen += l.size();
      return fail ? absl::UnavailableError("disk full") : absl::OkStatus();
    }
    std::string describe() const override { return "recorder"; }
    bool fail;
    size_t seen = 0;
  };
  Recorder ok1(false), bad(true), ok2(false);
  TeeDeadLetters both({&ok1, &ok2});
  DeadLetter d{reason::kDecodeError, "x", "t", 0, 0, -1, "", "v", ""};
  EXPECT_TRUE(both.write({d, d}).ok());
  EXPECT_EQ(ok1.seen, 2u);
  EXPECT_EQ(ok2.seen, 2u);
  TeeDeadLetters failing({&bad, &ok1});
  EXPECT_FALSE(failing.write({d}).ok());
  EXPECT_EQ(ok1.seen, 2u) << "nothing after a failed sink";
  EXPECT_EQ(both.describe(), "recorder and recorder");
}

}  // namespace
}  // namespace kingest::pipeline
