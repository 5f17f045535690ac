// libFuzzer target: decode_json on arbitrary bytes. Both entry points (in place on a padded
// string, copied from a view) must agree, and agree with the full pass alone (decode_json tries
// the scan first: codecs/json_scan.cc) in both shapes; check_json_object must agree with its
// On-Demand check alone. A decoded event must satisfy fuzz_check.h's invariants and round trips
// (JSON nested shape, protobuf, FlatBuffers).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "codecs/internal/json_decoding.h"
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
  const codecs::DecodeResult full = codecs::json_internal::decode_json_full_pass(input, codecs::JsonShape::kFlat);
  FUZZ_CHECK(fuzz::same(in_place, full), "the scan and the full pass disagree");
  const codecs::DecodeResult nested = codecs::decode_json(input, codecs::JsonShape::kNested);
  const codecs::DecodeResult nested_full =
      codecs::json_internal::decode_json_full_pass(input, codecs::JsonShape::kNested);
  FUZZ_CHECK(fuzz::same(nested, nested_full), "the scan and the full pass disagree (nested shape)");
  FUZZ_CHECK(codecs::check_json_object(input) == codecs::json_internal::check_json_object_full_pass(input),
             "check_json_object: the scan and On-Demand disagree");
  fuzz::check_result(in_place);
  return 0;
}
