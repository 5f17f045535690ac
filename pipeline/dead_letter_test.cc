#include "pipeline/dead_letter.h"

#include <gtest/gtest.h>
#include <simdjson.h>

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
