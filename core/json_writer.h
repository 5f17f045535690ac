// Minimal JSON text builder for metadata, reports and dead letters (no DOM, appends to a string).
//
//   JsonWriter w;
//   w.begin_object().key("a").value("x").key("n").value(int64_t{1}).end_object();
//   w.str() == R"({"a":"x","n":1})"
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kingest {

// Appends `s` to `out` as a quoted JSON string, escaping as RFC 8259 requires. Invalid UTF-8
// bytes are replaced with U+FFFD so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);
// True when `s` is valid UTF-8, so that a JSON string carries it byte for byte.
bool is_valid_utf8(std::string_view s);
// `s` with every invalid UTF-8 byte replaced by U+FFFD, as append_json_string writes it.
std::string replace_invalid_utf8(std::string_view s);

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view{s}); }
  JsonWriter& value(int64_t n);
  JsonWriter& value(uint64_t n);
  JsonWriter& value(int n) { return value(int64_t{n}); }
  JsonWriter& value(double d);
  JsonWriter& value(bool b);
  JsonWriter& null();
  // Inserts already-valid JSON text as a value.
  JsonWriter& raw(std::string_view json);

  [[nodiscard]] const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void separate();
  JsonWriter& open(char bracket);
  JsonWriter& close(char bracket);
  std::string out_;
  bool need_comma_ = false;
};

}  // namespace kingest
