// RFC 4122 UUIDs: parsing, formatting, random (v4) and name-based (v5, SHA-1) ids.
//
// Event ids must be stable across replays: when an envelope carries no UUID, the pipeline derives
// a v5 id from the stream, the revision and a hash of the content (`derive_event_id` in
// pipeline/naming.h; docs/design.md "Revisions and stream state"), so a replay proposes the same id
// and a different event at the same revision does not.
//
//   auto id = Uuid::parse("550e8400-e29b-41d4-a716-446655440000");  // std::optional<Uuid>
//   Uuid::v5(Uuid::nil(), "name").to_string();
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kingest {

class Uuid {
 public:
  using Bytes = std::array<uint8_t, 16>;

  constexpr Uuid() = default;
  constexpr explicit Uuid(const Bytes& b) : bytes_(b) {}

  static constexpr Uuid nil() { return Uuid{}; }
  // Accepts the canonical 8-4-4-4-12 form, upper or lower case, optionally in braces.
  static std::optional<Uuid> parse(std::string_view text);
  // Version 5 (SHA-1, name-based) in the given namespace.
  static Uuid v5(const Uuid& name_space, std::string_view name);
  // Version 4 from a thread-local random generator.
  static Uuid v4();
  // Big-endian halves, as KurrentDB's `UUID.Structured` carries them.
  static Uuid from_halves(int64_t most, int64_t least);

  [[nodiscard]] std::string to_string() const;  // lower-case canonical form
  static constexpr size_t kTextSize = 36;
  // The canonical form without a heap allocation.
  [[nodiscard]] std::array<char, kTextSize> text() const;
  void append_to(std::string& out) const { const auto t = text(); out.append(t.data(), t.size()); }
  [[nodiscard]] const Bytes& bytes() const { return bytes_; }
  [[nodiscard]] int64_t most_significant() const;
  [[nodiscard]] int64_t least_significant() const;
  [[nodiscard]] bool is_nil() const { return *this == Uuid{}; }

  // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 takes the defaulted <=> for a comparison with 0
  auto operator<=>(const Uuid&) const = default;

 private:
  Bytes bytes_{};
};

// SHA-1 digest (20 bytes). Only for name-based ids; not for security.
std::array<uint8_t, 20> sha1(std::string_view data);

}  // namespace kingest
