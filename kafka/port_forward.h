// A TCP port forwarder on loopback: connections to `listen` are relayed byte for byte to `target`.
// It gives the embedded Kafka (whose mock brokers bind ephemeral ports) a fixed bootstrap address
// such as 127.0.0.1:9092: a client bootstraps through it, then reaches the brokers at the
// addresses their metadata advertises (also on loopback).
//
// Threads: one accepting thread, one relay thread per connection. Lifecycle: start → stop (or
// destruction), which closes the listener and every relayed connection and joins the threads.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace kingest::kafka {

class PortForward {
 public:
  // `listen` is HOST:PORT (port 0 picks a free one; `localhost` listens on 127.0.0.1 and, when
  // available, ::1 too); `target` is the IPv4 HOST:PORT to relay to.
  static absl::StatusOr<std::unique_ptr<PortForward>> start(const std::string& listen, const std::string& target);
  ~PortForward();
  PortForward(const PortForward&) = delete;
  PortForward& operator=(const PortForward&) = delete;

  // The bound address, HOST:PORT.
  [[nodiscard]] const std::string& address() const { return address_; }
  void stop();

 private:
  PortForward() = default;
  void accept_loop();
  void relay(int client);

  std::vector<int> listeners_;
  std::string address_;
  std::string target_host_;
  int target_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> relays_;  // guarded by mu_
  std::vector<int> open_fds_;        // guarded by mu_: shut down on stop
};

}  // namespace kingest::kafka
