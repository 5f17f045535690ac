// The strict JSON oracle the codec tests rely on agrees with the grammar.
#include "codecs/testing/json_decode.h"

namespace kingest::codecs::json_testing {
namespace {

TEST(StrictJsonOracle, AgreesWithTheGrammar) {
  for (std::string_view ok : {"{}", "[]", "0", "-0.5e+3", "123456789012345678901234567890", "\"\\u00e9\"",
                              "\"\\ud83d\\ude00\"", "{\"a\" : [ 1 , true , null ] }", " \"\xC3\xA9\" "}) {
    EXPECT_TRUE(is_valid_json(ok)) << ok;
  }
  for (std::string_view bad : {"", "{", "[1,]", "{\"a\":1,}", "01", "1.", "tru", "\"\\ud800\"", "\"\xFF\"",
                               "\"a\nb\"", "[1 2]", "{} {}", "NaN"}) {
    EXPECT_FALSE(is_valid_json(bad)) << bad;
  }
}

}  // namespace
}  // namespace kingest::codecs::json_testing
