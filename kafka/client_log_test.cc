#include "kafka/client_log.h"

#include <gtest/gtest.h>

namespace kingest::kafka {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(LogLimiter, WritesOneLinePerFacilityPerPeriodAndCountsTheOthers) {
  LogLimiter limiter(seconds(5));
  const auto t0 = std::chrono::steady_clock::time_point{} + seconds(100);
  auto first = limiter.admit("COMMITFAIL", t0);
  EXPECT_TRUE(first.write);
  EXPECT_EQ(first.left_out, 0u);
  for (int i = 1; i <= 7; ++i) EXPECT_FALSE(limiter.admit("COMMITFAIL", t0 + milliseconds(500 * i)).write) << i;
  // Another facility has its own period.
  EXPECT_TRUE(limiter.admit("FAIL", t0 + seconds(1)).write);
  auto next = limiter.admit("COMMITFAIL", t0 + seconds(5));
  EXPECT_TRUE(next.write);
  EXPECT_EQ(next.left_out, 7u);
  auto after = limiter.admit("COMMITFAIL", t0 + seconds(11));
  EXPECT_TRUE(after.write);
  EXPECT_EQ(after.left_out, 0u) << "the count starts again after each line written";
}

}  // namespace
}  // namespace kingest::kafka
