// Test helper: a self-signed certificate for localhost / 127.0.0.1 made with the openssl tool, in a
// directory of its own under the temporary directory (the caller removes `dir`). For the server's
// and the client's TLS tests; target ki_server_testing, tests only.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace kingest::server::testing {

struct SelfSigned {
  std::string dir;
  std::string cert_path;
  std::string key_path;
  std::string cert;  // PEM text
  std::string key;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// nullopt when the openssl tool fails (or is missing). `name` keeps several per process apart.
inline std::optional<SelfSigned> make_self_signed(const std::string& name) {
  SelfSigned c;
  c.dir = (std::filesystem::temp_directory_path() / ("ki-tls-" + std::to_string(::getpid()) + "-" + name)).string();
  std::filesystem::create_directories(c.dir);
  c.cert_path = c.dir + "/cert.pem";
  c.key_path = c.dir + "/key.pem";
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost"
      " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      c.key_path + " -out " + c.cert_path + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::filesystem::remove_all(c.dir);
    return std::nullopt;
  }
  c.cert = slurp(c.cert_path);
  c.key = slurp(c.key_path);
  return c;
}

}  // namespace kingest::server::testing
