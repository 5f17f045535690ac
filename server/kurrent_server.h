// KurrentServer: a KurrentDB wire-compatible gRPC server (v1 Streams.Read/Append/BatchAppend and
// ServerFeatures) in front of the embedded event store.
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
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "store/event_store.h"

namespace kingest::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:2113";   // HOST:PORT; port 0 picks a free port (see port())
  bool hide_batch_append = false;          // ServerFeatures omits batchappend, so clients use Append
  std::string server_version = "24.10.0";  // digits and dots (clients reject anything else)
  // KurrentDB's MaxAppendSize before 25.1 (1 MiB); one event at most 16 MiB.
  size_t max_append_size = size_t{1} << 20;
  size_t max_event_size = size_t{16} << 20;
  // Largest gRPC message accepted (a BatchAppend chunk may hold many events).
  int max_receive_message_bytes = 64 << 20;
  // Events per page when a read is streamed out.
  size_t read_page_size = 512;
  std::chrono::milliseconds shutdown_grace{5000};
};

class KurrentServer {
 public:
  static absl::StatusOr<std::unique_ptr<KurrentServer>> start(store::EventStore& store, ServerOptions options);
  virtual ~KurrentServer() = default;

  [[nodiscard]] virtual int port() const = 0;             // the bound port (also when 0 was asked)
  [[nodiscard]] virtual std::string address() const = 0;  // HOST:PORT with the bound port
  // Idempotent; see the lifecycle above.
  virtual void shutdown() = 0;
};

}  // namespace kingest::server
