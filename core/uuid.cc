#include "core/uuid.h"

#include <array>
#include <cstring>
#include <random>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace kingest {
namespace {

#if !defined(__SSE2__)
// A table, not comparisons: the server parses every record id it is sent.
constexpr std::array<int8_t, 256> kHexValues = [] {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int c = '0'; c <= '9'; ++c) t[size_t(c)] = int8_t(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[size_t(c)] = int8_t(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[size_t(c)] = int8_t(c - 'A' + 10);
  return t;
}();

int hex_value(char c) { return kHexValues[static_cast<uint8_t>(c)]; }
#else
// Sixteen hex digits' values (upper or lower case), 0xFF for a byte that is not one.
__m128i hex_nibbles(__m128i c) {
  // Unsigned "x <= limit" as min(x, limit) == x.
  const auto at_most = [](__m128i x, char limit) { return _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(limit)), x); };
  const __m128i digit = _mm_sub_epi8(c, _mm_set1_epi8('0'));
  const __m128i letter = _mm_sub_epi8(_mm_or_si128(c, _mm_set1_epi8(0x20)), _mm_set1_epi8('a'));
  const __m128i is_digit = at_most(digit, 9);
  const __m128i is_letter = at_most(letter, 5);
  const __m128i value = _mm_or_si128(_mm_and_si128(is_digit, digit),
                                     _mm_and_si128(is_letter, _mm_add_epi8(letter, _mm_set1_epi8(10))));
  // Neither: all ones.
  return _mm_or_si128(value, _mm_andnot_si128(_mm_or_si128(is_digit, is_letter), _mm_set1_epi8(-1)));
}
#endif

uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

void sha1_block(uint32_t h[5], const uint8_t* p) {
  uint32_t w[80];
  for (int i = 0; i < 16; ++i) {
    w[i] = (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) | (uint32_t(p[4 * i + 2]) << 8) |
           uint32_t(p[4 * i + 3]);
  }
  for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; ++i) {
    uint32_t f, k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    uint32_t t = rotl(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

}  // namespace

std::array<uint8_t, 20> sha1(std::string_view data) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  size_t n = data.size();
  size_t full = n / 64;
  for (size_t i = 0; i < full; ++i) sha1_block(h, p + 64 * i);
  uint8_t tail[128] = {};
  size_t rest = n - full * 64;
  std::memcpy(tail, p + full * 64, rest);
  tail[rest] = 0x80;
  size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
  uint64_t bits = uint64_t(n) * 8;
  for (int i = 0; i < 8; ++i) tail[tail_len - 1 - i] = uint8_t(bits >> (8 * i));
  sha1_block(h, tail);
  if (tail_len == 128) sha1_block(h, tail + 64);
  std::array<uint8_t, 20> out{};
  for (int i = 0; i < 5; ++i) {
    out[4 * i] = uint8_t(h[i] >> 24);
    out[4 * i + 1] = uint8_t(h[i] >> 16);
    out[4 * i + 2] = uint8_t(h[i] >> 8);
    out[4 * i + 3] = uint8_t(h[i]);
  }
  return out;
}

std::optional<Uuid> Uuid::parse(std::string_view text) {
  if (text.size() == 38 && text.front() == '{' && text.back() == '}') text = text.substr(1, 36);
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-') return std::nullopt;
  Bytes b{};
#if defined(__SSE2__)
  // The 32 digits side by side (the dashes left out), checked and converted sixteen at a time.
  char digits[32];
  std::memcpy(digits, text.data(), 8);
  std::memcpy(digits + 8, text.data() + 9, 4);
  std::memcpy(digits + 12, text.data() + 14, 4);
  std::memcpy(digits + 16, text.data() + 19, 4);
  std::memcpy(digits + 20, text.data() + 24, 12);
  const __m128i first = hex_nibbles(_mm_loadu_si128(reinterpret_cast<const __m128i*>(digits)));
  const __m128i second = hex_nibbles(_mm_loadu_si128(reinterpret_cast<const __m128i*>(digits + 16)));
  // A digit that is not one is 0xFF; every nibble is at most 0x0F.
  if (_mm_movemask_epi8(_mm_or_si128(first, second)) != 0) return std::nullopt;
  // Two digits per byte: in each 16-bit lane the first (the high nibble) is the low byte.
  const auto pairs = [](__m128i n) {
    return _mm_or_si128(_mm_slli_epi16(_mm_and_si128(n, _mm_set1_epi16(0x00FF)), 4), _mm_srli_epi16(n, 8));
  };
  _mm_storeu_si128(reinterpret_cast<__m128i*>(b.data()), _mm_packus_epi16(pairs(first), pairs(second)));
#else
  // Where each byte's two hex digits start (the dashes skipped).
  static constexpr std::array<uint8_t, 16> kAt{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
  int bad = 0;  // any digit's -1 makes it negative
  for (size_t k = 0; k < 16; ++k) {
    const int hi = hex_value(text[kAt[k]]), lo = hex_value(text[kAt[k] + 1]);
    bad |= hi | lo;
    b[k] = uint8_t((hi << 4) | (lo & 0xF));
  }
  if (bad < 0) return std::nullopt;
#endif
  return Uuid{b};
}

Uuid Uuid::v5(const Uuid& name_space, std::string_view name) {
  std::string buf(reinterpret_cast<const char*>(name_space.bytes_.data()), 16);
  buf.append(name);
  auto digest = sha1(buf);
  Bytes b{};
  std::memcpy(b.data(), digest.data(), 16);
  b[6] = uint8_t((b[6] & 0x0F) | 0x50);
  b[8] = uint8_t((b[8] & 0x3F) | 0x80);
  return Uuid{b};
}

Uuid Uuid::v4() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  Bytes b{};
  uint64_t a = rng(), c = rng();
  std::memcpy(b.data(), &a, 8);
  std::memcpy(b.data() + 8, &c, 8);
  b[6] = uint8_t((b[6] & 0x0F) | 0x40);
  b[8] = uint8_t((b[8] & 0x3F) | 0x80);
  return Uuid{b};
}

Uuid Uuid::from_halves(int64_t most, int64_t least) {
  Bytes b{};
  for (int i = 0; i < 8; ++i) {
    b[i] = uint8_t(uint64_t(most) >> (56 - 8 * i));
    b[8 + i] = uint8_t(uint64_t(least) >> (56 - 8 * i));
  }
  return Uuid{b};
}

int64_t Uuid::most_significant() const {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | bytes_[i];
  return int64_t(v);
}

int64_t Uuid::least_significant() const {
  uint64_t v = 0;
  for (int i = 8; i < 16; ++i) v = (v << 8) | bytes_[i];
  return int64_t(v);
}

std::string Uuid::to_string() const {
  std::string s;
  s.reserve(kTextSize);
  append_to(s);
  return s;
}

std::array<char, Uuid::kTextSize> Uuid::text() const {
  // It runs several times per event on the engine's hot path (ids in the metadata and in the
  // record). The dashes at their fixed places.
  std::array<char, kTextSize> out;
#if defined(__SSE2__)
  // The 32 digits at once: each byte's high and low nibble side by side, then '0' + n, and 'a' - 10
  // + n above nine.
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes_.data()));
  const __m128i low_nibbles = _mm_set1_epi8(0x0F);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), low_nibbles);
  const __m128i lo = _mm_and_si128(v, low_nibbles);
  const auto hex = [](__m128i n) {
    const __m128i above_nine = _mm_cmpgt_epi8(n, _mm_set1_epi8(9));
    return _mm_add_epi8(_mm_add_epi8(n, _mm_set1_epi8('0')), _mm_and_si128(above_nine, _mm_set1_epi8('a' - '0' - 10)));
  };
  char digits[32];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(digits), hex(_mm_unpacklo_epi8(hi, lo)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(digits + 16), hex(_mm_unpackhi_epi8(hi, lo)));
  std::memcpy(out.data(), digits, 8);
  std::memcpy(out.data() + 9, digits + 8, 4);
  std::memcpy(out.data() + 14, digits + 12, 4);
  std::memcpy(out.data() + 19, digits + 16, 4);
  std::memcpy(out.data() + 24, digits + 20, 12);
#else
  // Two hex digits per byte from one table look-up.
  static constexpr auto kPairs = [] {
    constexpr char kHex[] = "0123456789abcdef";
    std::array<std::array<char, 2>, 256> pairs{};
    for (size_t b = 0; b < 256; ++b) pairs[b] = {kHex[b >> 4], kHex[b & 0xF]};
    return pairs;
  }();
  // Where each byte's two digits go: 8-4-4-4-12.
  static constexpr std::array<uint8_t, 16> kAt = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
  for (size_t i = 0; i < 16; ++i) std::memcpy(out.data() + kAt[i], kPairs[bytes_[i]].data(), 2);
#endif
  out[8] = out[13] = out[18] = out[23] = '-';
  return out;
}

}  // namespace kingest
