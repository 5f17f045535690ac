// KurrentServer: a KurrentDB wire-compatible gRPC server (v1 Streams.Read/Append/BatchAppend,
// ServerFeatures, Gossip.Read, the v2 AppendSession and AppendRecords) in front of the embedded
// event store, with optional TLS, Basic authentication and a follower mode that answers writes with
// not-leader.
//
// Owner: whoever owns the store (`serve-store`, tests); the store must outlive the server. Threads:
// gRPC's callback API (reactors; no thread is blocked per call); append answers arrive on the
// store's writer thread and are sent from there. Lifecycle: `start` (listening once it returns) →
// `shutdown` (or destruction): stops accepting calls, lets in-flight appends be answered (open
// BatchAppend streams are finished after their pending appends), then cancels what is left after
// `shutdown_grace`.
//
//   auto server = KurrentServer::start(*store, {.listen = "127.0.0.1:0"}).value();
//   // clients connect to "127.0.0.1:" + std::to_string(server->port())
//   server->shutdown();
//
// TLS, users and follower mode:
//   ServerOptions o{.listen = "0.0.0.0:2113",
//                   .tls_cert_pem = read_pem_certificate_chain("cert.pem").value(),
//                   .tls_key_pem = read_pem_private_key("key.pem").value(),
//                   .users = {parse_user("admin:changeit").value()},
//                   .advertise = "node2.local:2113",
//                   .follower_of = "node1.local:2113"};
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "store/event_store.h"

namespace kingest::server {

// One account for Basic authentication.
struct User {
  std::string name;
  std::string password;
};

// HOST:PORT as a gossip end point or a leader address ("[::1]:2113" gives host "::1").
struct Endpoint {
  std::string host;
  int port = 0;
};

struct ServerOptions {
  std::string listen = "127.0.0.1:2113";   // HOST:PORT; port 0 picks a free port (see port())
  bool hide_batch_append = false;          // ServerFeatures omits batchappend, so clients use Append
  bool hide_append_records = false;        // ServerFeatures omits appendrecords (a pre-26.1 server)
  std::string server_version = "24.10.0";  // digits and dots (clients reject anything else)
  // KurrentDB's MaxAppendSize before 25.1 (1 MiB); one event at most 16 MiB.
  size_t max_append_size = size_t{1} << 20;
  size_t max_event_size = size_t{16} << 20;
  // BatchAppend chunks of correlation ids not yet final are held in memory until is_final: at most
  // this many bytes per call and over all calls; beyond, that correlation id is answered
  // RESOURCE_EXHAUSTED (the call goes on).
  size_t max_pending_batch_bytes_per_call = size_t{64} << 20;
  size_t max_pending_batch_bytes = size_t{256} << 20;
  // Largest gRPC message accepted (a BatchAppend chunk may hold many events).
  int max_receive_message_bytes = 64 << 20;
  // Events per page when a read is streamed out.
  size_t read_page_size = 512;
  std::chrono::milliseconds shutdown_grace{5000};

  // TLS: the PEM text of the certificate chain and of its private key (both or neither; neither =
  // plaintext). `start` rejects a half pair, unparsable PEM and a key that does not match.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // Basic authentication. Empty: every call is served, credentials or not. Otherwise a call with
  // `authorization: Basic base64(name:password)` naming a known pair is served; a wrong pair or a
  // malformed header is UNAUTHENTICATED on every rpc; no header is PERMISSION_DENIED on the Streams
  // rpcs and AppendSession, while ServerFeatures and Gossip stay open to anonymous callers.
  std::vector<User> users;
  // HOST:PORT that Gossip.Read reports for this node; empty = the listen host and the bound port.
  std::string advertise;
  // Follower mode: HOST:PORT of the leader. Writes (and reads sent with `requires-leader: true`)
  // answer NOT_FOUND "Leader info available" with trailers `exception: not-leader`,
  // `leader-endpoint-host`, `leader-endpoint-port`. Empty: this node is the leader.
  std::string follower_of;
};

// "NAME:PASSWORD", split at the first colon (the password may hold colons); neither part may be
// empty. Messages never show the text (it holds a password).
absl::StatusOr<User> parse_user(std::string_view text);
// A file of NAME:PASSWORD lines (surrounding blanks trimmed; empty lines and lines starting with '#'
// skipped), so that passwords stay off the command line; errors name the file and the line.
absl::StatusOr<std::vector<User>> read_users_file(const std::string& path);
// The same lines from the environment variable kUsersVariable (several users: one a line); none
// when it is unset or empty.
inline constexpr const char* kUsersVariable = "KURRENT_INGEST_STORE_USERS";
absl::StatusOr<std::vector<User>> users_from_environment();
// "HOST:PORT" with a non-empty host and a port in 1..65535; an IPv6 host in brackets.
absl::StatusOr<Endpoint> parse_endpoint(std::string_view text);
// Reads a PEM file and checks that it holds a certificate (chain) / a private key; the error names
// the file. Returns the file's text, as ServerOptions takes it.
absl::StatusOr<std::string> read_pem_certificate_chain(const std::string& path);
absl::StatusOr<std::string> read_pem_private_key(const std::string& path);
// Both empty (plaintext), or a parsable certificate chain and the private key that matches it.
absl::Status check_tls_pair(const std::string& cert_pem, const std::string& key_pem);

class KurrentServer {
 public:
  static absl::StatusOr<std::unique_ptr<KurrentServer>> start(store::EventStore& store, ServerOptions options);
  virtual ~KurrentServer() = default;

  [[nodiscard]] virtual int port() const = 0;             // the bound port (also when 0 was asked)
  [[nodiscard]] virtual std::string address() const = 0;  // HOST:PORT with the bound port
  // HOST:PORT reported by Gossip.Read for this node (`advertise`, else address()).
  [[nodiscard]] virtual std::string advertised_address() const = 0;
  // Idempotent; see the lifecycle above.
  virtual void shutdown() = 0;
};

}  // namespace kingest::server
