// Channels and credentials: TLS options, the authorization header, one channel per node, leader
// redirects, and the words for a failed connection.
#include "kurrent/internal/core.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kurrent/internal/batch_call.h"

namespace kingest::kurrent::internal {
namespace {

std::string read_file(const std::string& path, absl::Status* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = absl::InvalidArgumentError("tlsCaFile: cannot read " + path);
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials(const ConnectionSettings& s) {
  if (!s.tls) return grpc::InsecureChannelCredentials();
  absl::Status error;
  std::string roots = s.tls_ca_file.empty() ? std::string() : read_file(s.tls_ca_file, &error);
  if (!error.ok()) return error;
  if (!s.tls_ca_file.empty() && !absl::StrContains(roots, "-----BEGIN CERTIFICATE-----")) {
    return absl::InvalidArgumentError("tlsCaFile: " + s.tls_ca_file + " holds no PEM certificate");
  }
  if (s.tls_verify_cert) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = roots;
    return grpc::SslCredentials(o);
  }
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_verify_server_certs(false);
  o.set_check_call_host(false);
  o.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  if (!roots.empty()) {
    o.set_certificate_provider(std::make_shared<grpc::experimental::StaticDataCertificateProvider>(roots));
    o.watch_root_certs();
  }
  auto creds = grpc::experimental::TlsCredentials(o);
  if (!creds) return absl::InvalidArgumentError("tlsVerifyCert=false: could not set up TLS without verification");
  return creds;
}

constexpr int kMaxReceiveBytes = 17 * 1024 * 1024;  // what the official clients accept

}  // namespace

std::string authorization(const ConnectionSettings& s) {
  if (!s.username) return {};
  return "Basic " + absl::Base64Escape(*s.username + ":" + s.password.value_or(""));
}

absl::Status call_error(const grpc::Status& st, bool retryable, std::string message) {
  switch (st.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::UnauthenticatedError(message);
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(message);
    default:
      if (retryable || st.ok()) return absl::UnavailableError(message);
      return {static_cast<absl::StatusCode>(static_cast<int>(st.error_code())), message};
  }
}

std::string explain_connect_error(const ConnectionSettings& s, const std::string& endpoint, const grpc::Status& st) {
  std::string msg = st.error_message();
  std::string lower = absl::AsciiStrToLower(msg);
  std::string where = "KurrentDB at " + endpoint + " (" + s.redacted() + ")";
  if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    return "authentication failed at " + endpoint + " (" + msg +
           "): check the user name and password in the connection string";
  }
  if (st.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    return "access denied at " + endpoint + " (" + msg +
           "): the server wants credentials; put user:password@ in the connection string";
  }
  if (absl::StrContains(lower, "handshake") || absl::StrContains(lower, "ssl") ||
      absl::StrContains(lower, "certificate") || absl::StrContains(lower, "tls")) {
    return "TLS handshake with " + where + " failed (" + msg +
           "): check tls=, tlsCaFile= and tlsVerifyCert= in the connection string (a server without TLS needs "
           "tls=false)";
  }
  std::string hint = s.tls ? " (tls=true is the default: a server without TLS needs ?tls=false)"
                           : " (tls=false: a server with TLS needs tls=true)";
  if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return "no answer from " + where + " within the deadline: is the server up, and is the connection string right?" +
           hint;
  }
  return "cannot connect to " + where + ": " + msg + ". Is the server up, and is the connection string right?" + hint;
}

absl::StatusOr<std::shared_ptr<Node>> Core::make_node(const std::string& endpoint) {
  auto creds = channel_credentials(settings_);
  if (!creds.ok()) return creds.status();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  args.SetMaxSendMessageSize(-1);
  if (settings_.keep_alive_interval.count() > 0) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, int(settings_.keep_alive_interval.count()));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, int(std::max<int64_t>(settings_.keep_alive_timeout.count(), 1)));
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, int(options_.backoff_initial.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, int(options_.backoff_max.count()));
  args.SetString(GRPC_ARG_PRIMARY_USER_AGENT_STRING,
                 "kurrent-ingest" + (settings_.connection_name.empty() ? "" : "/" + settings_.connection_name));
  // A distinct channel per node and per Core (no subchannel sharing with other clients).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto node = std::make_shared<Node>();
  node->endpoint = endpoint;
  node->channel = grpc::CreateCustomChannel(endpoint, *creds, args);
  node->streams = streams::Streams::NewStub(node->channel);
  node->v2 = v2::StreamsService::NewStub(node->channel);
  node->generic = std::make_unique<grpc::GenericStub>(node->channel);
  return node;
}

void Core::prepare(grpc::ClientContext& ctx, milliseconds deadline, bool requires_leader) const {
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  if (!auth_.empty()) ctx.AddMetadata("authorization", auth_);
  if (!settings_.connection_name.empty()) ctx.AddMetadata("connection-name", settings_.connection_name);
  if (requires_leader) ctx.AddMetadata("requires-leader", "true");
}

std::shared_ptr<Node> Core::node() {
  std::lock_guard lock(mu_);
  return node_;
}

void Core::set_node(std::shared_ptr<Node> n) {
  std::lock_guard lock(mu_);
  node_ = std::move(n);
}

// Moves to the leader named by a not-leader answer (once per node change).
void Core::redirect(const std::shared_ptr<Node>& from, const std::string& host, uint16_t port) {
  std::string endpoint = Endpoint{.host = host, .port = port}.address();
  {
    std::lock_guard lock(mu_);
    if (node_ != from || node_->endpoint == endpoint) return;
  }
  auto n = make_node(endpoint);
  if (!n.ok()) return;
  spdlog::info("kurrentdb: {} is not the leader; moving to the leader at {}", from->endpoint, endpoint);
  std::shared_ptr<BatchCall> old;
  {
    std::lock_guard lock(mu_);
    if (node_ != from) return;
    node_ = *n;
    redirects_++;
    old = batch_;
  }
  if (old && old->node() == from) old->close();
}

}  // namespace kingest::kurrent::internal
