// Accounts for Basic authentication from a flag's text, a file or the environment. No message shows
// the text it read: it holds passwords.
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/kurrent_server.h"

namespace kingest::server {
namespace {

// NAME:PASSWORD lines; `where(n)` names line n in messages.
template <typename Where>
absl::StatusOr<std::vector<User>> parse_lines(std::string_view text, Where where) {
  std::vector<User> users;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    auto user = parse_user(std::string_view(line.data(), line.size()));
    if (!user.ok()) return absl::InvalidArgumentError(absl::StrCat(where(number), ": ", user.status().message()));
    users.push_back(std::move(*user));
  }
  return users;
}

}  // namespace

absl::StatusOr<User> parse_user(std::string_view view) {
  const std::string text(view);
  auto colon = text.find(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError("want NAME:PASSWORD (no ':' found)");
  if (colon == 0) return absl::InvalidArgumentError("want NAME:PASSWORD (the name is empty)");
  if (colon + 1 == text.size()) return absl::InvalidArgumentError("want NAME:PASSWORD (the password is empty)");
  return User{.name = text.substr(0, colon), .password = text.substr(colon + 1)};
}

absl::StatusOr<std::vector<User>> read_users_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read users file '", path, "'"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read users file '", path, "'"));
  return parse_lines(text, [&](int line) { return absl::StrCat(path, ":", line); });
}

absl::StatusOr<std::vector<User>> users_from_environment() {
  const char* value = std::getenv(kUsersVariable);
  if (value == nullptr || *value == '\0') return std::vector<User>{};
  return parse_lines(value, [](int line) { return absl::StrCat(kUsersVariable, " (line ", line, ")"); });
}

}  // namespace kingest::server
