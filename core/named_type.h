// Strong identifier types: a Kafka offset, a pipeline sequence number and a stream revision are
// all integers, and passing one where another is expected is a bug the compiler should catch.
//
//   using KafkaOffset = NamedType<int64_t, struct KafkaOffsetTag>;
//   KafkaOffset o{42}; o.value() == 42;
#pragma once

#include <compare>
#include <cstddef>
#include <functional>
#include <ostream>

namespace kingest {

template <class T, class Tag>
class NamedType {
 public:
  using value_type = T;
  constexpr NamedType() = default;
  constexpr explicit NamedType(T v) : value_(v) {}
  [[nodiscard]] constexpr T value() const { return value_; }
  constexpr auto operator<=>(const NamedType&) const = default;
  friend std::ostream& operator<<(std::ostream& os, const NamedType& t) { return os << t.value_; }

 private:
  T value_{};
};

}  // namespace kingest

template <class T, class Tag>
struct std::hash<kingest::NamedType<T, Tag>> {
  size_t operator()(const kingest::NamedType<T, Tag>& t) const noexcept { return std::hash<T>{}(t.value()); }
};
