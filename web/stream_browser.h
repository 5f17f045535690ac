// The stream browser: a small web UI and JSON API over the embedded store's read API, served by
// `serve-store --http HOST:PORT` (and by any command that holds a store).
//
// Pages (server-rendered HTML, no script needed):
//   /                      the streams, with counts, last revision and time; ?prefix= searches by prefix
//   /streams/NAME          one stream's events, newest first (?from=REV&count=N pages through it), with
//                          pretty data and metadata; $correlationId / $causationId link to their events
//   /events/ID             one event by id
//   /stats                 events, streams, append rate, database size
// JSON: /api/streams, /api/streams/NAME, /api/events/ID, /api/stats (same parameters).
//
// Threads: the HTTP server runs its own threads; an index of streams and event ids is kept up to
// date by one refresh thread that reads $all forwards from where it stopped (once a second, and
// before each answer). Lifecycle: `start` → use → `stop` (or destruction); the store must outlive it.
//
//   auto browser = web::StreamBrowser::start(*store, "127.0.0.1:2114", {.db_path = path}).value();
//   std::cout << browser->url();
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "store/event_store.h"

namespace kingest::web {

struct BrowserOptions {
  std::string db_path;  // for the database size on /stats (empty: an in-memory store)
};

class StreamBrowser {
 public:
  // `listen`: HOST:PORT, or PORT alone for 127.0.0.1 (loopback); port 0 picks a free one.
  static absl::StatusOr<std::unique_ptr<StreamBrowser>> start(store::EventStore& store, const std::string& listen,
                                                              BrowserOptions options = {});
  virtual ~StreamBrowser() = default;
  [[nodiscard]] virtual std::string address() const = 0;  // HOST:PORT bound
  [[nodiscard]] std::string url() const { return "http://" + address() + "/"; }
  virtual void stop() = 0;  // idempotent
};

}  // namespace kingest::web
