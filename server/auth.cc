// Basic authentication and the follower's not-leader answer, checked at the start of every call.
#include "server/internal/server.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"

namespace kingest::server::internal {
namespace {

enum class Caller { kAnonymous, kUser };

bool same_secret(absl::string_view a, absl::string_view b) {
  // Length leaks; content compared without an early exit.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::optional<absl::string_view> header(const grpc::CallbackServerContext& ctx, absl::string_view key) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

// `authorization: Basic base64(name:password)`; an error status is UNAUTHENTICATED.
absl::StatusOr<Caller> authenticate(const Shared& shared, const grpc::CallbackServerContext& ctx) {
  auto value = header(ctx, "authorization");
  if (!value) return Caller::kAnonymous;
  absl::string_view v = absl::StripAsciiWhitespace(*value);
  constexpr absl::string_view kScheme = "basic ";
  if (v.size() <= kScheme.size() || !absl::EqualsIgnoreCase(v.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("Invalid authorization header: want 'Basic base64(name:password)'");
  }
  std::string decoded;
  if (!absl::Base64Unescape(absl::StripAsciiWhitespace(v.substr(kScheme.size())), &decoded)) {
    return absl::UnauthenticatedError("Invalid authorization header: the Basic credentials are not base64");
  }
  auto colon = decoded.find(':');
  if (colon == std::string::npos) {
    return absl::UnauthenticatedError("Invalid authorization header: the Basic credentials lack 'name:password'");
  }
  auto user = shared.users.find(decoded.substr(0, colon));
  if (user == shared.users.end() || !same_secret(user->second, absl::string_view(decoded).substr(colon + 1))) {
    return absl::UnauthenticatedError("Invalid credentials: unknown user or wrong password");
  }
  return Caller::kUser;
}

}  // namespace

std::optional<grpc::Status> refuse_access(const Shared& shared, grpc::CallbackServerContext* ctx, Access access) {
  if (shared.users.empty()) return std::nullopt;
  auto caller = authenticate(shared, *ctx);
  if (!caller.ok()) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(caller.status().message()));
  if (access == Access::kStreams && *caller == Caller::kAnonymous) {
    ctx->AddTrailingMetadata("exception", "access-denied");
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "Access Denied");
  }
  return std::nullopt;
}

bool requires_leader(const grpc::CallbackServerContext& ctx) {
  auto value = header(ctx, "requires-leader");
  return value && absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(*value), "true");
}

grpc::Status not_leader(const Shared& shared, grpc::CallbackServerContext* ctx) {
  ctx->AddTrailingMetadata("exception", "not-leader");
  ctx->AddTrailingMetadata("leader-endpoint-host", shared.leader->host);
  ctx->AddTrailingMetadata("leader-endpoint-port", std::to_string(shared.leader->port));
  return {grpc::StatusCode::NOT_FOUND, "Leader info available"};
}

}  // namespace kingest::server::internal
