#include "core/record_properties.h"

#include <cassert>

namespace kingest {

using namespace protowire;

void PropertySizer::clear() {
  objects_.clear();
  open_.clear();
  size_ = 0;
}

void PropertySizer::add(std::string_view key, size_t value_size) {
  const size_t entry = len_field(len_field(key.size()) + len_field(value_size));
  if (open_.empty()) {
    size_ += entry;
  } else {
    objects_[open_.back().first] += entry;
  }
}

void PropertySizer::open_object(std::string_view key) {
  open_.emplace_back(objects_.size(), key);
  objects_.push_back(0);
}

void PropertySizer::close_object() {
  assert(!open_.empty());
  const auto [index, key] = open_.back();
  open_.pop_back();
  add(key, len_field(objects_[index]));
}

// Each method writes through a local copy of the position: a store through a `char*` may alias
// anything, so writing through the member would reload and store it at every byte.
void PropertyWriter::entry(Out& o, std::string_view key, size_t value_size) const {
  Out local{o.p};
  put_len(local, depth_ == 0 ? kRecordProperties : kStructFields, len_field(key.size()) + len_field(value_size));
  put_bytes(local, kEntryKey, key);
  put_len(local, kEntryValue, value_size);
  o.p = local.p;
}

void PropertyWriter::add_string(std::string_view key, std::string_view text) {
  Out o{out_.p};
  entry(o, key, len_field(text.size()));
  put_bytes(o, kValueString, text);
  out_.p = o.p;
}

void PropertyWriter::add_number(std::string_view key, double number) {
  Out o{out_.p};
  entry(o, key, 1 + 8);
  put_double(o, kValueNumber, number);
  out_.p = o.p;
}

void PropertyWriter::add_bool(std::string_view key, bool value) {
  Out o{out_.p};
  entry(o, key, 1 + 1);
  o.push_back(char(kValueBool));
  o.push_back(value ? 1 : 0);
  out_.p = o.p;
}

void PropertyWriter::add_null(std::string_view key) {
  Out o{out_.p};
  entry(o, key, 1 + 1);
  o.push_back(char(kValueNull));
  o.push_back(0);  // NULL_VALUE
  out_.p = o.p;
}

void PropertyWriter::open_object(std::string_view key, size_t fields_size) {
  Out o{out_.p};
  entry(o, key, len_field(fields_size));
  put_len(o, kValueStruct, fields_size);
  out_.p = o.p;
  ++depth_;
}

void RecordProperties::clear() {
  sizes_.clear();
  calls_.clear();
}

void RecordProperties::add_string(std::string_view key, std::string_view text) {
  sizes_.add_string(key, text);
  calls_.push_back({.kind = Kind::kString, .key = key, .text = text});
}

void RecordProperties::add_number(std::string_view key, double number) {
  sizes_.add_number(key, number);
  calls_.push_back({.kind = Kind::kNumber, .key = key, .number = number});
}

void RecordProperties::add_bool(std::string_view key, bool value) {
  sizes_.add_bool(key, value);
  calls_.push_back({.kind = value ? Kind::kTrue : Kind::kFalse, .key = key});
}

void RecordProperties::add_null(std::string_view key) {
  sizes_.add_null(key);
  calls_.push_back({.kind = Kind::kNull, .key = key});
}

void RecordProperties::open_object(std::string_view key) {
  sizes_.open_object(key);
  calls_.push_back({.kind = Kind::kOpen, .key = key});
}

void RecordProperties::close_object() {
  sizes_.close_object();
  calls_.push_back({.kind = Kind::kClose});
}

char* RecordProperties::write(char* at) const {
  PropertyWriter w(at);
  size_t objects = 0;
  for (const Call& c : calls_) {
    switch (c.kind) {
      case Kind::kString:
        w.add_string(c.key, c.text);
        break;
      case Kind::kNumber:
        w.add_number(c.key, c.number);
        break;
      case Kind::kTrue:
      case Kind::kFalse:
        w.add_bool(c.key, c.kind == Kind::kTrue);
        break;
      case Kind::kNull:
        w.add_null(c.key);
        break;
      case Kind::kOpen:
        w.open_object(c.key, sizes_.object_size(objects++));
        break;
      case Kind::kClose:
        w.close_object();
        break;
    }
  }
  return w.end();
}

}  // namespace kingest
