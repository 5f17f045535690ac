// EventData::properties's encoding: an AppendRecord's properties (KurrentDB's v2 AppendRecords),
// written in protobuf's wire format from values, with the few wire-format helpers that the records
// encoder (proto/kurrentdb/records_wire.h) shares, and the reader of that format that the client's
// answer reader and serve-store's request reader share (`protowire::Reader`). No protobuf library:
// plain bytes.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace kingest {

namespace protowire {

// Wire types, and a tag of a field number under 16 (one byte).
inline constexpr uint8_t kVarint = 0;
inline constexpr uint8_t kFixed64 = 1;
inline constexpr uint8_t kLen = 2;
inline constexpr uint8_t kFixed32 = 5;
constexpr uint8_t tag(uint32_t field, uint8_t type) { return uint8_t((field << 3) | type); }

inline size_t varint_size(uint64_t v) { return v < 0x80 ? 1 : size_t(std::bit_width(v) + 6) / 7; }
// A length-delimited field: tag, length, body.
inline size_t len_field(size_t body) { return 1 + varint_size(body) + body; }

// Writes into room made beforehand: the sizes are known first (protobuf puts each length before
// its body), so every byte is stored without a capacity check.
struct Out {
  char* p;
  void push_back(char c) { *p++ = c; }
  void append(const char* s, size_t n) {
    std::memcpy(p, s, n);
    p += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
};

inline void put_varint(Out& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}
inline void put_len(Out& out, uint8_t t, size_t body) {
  out.push_back(char(t));
  put_varint(out, body);
}
inline void put_bytes(Out& out, uint8_t t, std::string_view bytes) {
  put_len(out, t, bytes.size());
  out.append(bytes);
}
// A double as fixed64, little-endian.
inline void put_double(Out& out, uint8_t t, double d) {
  out.push_back(char(t));
  const uint64_t bits = std::bit_cast<uint64_t>(d);
  char le[8];
  for (int k = 0; k < 8; ++k) le[k] = char(uint8_t(bits >> (8 * k)));
  out.append(le, 8);
}

// Reads protobuf's wire format from the bytes it views: tags, varints, fixed-size and
// length-delimited fields (as views into the bytes). Each call is false at a truncated or
// malformed field, and the reader is then not to be used further.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  [[nodiscard]] bool done() const { return p_ == end_; }

  bool varint(uint64_t* out) {
    // One byte: nearly every tag and length of the messages read this way.
    if (p_ != end_ && static_cast<uint8_t>(*p_) < 0x80) {
      *out = static_cast<uint8_t>(*p_++);
      return true;
    }
    return long_varint(out);
  }

  // The next field's number and wire type; false at a malformed tag.
  bool tag(uint32_t* number, uint32_t* type) {
    uint64_t t = 0;
    if (!varint(&t) || t > UINT32_MAX || (t >> 3) == 0) return false;
    *number = static_cast<uint32_t>(t >> 3);
    *type = static_cast<uint32_t>(t & 7);
    return true;
  }

  bool len(std::string_view* out) {
    uint64_t n = 0;
    if (!varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    *out = std::string_view(p_, static_cast<size_t>(n));
    p_ += n;
    return true;
  }

  bool fixed64(uint64_t* out) {
    if (end_ - p_ < 8) return false;
    std::memcpy(out, p_, 8);  // little endian on every platform this builds for
    p_ += 8;
    return true;
  }

  // Skips a field of wire type `type`; groups (3, 4), in none of the messages read this way, and
  // the types that do not exist (6, 7) are refused.
  bool skip(uint32_t type) {
    uint64_t ignored = 0;
    std::string_view view;
    switch (type) {
      case kVarint:
        return varint(&ignored);
      case kFixed64:
        return fixed64(&ignored);
      case kLen:
        return len(&view);
      case kFixed32:
        if (end_ - p_ < 4) return false;
        p_ += 4;
        return true;
      default:
        return false;
    }
  }

 private:
  bool long_varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && p_ != end_; shift += 7) {
      const auto c = static_cast<uint8_t>(*p_++);
      v |= uint64_t{c & 0x7Fu} << shift;
      if ((c & 0x80) == 0) {
        *out = v;
        return true;
      }
    }
    return false;
  }

  const char* p_;
  const char* end_;
};

// A sint64's value from its zigzag encoding.
inline int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// AppendRecord.properties: map<string, google.protobuf.Value>.
inline constexpr uint8_t kRecordProperties = tag(2, kLen);
// A map entry; google.protobuf.Struct, ListValue and Value.
inline constexpr uint8_t kEntryKey = tag(1, kLen);
inline constexpr uint8_t kEntryValue = tag(2, kLen);
inline constexpr uint8_t kStructFields = tag(1, kLen);
inline constexpr uint8_t kListValues = tag(1, kLen);
inline constexpr uint8_t kValueNull = tag(1, kVarint);
inline constexpr uint8_t kValueNumber = tag(2, kFixed64);
inline constexpr uint8_t kValueString = tag(3, kLen);
inline constexpr uint8_t kValueBool = tag(4, kVarint);
inline constexpr uint8_t kValueStruct = tag(5, kLen);
inline constexpr uint8_t kValueList = tag(6, kLen);

}  // namespace protowire

// An AppendRecord's properties (map<string, google.protobuf.Value>), written from values: entries
// in the order added, encoded as the JSON object with the same fields in the same order is by the
// records encoder (proto/kurrentdb/records_wire.h; numbers as doubles, an object as a Struct).
// Strings must be valid UTF-8 (protobuf strings). Protobuf puts each length before its body, so the
// sizes come first: either make the same calls twice, to a PropertySizer and then to a
// PropertyWriter over the room it measured (nothing kept in between), or make them once to
// RecordProperties, which keeps them and writes them after.

// The first pass: the encoded size (every entry, tagged as AppendRecord.properties), and each
// object's fields size, in the order the objects open. Reused: `clear` keeps the capacity.
class PropertySizer {
 public:
  void clear();
  void add_string(std::string_view key, std::string_view text) { add(key, protowire::len_field(text.size())); }
  void add_number(std::string_view key, double /*number*/) { add(key, 1 + 8); }
  void add_bool(std::string_view key, bool /*value*/) { add(key, 1 + 1); }
  void add_null(std::string_view key) { add(key, 1 + 1); }
  // The fields added until the matching `close_object` are the object's.
  void open_object(std::string_view key);
  void close_object();
  [[nodiscard]] size_t size() const { return size_; }
  // The fields size of the k-th object opened.
  [[nodiscard]] size_t object_size(size_t k) const { return objects_[k]; }

 private:
  // Adds an entry with a value of `value_size` bytes to the open object (or to the whole).
  void add(std::string_view key, size_t value_size);

  std::vector<size_t> objects_;                            // fields sizes, in opening order
  std::vector<std::pair<size_t, std::string_view>> open_;  // the objects not closed yet: index, key
  size_t size_ = 0;
};

// The second pass: the same calls written into `PropertySizer::size()` bytes of room, each object
// opened with its fields size (`PropertySizer::object_size`).
class PropertyWriter {
 public:
  explicit PropertyWriter(char* at) : out_{at} {}
  void add_string(std::string_view key, std::string_view text);
  void add_number(std::string_view key, double number);
  void add_bool(std::string_view key, bool value);
  void add_null(std::string_view key);
  void open_object(std::string_view key, size_t fields_size);
  void close_object() { --depth_; }
  // Past the last byte written.
  [[nodiscard]] char* end() const { return out_.p; }

 private:
  // An entry's tag, length and key, and its value's length, at `o`.
  void entry(protowire::Out& o, std::string_view key, size_t value_size) const;

  protowire::Out out_;
  int depth_ = 0;
};

// The calls made once and kept (strings viewed, not copied: they must outlive `write`), sized as
// they come. Reused across records: `clear` keeps the capacity.
class RecordProperties {
 public:
  void clear();
  void add_string(std::string_view key, std::string_view text);
  void add_number(std::string_view key, double number);
  void add_bool(std::string_view key, bool value);
  void add_null(std::string_view key);
  void open_object(std::string_view key);
  void close_object();
  // The encoded size: every entry, tagged as AppendRecord.properties.
  [[nodiscard]] size_t size() const { return sizes_.size(); }
  // Writes the encoded entries into `size()` bytes of room at `at` (every object closed); returns
  // the end.
  char* write(char* at) const;

 private:
  enum class Kind : uint8_t { kString, kNumber, kTrue, kFalse, kNull, kOpen, kClose };
  struct Call {
    Kind kind;
    std::string_view key;
    std::string_view text;  // a string's value
    double number = 0;
  };

  PropertySizer sizes_;
  std::vector<Call> calls_;
};

}  // namespace kingest
