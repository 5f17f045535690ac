// KurrentDB / EventStoreDB connection strings, as the official clients read them:
//
//   esdb://admin:changeit@localhost:2113?tls=false
//   kurrentdb+discover://node1:2113,node2:2113,node3:2113?tlsCaFile=/certs/ca.crt&nodePreference=leader
//
// Schemes `esdb`, `kurrentdb`, `kdb`, `kurrent`, each with an optional `+discover` (gossip
// discovery; several hosts imply it too). The default port is 2113; TLS is on unless `tls=false`.
// Option names are case-insensitive. Every error names the part of the string to fix; the password
// never appears in a message or in `redacted()`.
//
//   auto s = parse_connection_string("esdb://localhost:2113?tls=false");
//   auto text = connection_string_from_environment(flag_value);  // --kurrent, else the env vars
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kingest::kurrent {

struct Endpoint {
  std::string host;  // an IPv6 literal without its brackets
  uint16_t port = 2113;
  bool operator==(const Endpoint&) const = default;
  // HOST:PORT as gRPC takes it, an IPv6 literal in brackets ("[::1]:2113").
  [[nodiscard]] std::string address() const;
};

enum class NodePreference { kLeader, kFollower, kRandom, kReadOnlyReplica };

struct ConnectionSettings {
  std::string scheme;        // as written, without "+discover"
  bool discover = false;     // gossip discovery (+discover or several hosts)
  std::vector<Endpoint> hosts;
  std::optional<std::string> username;
  std::optional<std::string> password;
  bool tls = true;
  bool tls_verify_cert = true;
  std::string tls_ca_file;
  std::string user_cert_file;
  std::string user_key_file;
  std::chrono::milliseconds default_deadline{10000};
  std::string connection_name;
  std::chrono::milliseconds keep_alive_interval{10000};  // <= 0: no keepalive pings
  std::chrono::milliseconds keep_alive_timeout{10000};
  NodePreference node_preference = NodePreference::kLeader;
  int max_discover_attempts = 10;
  std::chrono::milliseconds discovery_interval{100};
  std::chrono::milliseconds gossip_timeout{5000};

  // The string again, with the password replaced by "***" (for logs and reports).
  [[nodiscard]] std::string redacted() const;
};

absl::StatusOr<ConnectionSettings> parse_connection_string(std::string_view text);

// The connection string to use: `flag` (--kurrent) when given, else KURRENT_CONNECTION_STRING, else
// EVENTSTORE_CONNECTION_STRING (the seed's variables). NotFound when none is set, saying where it
// looked.
absl::StatusOr<std::string> connection_string_from_environment(const std::optional<std::string>& flag);

}  // namespace kingest::kurrent
