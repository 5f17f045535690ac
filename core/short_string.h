// ShortString: text of up to 39 bytes kept in the object itself (48 bytes in all), longer text on
// the heap; always followed by a NUL byte (`c_str`).
//
// A decoded event's identifiers, names and times are mostly 13 to 36 bytes: UUIDs, ISO 8601 times,
// "application/json". std::string keeps only 15 bytes in place, so each of them was a heap
// allocation per event, made on a decoding thread and freed on another after the append. In a
// ShortString they travel with the event and cost nothing to free. 39 bytes hold a UUID with room
// to spare; 47 (a 64-byte object) made every decoded event a cache line larger, and the pipeline
// reads each event several times, on several threads (docs/performance.md). The heap's pointer
// shares the room of the text in place, which only one of them uses at a time.
//
//   ShortString s = "550e8400-e29b-41d4-a716-446655440000";  // in place
//   std::string_view v = s;                                   // a view, valid while s is unchanged
//   std::string copy(s);                                      // or s.str()
//
// BasicShortString<N> keeps N bytes in place (N + 9 bytes in all, rounded up to 8): the stream
// table keeps each stream's name in its node that way (`StreamName`), where most names are 40 to
// 55 bytes ("{AggregateType}-{UUID}").
//
// Not thread-safe (a value type, like std::string). Moving an in-place ShortString copies its bytes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace kingest {

template <size_t InPlace>
class BasicShortString {
  using ShortString = BasicShortString;  // within the template, the class itself

 public:
  static constexpr size_t kInPlace = InPlace;  // bytes of text kept in place (one more holds the NUL)

  BasicShortString() = default;
  BasicShortString(std::string_view s) { assign(s); }                 // NOLINT(google-explicit-constructor)
  BasicShortString(const char* s) : BasicShortString(std::string_view(s)) {}  // NOLINT(google-explicit-constructor)
  BasicShortString(const std::string& s) : BasicShortString(std::string_view(s)) {}  // NOLINT(google-explicit-constructor)
  BasicShortString(const BasicShortString& o) { assign(o.view()); }
  BasicShortString(BasicShortString&& o) noexcept { take(o); }
  ~BasicShortString() {
    if (capacity_ != 0) delete[] heap_;
  }

  ShortString& operator=(const ShortString& o) {
    if (this != &o) assign(o.view());
    return *this;
  }
  ShortString& operator=(ShortString&& o) noexcept {
    if (this != &o) {
      if (capacity_ != 0) delete[] heap_;
      capacity_ = 0;
      take(o);
    }
    return *this;
  }
  ShortString& operator=(std::string_view s) { return assign(s); }
  ShortString& operator=(const char* s) { return assign(std::string_view(s)); }
  ShortString& operator=(const std::string& s) { return assign(std::string_view(s)); }

  ShortString& assign(std::string_view s) {
    char* p = reserve_for(s.size(), /*keep=*/false);
    if (!s.empty()) std::memmove(p, s.data(), s.size());
    size_ = static_cast<uint32_t>(s.size());
    p[size_] = '\0';
    return *this;
  }
  ShortString& assign(const char* p, size_t n) { return assign(std::string_view(p, n)); }
  ShortString& assign(const char* begin, const char* end) {
    return assign(std::string_view(begin, static_cast<size_t>(end - begin)));
  }
  ShortString& append(std::string_view s) {
    if (!s.empty() && s.data() >= data() && s.data() < data() + size_) {
      const std::string copy(s);  // part of this text: copied before a reallocation could free it
      return append(copy);
    }
    char* p = reserve_for(size_ + s.size(), /*keep=*/true);
    if (!s.empty()) std::memcpy(p + size_, s.data(), s.size());
    size_ += static_cast<uint32_t>(s.size());
    p[size_] = '\0';
    return *this;
  }
  ShortString& operator+=(std::string_view s) { return append(s); }
  ShortString& operator+=(char c) { return append(std::string_view(&c, 1)); }
  void push_back(char c) { append(std::string_view(&c, 1)); }
  void clear() {
    size_ = 0;
    *mutable_data() = '\0';
  }

  [[nodiscard]] const char* data() const { return capacity_ != 0 ? heap_ : in_place_; }
  [[nodiscard]] const char* c_str() const { return data(); }
  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] size_t length() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }
  [[nodiscard]] char front() const { return data()[0]; }
  [[nodiscard]] char back() const { return data()[size_ - 1]; }
  [[nodiscard]] char operator[](size_t i) const { return data()[i]; }
  [[nodiscard]] const char* begin() const { return data(); }
  [[nodiscard]] const char* end() const { return data() + size_; }
  [[nodiscard]] std::string_view view() const { return {data(), size_}; }
  [[nodiscard]] std::string str() const { return std::string(view()); }
  operator std::string_view() const { return view(); }  // NOLINT(google-explicit-constructor)

  friend bool operator==(const ShortString& a, const ShortString& b) { return a.view() == b.view(); }
  friend bool operator==(const ShortString& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const ShortString& a, const char* b) { return a.view() == std::string_view(b); }
  friend bool operator==(const ShortString& a, const std::string& b) { return a.view() == std::string_view(b); }
  friend auto operator<=>(const ShortString& a, const ShortString& b) { return a.view() <=> b.view(); }
  friend std::string operator+(std::string a, const ShortString& b) { return std::move(a.append(b.view())); }
  friend std::string operator+(const ShortString& a, std::string_view b) {
    std::string out;
    out.reserve(a.size() + b.size());
    out.append(a.view()).append(b);
    return out;
  }
  friend std::ostream& operator<<(std::ostream& os, const ShortString& s) { return os << s.view(); }

 private:
  char* mutable_data() { return capacity_ != 0 ? heap_ : in_place_; }

  // Room for `n` bytes of text and the NUL after them; keeps the current bytes when `keep`.
  char* reserve_for(size_t n, bool keep) {
    if (n <= kInPlace && capacity_ == 0) return in_place_;
    if (capacity_ != 0 && n < capacity_) return heap_;
    size_t cap = std::max<size_t>(n + 1, capacity_ != 0 ? size_t{capacity_} * 2 : (kInPlace + 1) * 2);
    char* fresh = new char[cap];
    if (keep && size_ > 0) std::memcpy(fresh, data(), size_);
    if (capacity_ != 0) delete[] heap_;
    heap_ = fresh;  // the bytes in place are no longer read
    capacity_ = static_cast<uint32_t>(cap);
    return heap_;
  }
  // `this` holds no heap block.
  void take(ShortString& o) noexcept {
    size_ = o.size_;
    if (o.capacity_ != 0) {
      heap_ = o.heap_;
      capacity_ = o.capacity_;
      o.capacity_ = 0;
    } else {
      std::memcpy(in_place_, o.in_place_, size_ + 1);
    }
    o.size_ = 0;
    o.in_place_[0] = '\0';
  }

  uint32_t size_ = 0;
  uint32_t capacity_ = 0;  // of heap_, the NUL's byte included; 0 while the text is in place
  union {
    char in_place_[kInPlace + 1]{};
    char* heap_;  // while capacity_ != 0
  };
};

using ShortString = BasicShortString<39>;  // 48 bytes: a decoded event's short texts

}  // namespace kingest
