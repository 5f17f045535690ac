#include "core/uuid.h"

#include <gtest/gtest.h>

namespace kingest {
namespace {

std::string hex(const std::array<uint8_t, 20>& d) {
  static constexpr char k[] = "0123456789abcdef";
  std::string s;
  for (auto b : d) {
    s.push_back(k[b >> 4]);
    s.push_back(k[b & 15]);
  }
  return s;
}

TEST(Sha1, KnownVectors) {
  EXPECT_EQ(hex(sha1("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(hex(sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(hex(sha1(std::string(1000000, 'a'))), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST(Uuid, ParsesAndFormatsCanonicalForm) {
  auto u = Uuid::parse("550E8400-e29b-41d4-a716-446655440000");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->to_string(), "550e8400-e29b-41d4-a716-446655440000");
  EXPECT_EQ(Uuid::parse("{550e8400-e29b-41d4-a716-446655440000}"), u);
}

TEST(Uuid, RejectsMalformedText) {
  EXPECT_FALSE(Uuid::parse(""));
  EXPECT_FALSE(Uuid::parse("550e8400e29b41d4a716446655440000"));
  EXPECT_FALSE(Uuid::parse("550e8400-e29b-41d4-a716-44665544000g"));
  EXPECT_FALSE(Uuid::parse("550e8400-e29b-41d4-a716_446655440000"));
  EXPECT_FALSE(Uuid::parse("evt-1"));
  // A wrong character anywhere, digit or dash, is refused; upper case and braces are read.
  const std::string good = "550e8400-e29b-41d4-a716-446655440000";
  for (size_t i = 0; i < good.size(); ++i) {
    for (char c : {'x', 'G', '-', ' ', '\xc3'}) {
      std::string bad = good;
      if (bad[i] == c) continue;
      bad[i] = c;
      EXPECT_FALSE(Uuid::parse(bad)) << bad;
    }
  }
  EXPECT_EQ(Uuid::parse("550E8400-E29B-41D4-A716-446655440000"), Uuid::parse(good));
  EXPECT_EQ(Uuid::parse("{" + good + "}"), Uuid::parse(good));
}

TEST(Uuid, V5MatchesRfcNamespaceExample) {
  // Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")
  auto dns = *Uuid::parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8");
  EXPECT_EQ(Uuid::v5(dns, "python.org").to_string(), "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

TEST(Uuid, V4HasVersionAndVariantBits) {
  auto a = Uuid::v4(), b = Uuid::v4();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.bytes()[6] >> 4, 4);
  EXPECT_EQ(a.bytes()[8] >> 6, 2);
}

TEST(Uuid, HalvesRoundTrip) {
  auto u = *Uuid::parse("ffeeddcc-bbaa-9988-7766-554433221100");
  EXPECT_EQ(Uuid::from_halves(u.most_significant(), u.least_significant()), u);
  EXPECT_LT(u.most_significant(), 0);
}

TEST(Uuid, EveryCharacterAtEveryDigitIsReadAsAHexDigitOrRefused) {
  const std::string good = "00000000-0000-0000-0000-000000000000";
  for (size_t at = 0; at < good.size(); ++at) {
    if (at == 8 || at == 13 || at == 18 || at == 23) continue;
    const size_t digit = at - (at > 8) - (at > 13) - (at > 18) - (at > 23);  // 0..31
    for (int c = 0; c < 256; ++c) {
      std::string text = good;
      text[at] = char(c);
      int value = -1;
      if (c >= '0' && c <= '9') value = c - '0';
      if (c >= 'a' && c <= 'f') value = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') value = c - 'A' + 10;
      const auto u = Uuid::parse(text);
      ASSERT_EQ(u.has_value(), value >= 0) << "character " << c << " at " << at;
      if (!u) continue;
      Uuid::Bytes b{};
      b[digit / 2] = uint8_t(digit % 2 == 0 ? value << 4 : value);
      EXPECT_EQ(*u, Uuid{b}) << "character " << c << " at " << at;
    }
  }
}

TEST(Uuid, TextOfEveryByteValueReadsBack) {
  // Every byte value at every position: byte k of id j is (j + 17k) mod 256.
  for (int j = 0; j < 256; ++j) {
    Uuid::Bytes b{};
    for (size_t k = 0; k < b.size(); ++k) b[k] = uint8_t((j + 17 * int(k)) % 256);
    const Uuid u{b};
    const std::string text = u.to_string();
    ASSERT_EQ(text.size(), 36u);
    for (size_t at : {8, 13, 18, 23}) EXPECT_EQ(text[at], '-') << text;
    EXPECT_EQ(text.find_first_not_of("0123456789abcdef-"), std::string::npos) << text;
    EXPECT_EQ(Uuid::parse(text), u) << text;
    std::string expected;
    for (size_t k = 0; k < b.size(); ++k) {
      if (k == 4 || k == 6 || k == 8 || k == 10) expected.push_back('-');
      expected.push_back("0123456789abcdef"[b[k] >> 4]);
      expected.push_back("0123456789abcdef"[b[k] & 0xF]);
    }
    EXPECT_EQ(text, expected);
  }
}

}  // namespace
}  // namespace kingest
