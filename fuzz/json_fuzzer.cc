// libFuzzer target: decode_json on arbitrary bytes. Both entry points (in place on a padded
// string, copied from a view) must agree; a decoded event must satisfy fuzz_check.h's invariants
// and round trips (JSON nested shape, protobuf, FlatBuffers).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kingest;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string padded;
  padded.reserve(size + kValuePadding);
  padded.assign(input);
  const codecs::DecodeResult in_place = codecs::decode(codecs::Codec::kJson, padded);
  const codecs::DecodeResult copied = codecs::decode_json(input);
  FUZZ_CHECK(fuzz::same(in_place, copied), "in-place and copied decoding disagree");
  fuzz::check_result(in_place);
  return 0;
}
