// libFuzzer target: decode_flatbuffers on arbitrary bytes, at an aligned and at a misaligned
// address (the decoder realigns; both must give the same result). A decoded event must satisfy
// fuzz_check.h's invariants and round trips.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kingest;
  const codecs::DecodeResult aligned = codecs::decode_flatbuffers(std::string_view(reinterpret_cast<const char*>(data), size));
  // The same bytes one past an 8-byte boundary (own allocation, so ASan sees exact bounds).
  std::unique_ptr<char[]> shifted(new char[size + 1]);
  if (size) std::memcpy(shifted.get() + 1, data, size);
  const codecs::DecodeResult misaligned = codecs::decode_flatbuffers(std::string_view(shifted.get() + 1, size));
  FUZZ_CHECK(fuzz::same(aligned, misaligned), "aligned and misaligned decoding disagree");
  fuzz::check_result(aligned);
  return 0;
}
