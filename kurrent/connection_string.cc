#include "kurrent/connection_string.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

namespace kingest::kurrent {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

absl::Status bad(std::string_view what) {
  return absl::InvalidArgumentError("connection string: " + std::string(what));
}

// %XX decoding (user names and passwords may contain ':' or '@' that way).
absl::StatusOr<std::string> percent_decode(std::string_view s, std::string_view part) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int value = 0;
    if (i + 2 >= s.size() || std::from_chars(s.data() + i + 1, s.data() + i + 3, value, 16).ptr != s.data() + i + 3) {
      return bad("bad percent-escape in the " + std::string(part));
    }
    out.push_back(char(value));
    i += 2;
  }
  return out;
}

absl::StatusOr<bool> parse_bool(std::string_view key, std::string_view value) {
  std::string v = lower(value);
  if (v == "true") return true;
  if (v == "false") return false;
  return bad("option " + std::string(key) + "=" + std::string(value) + ": expected true or false");
}

absl::StatusOr<int64_t> parse_int(std::string_view key, std::string_view value) {
  int64_t v = 0;
  auto r = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || r.ec != std::errc{} || r.ptr != value.data() + value.size()) {
    return bad("option " + std::string(key) + "=" + std::string(value) + ": expected a whole number (milliseconds)");
  }
  return v;
}

absl::StatusOr<Endpoint> parse_endpoint(std::string_view text) {
  if (text.empty()) return bad("empty host (check for a stray ',' in the host list)");
  Endpoint e;
  std::string_view host = text, port;
  if (text.front() == '[') {  // [IPv6]:port
    auto close = text.find(']');
    if (close == std::string_view::npos) return bad("an IPv6 host without its closing ']': write [ADDRESS]:PORT");
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return bad("host '[" + std::string(host) + "]': expected ':' after ']'");
      port = text.substr(close + 2);
    }
  } else if (auto colon = text.rfind(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) return bad("a host without a name (check for a stray ':' or ']')");
  e.host = std::string(host);
  if (!port.empty() || text.back() == ':') {
    unsigned value = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || r.ec != std::errc{} || r.ptr != port.data() + port.size() || value == 0 || value > 65535) {
      // The port's text is not shown: `user:password` written without `@host` lands here.
      const bool v6 = text.front() == '[';
      return bad("host '" + (v6 ? "[" + std::string(host) + "]" : std::string(host)) +
                 "': the port must be a number from 1 to 65535 (credentials go before an '@': "
                 "esdb://user:password@host:2113)");
    }
    e.port = uint16_t(value);
  }
  return e;
}

}  // namespace

absl::StatusOr<ConnectionSettings> parse_connection_string(std::string_view text) {
  ConnectionSettings s;
  auto sep = text.find("://");
  if (sep == std::string_view::npos) {
    // The text is not shown: it may hold credentials.
    return bad(
        "no scheme: start with esdb://, kurrentdb://, kdb:// or kurrent:// (e.g. esdb://localhost:2113?tls=false)");
  }
  std::string scheme = lower(text.substr(0, sep));
  if (scheme.size() > 9 && scheme.ends_with("+discover")) {
    s.discover = true;
    scheme.resize(scheme.size() - 9);
  }
  if (scheme != "esdb" && scheme != "kurrentdb" && scheme != "kdb" && scheme != "kurrent") {
    return bad("unknown scheme '" + std::string(text.substr(0, sep)) +
               "': use esdb, kurrentdb, kdb or kurrent (optionally with +discover)");
  }
  s.scheme = scheme;
  std::string_view rest = text.substr(sep + 3);
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view after_credentials =
        rest.substr(rest.rfind('@', slash) == std::string_view::npos ? 0 : rest.rfind('@', slash) + 1);
    return bad("unexpected path after the hosts in '" + std::string(after_credentials) + "'");
  }
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return bad("credentials must be user:password@ (percent-encode ':' or '@' inside them)");
    }
    auto user = percent_decode(userinfo.substr(0, colon), "user name");
    if (!user.ok()) return user.status();
    auto pass = percent_decode(userinfo.substr(colon + 1), "password");
    if (!pass.ok()) return pass.status();
    s.username = *user;
    s.password = *pass;
  }
  if (rest.empty()) return bad("no host: e.g. esdb://localhost:2113");
  size_t start = 0;
  while (start <= rest.size()) {
    size_t comma = rest.find(',', start);
    auto part = rest.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    auto endpoint = parse_endpoint(part);
    if (!endpoint.ok()) return endpoint.status();
    s.hosts.push_back(*endpoint);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (s.hosts.size() > 1) s.discover = true;

  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    if (eq == std::string_view::npos) return bad("option '" + std::string(pair) + "' has no value (key=value)");
    std::string_view key = pair.substr(0, eq);
    auto decoded = percent_decode(pair.substr(eq + 1), "option " + std::string(key));
    if (!decoded.ok()) return decoded.status();
    std::string_view value = *decoded;
    std::string k = lower(key);
    auto set_ms = [&](std::chrono::milliseconds& field) -> absl::Status {
      auto v = parse_int(key, value);
      if (!v.ok()) return v.status();
      field = std::chrono::milliseconds(*v);
      return absl::OkStatus();
    };
    auto set_bool = [&](bool& field) -> absl::Status {
      auto v = parse_bool(key, value);
      if (!v.ok()) return v.status();
      field = *v;
      return absl::OkStatus();
    };
    absl::Status st;
    if (k == "tls") {
      st = set_bool(s.tls);
    } else if (k == "tlsverifycert") {
      st = set_bool(s.tls_verify_cert);
    } else if (k == "tlscafile") {
      s.tls_ca_file = std::string(value);
    } else if (k == "usercertfile") {
      s.user_cert_file = std::string(value);
    } else if (k == "userkeyfile") {
      s.user_key_file = std::string(value);
    } else if (k == "defaultdeadline") {
      st = set_ms(s.default_deadline);
    } else if (k == "connectionname") {
      s.connection_name = std::string(value);
    } else if (k == "keepaliveinterval") {
      st = set_ms(s.keep_alive_interval);
    } else if (k == "keepalivetimeout") {
      st = set_ms(s.keep_alive_timeout);
    } else if (k == "discoveryinterval") {
      st = set_ms(s.discovery_interval);
    } else if (k == "gossiptimeout") {
      st = set_ms(s.gossip_timeout);
    } else if (k == "maxdiscoverattempts") {
      auto v = parse_int(key, value);
      if (!v.ok()) return v.status();
      s.max_discover_attempts = int(*v);
    } else if (k == "nodepreference") {
      std::string v = lower(value);
      if (v == "leader") {
        s.node_preference = NodePreference::kLeader;
      } else if (v == "follower") {
        s.node_preference = NodePreference::kFollower;
      } else if (v == "random") {
        s.node_preference = NodePreference::kRandom;
      } else if (v == "readonlyreplica") {
        s.node_preference = NodePreference::kReadOnlyReplica;
      } else {
        return bad("option nodePreference=" + std::string(value) + ": use leader, follower, random or readOnlyReplica");
      }
    } else if (k == "throwonappendfailure") {
      st = parse_bool(key, value).status();  // accepted for compatibility; appends report every outcome anyway
    } else {
      return bad("unknown option '" + std::string(key) +
                 "' (known: tls, tlsVerifyCert, tlsCaFile, userCertFile, userKeyFile, defaultDeadline, connectionName, "
                 "keepAliveInterval, keepAliveTimeout, nodePreference, maxDiscoverAttempts, discoveryInterval, "
                 "gossipTimeout)");
    }
    if (!st.ok()) return st;
  }
  if (s.default_deadline.count() <= 0) return bad("option defaultDeadline must be positive (milliseconds)");
  return s;
}

std::string Endpoint::address() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string ConnectionSettings::redacted() const {
  std::string out = scheme + (discover ? "+discover" : "") + "://";
  if (username) out += *username + ":***@";
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (i) out += ',';
    out += hosts[i].address();
  }
  out += std::string("?tls=") + (tls ? "true" : "false");
  if (!tls_verify_cert) out += "&tlsVerifyCert=false";
  if (!tls_ca_file.empty()) out += "&tlsCaFile=" + tls_ca_file;
  return out;
}

absl::StatusOr<std::string> connection_string_from_environment(const std::optional<std::string>& flag) {
  if (flag && !flag->empty()) return *flag;
  for (const char* name : {"KURRENT_CONNECTION_STRING", "EVENTSTORE_CONNECTION_STRING"}) {
    if (const char* v = std::getenv(name); v != nullptr && *v != '\0') return std::string(v);
  }
  return absl::NotFoundError(
      "no KurrentDB connection string: pass --kurrent esdb://HOST:2113?tls=false or set KURRENT_CONNECTION_STRING "
      "(or EVENTSTORE_CONNECTION_STRING)");
}

}  // namespace kingest::kurrent
