// Where plain JSON string text ends, sixteen bytes at a time: the scanners that split JSON text
// without a parser (the JSON codec's scan, the records encoder's metadata) look for the first
// quote, backslash or control character this way.
#pragma once

#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>

namespace kingest {

// Bit i is set when byte i of the sixteen at `p` is a quote, a backslash or a control character
// (below 0x20). Reads exactly sixteen bytes.
inline uint32_t json_string_stops(const char* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
  const __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
  const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);  // v <= 0x1f
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)));
}

}  // namespace kingest
#endif
