#include "core/short_string.h"

#include <gtest/gtest.h>

#include <cstring>
#include <sstream>
#include <string>
#include <utility>

namespace kingest {
namespace {

// A text of `n` bytes whose bytes differ, so that a shifted or truncated copy shows.
std::string text(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('a' + i % 26));
  return s;
}

TEST(ShortString, KeepsTextsOfEveryLengthAroundThePlaceItHas) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{36}, ShortString::kInPlace - 1,
                   ShortString::kInPlace, ShortString::kInPlace + 1, size_t{1000}}) {
    const std::string want = text(n);
    ShortString s = want;
    EXPECT_EQ(s.size(), n);
    EXPECT_EQ(s.empty(), n == 0);
    EXPECT_EQ(s.view(), want) << n;
    EXPECT_EQ(s.str(), want) << n;
    EXPECT_EQ(std::string(s), want) << n;
    EXPECT_STREQ(s.c_str(), want.c_str()) << n;  // NUL-terminated, in place or not
  }
}

// A wider one (the stream table's names): texts up to its size stay inside the object.
TEST(ShortString, AWiderOneKeepsItsTextsInPlaceUpToItsSize) {
  using Wide = BasicShortString<55>;
  static_assert(sizeof(Wide) == 64);
  static_assert(sizeof(ShortString) == 48);
  for (size_t n : {size_t{0}, size_t{40}, size_t{55}, size_t{56}, size_t{300}}) {
    const std::string want = text(n);
    Wide s = want;
    EXPECT_EQ(s.view(), want) << n;
    EXPECT_STREQ(s.c_str(), want.c_str()) << n;
    const auto* object = reinterpret_cast<const char*>(&s);
    const bool in_place = s.data() >= object && s.data() < object + sizeof s;
    EXPECT_EQ(in_place, n <= 55) << n;
    Wide moved = std::move(s);
    EXPECT_EQ(moved.view(), want) << n;
  }
}

TEST(ShortString, CopiesAndMovesKeepTheTextAndLeaveTheSourceUsable) {
  for (size_t n : {size_t{20}, size_t{200}}) {
    const std::string want = text(n);
    ShortString a = want;
    ShortString b = a;  // copy
    EXPECT_EQ(b, want);
    EXPECT_EQ(a, want);
    ShortString c = std::move(a);
    EXPECT_EQ(c, want);
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): a moved-from ShortString is empty
    EXPECT_STREQ(a.c_str(), "");
    a = "again";
    EXPECT_EQ(a, "again");
    ShortString d;
    d = std::move(c);
    EXPECT_EQ(d, want);
    d = b;  // copy-assign over a heap text or an in-place one
    EXPECT_EQ(d, want);
    const ShortString& same = d;
    d = same;  // self-assignment keeps the text
    EXPECT_EQ(d, want);
  }
}

TEST(ShortString, GrowsFromInPlaceToTheHeapAndShrinksBackInTheSameBuffer) {
  ShortString s;
  std::string want;
  for (int i = 0; i < 300; ++i) {
    const char c = static_cast<char>('A' + i % 26);
    s.push_back(c);
    want.push_back(c);
    ASSERT_EQ(s.view(), want) << i;
  }
  s += "tail";
  want += "tail";
  EXPECT_EQ(s, want);
  s = "short";
  EXPECT_EQ(s, "short");
  s.clear();
  EXPECT_TRUE(s.empty());
  EXPECT_STREQ(s.c_str(), "");
  s.append("x").append(std::string(60, 'y'));
  EXPECT_EQ(s, "x" + std::string(60, 'y'));
}

TEST(ShortString, AppendingItsOwnTextWorksAcrossAReallocation) {
  ShortString s = text(40);
  s.append(s.view());  // 80 bytes: moves to the heap while reading its own in-place bytes
  EXPECT_EQ(s, text(40) + text(40));
  s.append(s.view());  // 160: a heap reallocation while reading the old heap buffer
  EXPECT_EQ(s, text(40) + text(40) + text(40) + text(40));
  s.assign(s.view().substr(3, 10));  // a part of itself
  EXPECT_EQ(s, text(40).substr(3, 10));
}

TEST(ShortString, ComparesConcatenatesAndPrintsAsText) {
  const ShortString a = "alpha";
  const ShortString b = "beta";
  EXPECT_EQ(a, std::string("alpha"));
  EXPECT_EQ(a, std::string_view("alpha"));
  EXPECT_NE(a, b);
  EXPECT_LT(a, b);
  EXPECT_EQ(std::string("x-") + a, "x-alpha");
  EXPECT_EQ(a + std::string_view("-y"), "alpha-y");
  std::ostringstream os;
  os << a;
  EXPECT_EQ(os.str(), "alpha");
  std::string assigned;
  assigned = a;  // std::string takes it as a string view
  EXPECT_EQ(assigned, "alpha");
}

}  // namespace
}  // namespace kingest
