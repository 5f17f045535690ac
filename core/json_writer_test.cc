#include "core/json_writer.h"

#include <gtest/gtest.h>

namespace kingest {
namespace {

TEST(JsonWriter, BuildsNestedValues) {
  JsonWriter w;
  w.begin_object().key("a").value("x").key("n").value(int64_t{-3}).key("l").begin_array().value(true).null().end_array();
  w.key("o").raw(R"({"k":1})").end_object();
  EXPECT_EQ(w.str(), R"({"a":"x","n":-3,"l":[true,null],"o":{"k":1}})");
}

TEST(JsonWriter, EscapesControlAndQuoteCharacters) {
  std::string out;
  append_json_string(out, std::string("a\"b\\c\n\x01", 7));
  EXPECT_EQ(out, R"("a\"b\\c\n\u0001")");
}

TEST(JsonWriter, KeepsValidUtf8AndReplacesInvalidBytes) {
  std::string out;
  append_json_string(out, "日本\xF0\x9F\x98\x80");
  EXPECT_EQ(out, "\"日本\xF0\x9F\x98\x80\"");
  out.clear();
  append_json_string(out, "a\xFF" "b\xC3");
  EXPECT_EQ(out, "\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD\"");
}

TEST(JsonWriter, TellsValidUtf8AtEveryPosition) {
  // An invalid byte, a truncated sequence and a valid one at every offset of a text longer than
  // the eight-byte steps that skip ASCII.
  for (size_t at = 0; at < 20; ++at) {
    std::string text(20, 'a');
    EXPECT_TRUE(is_valid_utf8(text.substr(0, at)));
    EXPECT_FALSE(is_valid_utf8(std::string(text).insert(at, "\xFF"))) << at;
    EXPECT_FALSE(is_valid_utf8(text.substr(0, at) + "\xC3")) << at;
    EXPECT_TRUE(is_valid_utf8(std::string(text).insert(at, "\xC3\xA9"))) << at;
    EXPECT_FALSE(is_valid_utf8(std::string(text).insert(at, "\xED\xA0\x80"))) << at << ": a surrogate";
  }
}

}  // namespace
}  // namespace kingest
