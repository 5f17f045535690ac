#include "kafka/port_forward.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kingest::kafka {
namespace {

absl::StatusOr<std::pair<std::string, int>> split_host_port(const std::string& text, const std::string& what) {
  const size_t colon = text.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    try {
      size_t used = 0;
      port = std::stoi(text.substr(colon + 1), &used);
      if (used != text.size() - colon - 1) port = -1;
    } catch (...) {
      port = -1;
    }
  }
  if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(what + " '" + text + "': expected HOST:PORT, e.g. 127.0.0.1:9092");
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::pair{host, port};
}

// Binds and listens; -1 with `err` set on failure.
int listen_on(int family, const std::string& host, int port, std::string& err) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc = -1;
  if (family == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
      ::close(fd);
      err = "not an IPv4 address";
      return -1;
    }
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    int v6only = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(uint16_t(port));
    if (::inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) != 1) {
      ::close(fd);
      err = "not an IPv6 address";
      return -1;
    }
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0 || ::listen(fd, 64) != 0) {
    err = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

int bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// Writes all of `n` bytes; false when the peer is gone.
bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PortForward>> PortForward::start(const std::string& listen, const std::string& target) {
  auto l = split_host_port(listen, "listen address");
  if (!l.ok()) return l.status();
  auto t = split_host_port(target, "target address");
  if (!t.ok()) return t.status();
  std::unique_ptr<PortForward> f(new PortForward());
  f->target_host_ = t->first;
  f->target_port_ = t->second;
  std::string host = l->first;
  const bool localhost = host == "localhost";
  if (localhost) host = "127.0.0.1";
  std::string err;
  const bool v6 = host.find(':') != std::string::npos;
  const int fd = listen_on(v6 ? AF_INET6 : AF_INET, host, l->second, err);
  if (fd < 0) {
    return absl::FailedPreconditionError("cannot listen on " + listen + ": " + err +
                                         (err.find("in use") != std::string::npos
                                              ? " (another Kafka running? pick another port)"
                                              : ""));
  }
  f->listeners_.push_back(fd);
  const int port = bound_port(fd);
  if (localhost) {
    // `localhost` may resolve to ::1 first; listen there too when the machine has IPv6.
    std::string ignored;
    const int fd6 = listen_on(AF_INET6, "::1", port, ignored);
    if (fd6 >= 0) f->listeners_.push_back(fd6);
  }
  f->address_ = (v6 ? "[" + host + "]" : (localhost ? std::string("localhost") : host)) + ":" + std::to_string(port);
  f->acceptor_ = std::thread([p = f.get()] { p->accept_loop(); });
  return f;
}

PortForward::~PortForward() { stop(); }

void PortForward::stop() {
  if (stopping_.exchange(true)) return;
  for (int fd : listeners_) ::shutdown(fd, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  for (int fd : listeners_) ::close(fd);
  std::vector<std::thread> relays;
  {
    std::lock_guard lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    relays.swap(relays_);
  }
  for (auto& t : relays) t.join();
}

void PortForward::accept_loop() {
  std::vector<pollfd> fds;
  for (int fd : listeners_) fds.push_back({fd, POLLIN, 0});
  while (!stopping_.load()) {
    if (::poll(fds.data(), fds.size(), 200) <= 0) continue;
    for (auto& p : fds) {
      if ((p.revents & POLLIN) == 0) continue;
      const int client = ::accept4(p.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      std::lock_guard lock(mu_);
      if (stopping_.load()) {
        ::close(client);
        continue;
      }
      relays_.emplace_back([this, client] { relay(client); });
    }
  }
}

void PortForward::relay(int client) {
  const int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(target_port_));
  ::inet_pton(AF_INET, target_host_.c_str(), &a.sin_addr);
  if (upstream < 0 || ::connect(upstream, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (upstream >= 0) ::close(upstream);
    ::close(client);
    return;
  }
  int one = 1;
  ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  {
    std::lock_guard lock(mu_);
    open_fds_.push_back(client);
    open_fds_.push_back(upstream);
  }
  pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
  char buf[64 * 1024];
  bool open = true;
  while (open && !stopping_.load()) {
    if (::poll(fds, 2, 200) <= 0) continue;
    for (int i = 0; i < 2 && open; ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = ::recv(fds[i].fd, buf, sizeof buf, 0);
      if (n <= 0 || !write_all(fds[1 - i].fd, buf, size_t(n))) open = false;
    }
  }
  std::lock_guard lock(mu_);
  open_fds_.erase(std::remove_if(open_fds_.begin(), open_fds_.end(), [&](int fd) { return fd == client || fd == upstream; }),
                  open_fds_.end());
  ::close(client);
  ::close(upstream);
}

}  // namespace kingest::kafka
