// The client's tests against the project's own server: a KurrentServer on a loopback port over its
// own store (in memory, or a SQLite file that outlives a restart), an event maker, a blocking append
// and a connect that reports its failure. Shared by the kurrent_client_*_test.cc files; the test
// target links ki_server and ki_store.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/testing/eventually.h"
#include "kurrent/kurrent_client.h"
#include "server/kurrent_server.h"
#include "store/event_store.h"

namespace kingest::kurrent::testing {

// A JSON event tagged `tag`, padded with `data_bytes` bytes.
inline EventData event(const std::string& tag, size_t data_bytes = 16) {
  return EventData{.id = Uuid::v4(),
                   .type = "TestEvent",
                   .content_type = "application/json",
                   .data = "{\"tag\":\"" + tag + "\",\"pad\":\"" + std::string(data_bytes, 'x') + "\"}",
                   .metadata = "{\"source\":\"test\"}"};
}

inline AppendOutcome append_sync(Sink& sink, const std::string& stream, ExpectedRevision expected,
                                 std::vector<EventData> events) {
  std::promise<AppendOutcome> p;
  auto f = p.get_future();
  sink.append(AppendRequest{.stream = stream, .expected = expected, .events = std::move(events)},
              [&p](AppendOutcome o) { p.set_value(std::move(o)); });
  return f.get();
}

inline absl::StatusOr<std::unique_ptr<KurrentClient>> try_connect(const std::string& url, ClientOptions o = {}) {
  auto settings = parse_connection_string(url);
  if (!settings.ok()) return settings.status();
  return KurrentClient::connect(*settings, o);
}

// Connects or fails the test (and returns null), naming the URL.
inline std::unique_ptr<KurrentClient> connect_to(const std::string& url, ClientOptions o = {}) {
  auto c = try_connect(url, o);
  EXPECT_TRUE(c.ok()) << url << ": " << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

// One server over its own store: in memory, or the SQLite file `db`. `restart` brings it back on
// the same port (and the same file; an in-memory store starts empty), optionally with other options
// (a leader that became a follower).
class Served {
 public:
  explicit Served(server::ServerOptions o = {}, std::string db = {}) : db_(std::move(db)), options_(std::move(o)) {
    start(0);
  }
  ~Served() { stop(); }
  Served(const Served&) = delete;
  Served& operator=(const Served&) = delete;

  void stop() {
    if (server_) server_->shutdown();
    server_.reset();
    if (store_) store_->close();
    store_.reset();
  }
  void restart() {
    stop();
    start(port_);
  }
  void restart(server::ServerOptions o) {
    options_ = std::move(o);
    restart();
  }

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string address() const { return server_->address(); }
  [[nodiscard]] std::string advertised() const { return server_->advertised_address(); }
  [[nodiscard]] std::string url(const std::string& extra = "") const {
    return "kurrentdb://127.0.0.1:" + std::to_string(port_) + "?tls=false" + extra;
  }
  store::EventStore& store() { return *store_; }

  // The ids in `stream` as this server's store holds them (empty: no such stream).
  std::vector<Uuid> ids(const std::string& stream) {
    std::vector<Uuid> out;
    auto page = store_->read(stream, store::ReadFrom::start(), 1000, store::ReadDirection::kForwards);
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) {
      for (const auto& e : page->events) out.push_back(e.id);
    }
    return out;
  }
  // Writes `count` events to `stream` straight into the store.
  void put(const std::string& stream, int count) {
    std::vector<store::ProposedEvent> evs;
    for (int i = 0; i < count; ++i) {
      evs.push_back({.id = Uuid::v4(), .type = "Seeded", .content_type = "application/json", .data = "{}"});
    }
    ASSERT_EQ(store_->append_sync(stream, ExpectAny{}, evs).status, store::AppendStatus::kSuccess);
  }

 private:
  void start(int port) {
    store_ = store::EventStore::open({.path = db_, .in_memory = db_.empty()}).value();
    server::ServerOptions o = options_;
    o.listen = "127.0.0.1:" + std::to_string(port);
    // A port just given up may take the system a moment to let go of; try again until it does.
    absl::Status last;
    EXPECT_TRUE(kingest::testing::eventually(
        [&] {
          auto s = server::KurrentServer::start(*store_, o);
          if (!s.ok()) {
            last = s.status();
            return false;
          }
          server_ = std::move(*s);
          return true;
        },
        std::chrono::seconds(10), "a listener on " + o.listen, std::chrono::milliseconds(20)))
        << last;
    if (server_) port_ = server_->port();
  }

  std::string db_;
  server::ServerOptions options_;
  std::unique_ptr<store::EventStore> store_;
  std::unique_ptr<server::KurrentServer> server_;
  int port_ = 0;
};

}  // namespace kingest::kurrent::testing
