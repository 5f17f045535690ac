#include "core/record_properties.h"

#include <cassert>

namespace kingest {

using namespace protowire;

void RecordProperties::clear() {
  nodes_.clear();
  open_.clear();
  size_ = 0;
}

size_t RecordProperties::value_size(const Node& n) {
  switch (n.kind) {
    case Kind::kObject: return len_field(n.fields);
    case Kind::kString: return len_field(n.text.size());
    case Kind::kNumber: return 1 + 8;
    default: return 1 + 1;
  }
}

void RecordProperties::counted(const Node& n) {
  const size_t entry = len_field(len_field(n.key.size()) + len_field(value_size(n)));
  if (open_.empty()) {
    size_ += entry;
  } else {
    nodes_[open_.back()].fields += entry;
  }
}

void RecordProperties::add(Node n) {
  counted(n);
  nodes_.push_back(n);
}

void RecordProperties::add_string(std::string_view key, std::string_view text) {
  add({.kind = Kind::kString, .key = key, .text = text});
}
void RecordProperties::add_number(std::string_view key, double number) {
  add({.kind = Kind::kNumber, .key = key, .number = number});
}
void RecordProperties::add_bool(std::string_view key, bool value) {
  add({.kind = value ? Kind::kTrue : Kind::kFalse, .key = key});
}
void RecordProperties::add_null(std::string_view key) { add({.kind = Kind::kNull, .key = key}); }

void RecordProperties::open_object(std::string_view key) {
  open_.push_back(nodes_.size());
  nodes_.push_back({.kind = Kind::kObject, .key = key});
}

void RecordProperties::close_object() {
  assert(!open_.empty());
  const size_t at = open_.back();
  open_.pop_back();
  nodes_[at].end = nodes_.size();
  counted(nodes_[at]);
}

char* RecordProperties::write_fields(char* at, uint8_t t, size_t from, size_t to) const {
  Out out{at};
  for (size_t i = from; i < to;) {
    const Node& n = nodes_[i];
    const size_t value = value_size(n);
    put_len(out, t, len_field(n.key.size()) + len_field(value));
    put_bytes(out, kEntryKey, n.key);
    put_len(out, kEntryValue, value);
    switch (n.kind) {
      case Kind::kObject:
        put_len(out, kValueStruct, n.fields);
        out.p = write_fields(out.p, kStructFields, i + 1, n.end);
        i = n.end;
        continue;
      case Kind::kString:
        put_bytes(out, kValueString, n.text);
        break;
      case Kind::kNumber:
        put_double(out, kValueNumber, n.number);
        break;
      case Kind::kTrue:
      case Kind::kFalse:
        out.push_back(char(kValueBool));
        out.push_back(n.kind == Kind::kTrue ? 1 : 0);
        break;
      case Kind::kNull:
        out.push_back(char(kValueNull));
        out.push_back(0);
        break;
    }
    ++i;
  }
  return out.p;
}

char* RecordProperties::write(char* at) const {
  assert(open_.empty());
  return write_fields(at, kRecordProperties, 0, nodes_.size());
}

void RecordProperties::append_to(std::string* out) const {
  const size_t at = out->size();
  out->resize(at + size_);
  [[maybe_unused]] const char* end = write(out->data() + at);
  assert(end == out->data() + out->size());
}

}  // namespace kingest
