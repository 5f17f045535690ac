#include "server/internal/records_wire.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "absl/container/inlined_vector.h"
#include "core/json_writer.h"
#include "core/record_properties.h"
#include "proto/kurrentdb/wire.h"

namespace kingest::server::internal {
namespace {

using protowire::kFixed64;
using protowire::kLen;
using protowire::kVarint;
using protowire::Reader;

// Protobuf's default recursion limit: a Value nests a Struct or a list in a Value in ...
constexpr int kMaxDepth = 100;

// True when one of the eight bytes in `w` is below 0x20, '"', '\\' or 0x80 and up: a byte JSON
// escapes or that may be part of invalid UTF-8. (The zero-byte test: exact as a whole, though a byte
// above a true hit may be flagged too.)
inline bool needs_care(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  const uint64_t quote = w ^ (kOnes * '"');
  const uint64_t backslash = w ^ (kOnes * '\\');
  const uint64_t below_space = (w - kOnes * 0x20) & ~w;
  const uint64_t is_quote = (quote - kOnes) & ~quote;
  const uint64_t is_backslash = (backslash - kOnes) & ~backslash;
  return ((below_space | is_quote | is_backslash | w) & kHigh) != 0;
}

#if defined(__SSE2__)
// needs_care for sixteen bytes. A signed compare with 0x20 takes both the control bytes and every
// byte of 0x80 and up (negative as signed bytes).
inline bool needs_care16(const char* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i hit = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
  return _mm_movemask_epi8(hit) != 0;
}
#endif

// Whether some byte of `s` needs escaping or care (needs_care): sixteen bytes at a time where the
// processor has SSE2 (every x86-64), else eight; the last block overlaps the one before it.
bool text_needs_care(std::string_view s) {
  const size_t n = s.size();
  const char* d = s.data();
#if defined(__SSE2__)
  if (n >= 16) {
    for (size_t i = 0; i + 16 < n; i += 16) {
      if (needs_care16(d + i)) return true;
    }
    return needs_care16(d + n - 16);
  }
#endif
  if (n < 8) {
    for (const char ch : s) {
      const auto c = static_cast<uint8_t>(ch);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) return true;
    }
    return false;
  }
  uint64_t w = 0;
  for (size_t i = 0; i + 8 < n; i += 8) {
    std::memcpy(&w, d + i, 8);
    if (needs_care(w)) return true;
  }
  std::memcpy(&w, d + n - 8, 8);
  return needs_care(w);
}

// JSON text written at the end of a string: room is made ahead by resizing the string (in steps of
// at least kStep bytes, so that a record's text grows it once or twice), bytes are stored through a
// pointer, and the string is cut to what was written when the writer ends.
class JsonOut {
 public:
  explicit JsonOut(std::string& s) : s_(s), n_(s.size()) {}
  ~JsonOut() { s_.resize(n_); }
  JsonOut(const JsonOut&) = delete;
  JsonOut& operator=(const JsonOut&) = delete;

  // At least `k` bytes of room at the end of what is written.
  char* room(size_t k) {
    if (s_.size() - n_ < k) [[unlikely]] grow(k);
    return s_.data() + n_;
  }
  // What was written into `room`, up to `end`.
  void commit(const char* end) { n_ = static_cast<size_t>(end - s_.data()); }
  void put(char c) { *room(1) = c; ++n_; }
  void put(std::string_view t) {
    std::memcpy(room(t.size()), t.data(), t.size());
    n_ += t.size();
  }

 private:
  [[gnu::noinline]] void grow(size_t k) { s_.resize(n_ + std::max(k, kStep)); }

  static constexpr size_t kStep = 1024;
  std::string& s_;
  size_t n_;
};

// `prefix` (none when 0), `s` as a JSON string, then `suffix` (none when 0). What property keys,
// ids and most values are (printable ASCII without quotes or backslashes) is stored as it is.
void append_json_text(JsonOut& out, std::string_view s, char prefix = 0, char suffix = 0) {
  if (!text_needs_care(s)) {
    char* p = out.room(s.size() + 4);
    if (prefix != 0) *p++ = prefix;
    *p++ = '"';
    std::memcpy(p, s.data(), s.size());
    p += s.size();
    *p++ = '"';
    if (suffix != 0) *p++ = suffix;
    out.commit(p);
    return;
  }
  thread_local std::string escaped;
  escaped.clear();
  if (prefix != 0) escaped.push_back(prefix);
  append_json_string(escaped, s);
  if (suffix != 0) escaped.push_back(suffix);
  out.put(escaped);
}

absl::Status malformed(std::string_view what) {
  return absl::InvalidArgumentError(std::string("append records: malformed request (") + std::string(what) + ")");
}

absl::Status read_schema(std::string_view bytes, WireRecord* rec) {
  Reader r(bytes);
  while (!r.done()) {
    uint32_t number = 0, type = 0;
    if (!r.tag(&number, &type)) return malformed("schema");
    bool ok = true;
    if (number == 1 && type == kVarint) {
      uint64_t v = 0;
      ok = r.varint(&v);
      rec->schema_format = static_cast<int32_t>(v);  // an enum is an int32 on the wire
    } else if (number == 2 && type == kLen) {
      ok = r.len(&rec->schema_name);
    } else {
      ok = r.skip(type);
    }
    if (!ok) return malformed("schema");
  }
  return absl::OkStatus();
}

absl::Status read_record(std::string_view bytes, WireRecord* rec) {
  rec->message = bytes;
  Reader r(bytes);
  while (!r.done()) {
    uint32_t number = 0, type = 0;
    if (!r.tag(&number, &type)) return malformed("record");
    bool ok = true;
    if (type == kLen && number == 1) {
      ok = r.len(&rec->record_id);
    } else if (type == kLen && number == 3) {
      std::string_view schema;
      ok = r.len(&schema);
      if (ok) {
        if (auto s = read_schema(schema, rec); !s.ok()) return s;
      }
    } else if (type == kLen && number == 4) {
      ok = r.len(&rec->data);
    } else if (type == kLen && number == 5) {
      ok = r.len(&rec->stream);
    } else {
      ok = r.skip(type);  // properties (2) are read when the metadata is written
    }
    if (!ok) return malformed("record");
  }
  if (!is_valid_utf8(rec->stream) || !is_valid_utf8(rec->schema_name) || !is_valid_utf8(rec->record_id)) {
    return absl::InvalidArgumentError("append records: a stream name, record_id or schema.name is not valid UTF-8");
  }
  return absl::OkStatus();
}

absl::Status read_check(std::string_view bytes, WireCheck* check) {
  Reader r(bytes);
  while (!r.done()) {
    uint32_t number = 0, type = 0;
    if (!r.tag(&number, &type)) return malformed("consistency check");
    bool ok = true;
    if (number == 1 && type == kLen) {
      std::string_view state;
      ok = r.len(&state);
      check->has_stream_state = true;
      Reader s(state);
      while (ok && !s.done()) {
        uint32_t n = 0, t = 0;
        if (!s.tag(&n, &t)) {
          ok = false;
        } else if (n == 1 && t == kLen) {
          ok = s.len(&check->stream);
        } else if (n == 2 && t == kVarint) {
          uint64_t v = 0;
          ok = s.varint(&v);
          check->expected_state = protowire::unzigzag(v);
        } else {
          ok = s.skip(t);
        }
      }
    } else {
      ok = r.skip(type);
    }
    if (!ok) return malformed("consistency check");
  }
  if (!is_valid_utf8(check->stream)) {
    return absl::InvalidArgumentError("append records: a consistency check's stream name is not valid UTF-8");
  }
  return absl::OkStatus();
}

// ---- google.protobuf.Value as JSON ----

bool write_value(std::string_view value, int depth, JsonOut& out);

// A map entry of Struct.fields or AppendRecord.properties: key = 1, value = 2 (missing: "" and a
// Value with no kind, which prints as null).
bool read_entry(std::string_view bytes, std::string_view* key, std::string_view* value) {
  Reader r(bytes);
  *key = {};
  *value = {};
  while (!r.done()) {
    uint32_t number = 0, type = 0;
    if (!r.tag(&number, &type)) return false;
    bool ok = true;
    if (number == 1 && type == kLen) {
      ok = r.len(key);
    } else if (number == 2 && type == kLen) {
      ok = r.len(value);  // a second value would be merged into the first: last kind wins below
    } else {
      ok = r.skip(type);
    }
    if (!ok) return false;
  }
  return true;
}

using Entries = absl::InlinedVector<std::pair<std::string_view, std::string_view>, 16>;

// The map entries with field number `field` in `message`, each key once (its last entry, at its
// last place), leaving out the keys in `skip`.
bool map_entries(std::string_view message, uint32_t field, std::initializer_list<std::string_view> skip,
                 Entries* entries) {
  // A bit per key length (modulo 64) already met: a key is looked for among the earlier ones only
  // when one of them has its length, which distinct keys rarely share.
  uint64_t lengths = 0;
  Reader r(message);
  while (!r.done()) {
    uint32_t number = 0, type = 0;
    if (!r.tag(&number, &type)) return false;
    if (number != field || type != kLen) {
      if (!r.skip(type)) return false;
      continue;
    }
    std::string_view entry, key, value;
    if (!r.len(&entry) || !read_entry(entry, &key, &value)) return false;
    bool skipped = false;
    for (auto s : skip) skipped |= s == key;
    if (skipped) continue;
    const uint64_t bit = uint64_t{1} << (key.size() % 64);
    if ((lengths & bit) != 0) {
      for (auto it = entries->begin(); it != entries->end(); ++it) {
        if (it->first == key) {
          entries->erase(it);
          break;
        }
      }
    }
    lengths |= bit;
    entries->emplace_back(key, value);
  }
  return true;
}

bool write_object(std::string_view message, uint32_t field, std::initializer_list<std::string_view> skip, int depth,
                  JsonOut& out, bool close) {
  if (depth > kMaxDepth) return false;
  Entries entries;
  if (!map_entries(message, field, skip, &entries)) return false;
  if (entries.empty()) out.put('{');
  bool first = true;
  for (const auto& [key, value] : entries) {
    append_json_text(out, key, first ? '{' : ',', ':');
    first = false;
    if (!write_value(value, depth + 1, out)) return false;
  }
  if (close) out.put('}');
  return true;
}

bool write_value(std::string_view value, int depth, JsonOut& out) {
  if (depth > kMaxDepth) return false;
  // The oneof `kind`: its last member on the wire.
  uint32_t kind = 0;
  uint64_t scalar = 0;
  std::string_view payload;
  Reader r(value);
  while (!r.done()) {
    uint32_t number = 0, type = 0;
    if (!r.tag(&number, &type)) return false;
    bool ok = true;
    if ((number == 1 || number == 4) && type == kVarint) {  // null_value, bool_value
      ok = r.varint(&scalar);
      kind = number;
    } else if (number == 2 && type == kFixed64) {  // number_value
      ok = r.fixed64(&scalar);
      kind = number;
    } else if (number >= 3 && number <= 6 && number != 4 && type == kLen) {  // string, struct, list
      ok = r.len(&payload);
      kind = number;
    } else {
      ok = r.skip(type);
    }
    if (!ok) return false;
  }
  switch (kind) {
    case 2: {
      double d = 0;
      std::memcpy(&d, &scalar, sizeof d);
      char* p = out.room(::kingest::wire::kMaxJsonNumber);
      char* end = ::kingest::wire::write_json_number(d, p);
      if (end == nullptr) return false;
      out.commit(end);
      return true;
    }
    case 3:
      append_json_text(out, payload);
      return true;
    case 4:
      out.put(scalar != 0 ? "true" : "false");
      return true;
    case 5:
      return write_object(payload, 1, {}, depth + 1, out, true);
    case 6: {
      out.put('[');
      Reader items(payload);
      bool first = true;
      while (!items.done()) {
        uint32_t number = 0, type = 0;
        if (!items.tag(&number, &type)) return false;
        if (number != 1 || type != kLen) {
          if (!items.skip(type)) return false;
          continue;
        }
        std::string_view item;
        if (!items.len(&item)) return false;
        if (!first) out.put(',');
        first = false;
        if (!write_value(item, depth + 1, out)) return false;
      }
      out.put(']');
      return true;
    }
    default:  // null, or no kind set (protobuf's JSON mapping prints null too)
      out.put("null");
      return true;
  }
}

}  // namespace

absl::Status read_append_records(std::string_view request, std::vector<WireRecord>* records,
                                 std::vector<WireCheck>* checks) {
  records->clear();
  checks->clear();
  Reader r(request);
  while (!r.done()) {
    uint32_t number = 0, type = 0;
    if (!r.tag(&number, &type)) return malformed("request");
    std::string_view message;
    if ((number == 1 || number == 2) && type == kLen) {
      if (!r.len(&message)) return malformed("request");
      if (number == 1) {
        if (auto s = read_record(message, &records->emplace_back()); !s.ok()) return s;
      } else {
        if (auto s = read_check(message, &checks->emplace_back()); !s.ok()) return s;
      }
    } else if (!r.skip(type)) {
      return malformed("request");
    }
  }
  return absl::OkStatus();
}

absl::Status append_properties_json(const WireRecord& record, std::string_view schema_format_name, std::string* out) {
  JsonOut json(*out);
  if (!write_object(record.message, 2, {"$schema.format", "$schema.name"}, 0, json, false)) {
    return absl::InvalidArgumentError("record properties cannot be written as JSON");
  }
  // The object is open: after its '{' alone when it has no entries, else after its last value.
  const bool empty = *(json.room(0) - 1) == '{';
  json.put(empty ? std::string_view(R"("$schema.format":)") : std::string_view(R"(,"$schema.format":)"));
  append_json_text(json, schema_format_name);
  json.put(R"(,"$schema.name":)");
  append_json_text(json, record.schema_name, 0, '}');
  return absl::OkStatus();
}

}  // namespace kingest::server::internal
