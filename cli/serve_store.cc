// `kurrent-ingest serve-store`: the embedded event store behind a KurrentDB wire-compatible gRPC
// server (server/), so the official clients (and `run --kurrentdb ...`) can talk to it; with TLS,
// Basic authentication, gossip and a follower mode for testing a client's connection paths.
#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/ingest_metrics.h"
#include "cli/store_metrics.h"
#include "cli/signals.h"
#include "cli/exit_codes.h"
#include "server/kurrent_server.h"
#include "store/event_store.h"
#include "web/stream_browser.h"

namespace kingest::cli {
namespace {

struct ServeStoreOptions {
  std::string listen = "127.0.0.1:2113";
  std::string db_path;
  bool mem_db = false;
  bool hide_batch_append = false;
  bool hide_append_records = false;
  size_t max_append_size = size_t{1} << 20;
  std::string address_file;
  std::string tls_cert;
  std::string tls_key;
  std::vector<std::string> users;  // NAME:PASSWORD
  std::string users_file;
  std::string advertise;
  std::string follower_of;
  MetricsFlags metrics;
  int64_t metrics_every_s = 10;
  std::string http;  // the stream browser's HOST:PORT (empty: none)
  std::string http_address_file;
};

// The flags as ServerOptions; errors name the flag (and the file).
absl::StatusOr<server::ServerOptions> server_options(const ServeStoreOptions& o) {
  server::ServerOptions so{
      .listen = o.listen,
      .hide_batch_append = o.hide_batch_append,
      .hide_append_records = o.hide_append_records,
      .max_append_size = o.max_append_size};
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return absl::InvalidArgumentError("give both --tls-cert PEM and --tls-key PEM, or neither");
  }
  if (!o.tls_cert.empty()) {
    auto cert = server::read_pem_certificate_chain(o.tls_cert);
    if (!cert.ok()) return absl::InvalidArgumentError(absl::StrCat("--tls-cert: ", cert.status().message()));
    auto key = server::read_pem_private_key(o.tls_key);
    if (!key.ok()) return absl::InvalidArgumentError(absl::StrCat("--tls-key: ", key.status().message()));
    if (auto pair = server::check_tls_pair(*cert, *key); !pair.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-cert ", o.tls_cert, " and --tls-key ", o.tls_key, ": ", pair.message()));
    }
    so.tls_cert_pem = std::move(*cert);
    so.tls_key_pem = std::move(*key);
  }
  for (const auto& text : o.users) {
    auto user = server::parse_user(text);
    if (!user.ok()) return absl::InvalidArgumentError(absl::StrCat("--user: ", user.status().message()));
    so.users.push_back(std::move(*user));
  }
  if (!o.users_file.empty()) {
    auto users = server::read_users_file(o.users_file);
    if (!users.ok()) return absl::InvalidArgumentError(absl::StrCat("--users-file: ", users.status().message()));
    so.users.insert(so.users.end(), users->begin(), users->end());
  }
  auto env_users = server::users_from_environment();
  if (!env_users.ok()) return absl::InvalidArgumentError(env_users.status().message());
  so.users.insert(so.users.end(), env_users->begin(), env_users->end());
  if (!o.advertise.empty()) {
    if (auto e = server::parse_endpoint(o.advertise); !e.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--advertise ", e.status().message()));
    }
    so.advertise = o.advertise;
  }
  if (!o.follower_of.empty()) {
    if (auto e = server::parse_endpoint(o.follower_of); !e.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--follower-of ", e.status().message()));
    }
    so.follower_of = o.follower_of;
  }
  return so;
}

int run_serve_store(const ServeStoreOptions& o) {
  install_interrupt_handlers();
  if (o.db_path.empty() == !o.mem_db) {
    return usage_error(absl::InvalidArgumentError("give exactly one of --db PATH and --mem-db"));
  }
  auto options = server_options(o);
  if (!options.ok()) return usage_error(options.status());
  const bool tls = !options->tls_cert_pem.empty();
  const size_t user_count = options->users.size();
  if (!o.metrics.listen.empty()) {
    if (auto hp = metrics::parse_listen(o.metrics.listen); !hp.ok()) return usage_error(hp.status());
  }
  auto store = store::EventStore::open({.path = o.db_path, .in_memory = o.mem_db});
  if (!store.ok()) return fatal_error(store.status());
  // The server writes and reads through the metered store (counted and timed on the way).
  MeteredEventStore metered(**store, o.mem_db ? std::string() : o.db_path);
  metrics::Registry registry;
  metrics::add_process_metrics(registry);
  metered.add_metrics(registry);
  auto server = server::KurrentServer::start(metered, std::move(*options));
  if (!server.ok()) return usage_error(server.status());
  std::unique_ptr<web::StreamBrowser> browser;
  if (!o.http.empty()) {
    auto b = web::StreamBrowser::start(**store, o.http, {.db_path = o.mem_db ? std::string() : o.db_path});
    if (!b.ok()) return usage_error(b.status());
    browser = std::move(*b);
    if (!o.http_address_file.empty()) {
      std::string tmp = o.http_address_file + ".tmp";
      {
        std::ofstream out(tmp, std::ios::trunc);
        out << browser->address() << "\n";
        if (!out.flush()) {
          return usage_error(absl::InvalidArgumentError("cannot write --http-address-file " + o.http_address_file));
        }
      }
      std::filesystem::rename(tmp, o.http_address_file);
    }
  }
  const std::string address = (*server)->address();
  if (!o.address_file.empty()) {
    // Written whole, then renamed: a reader never sees half an address.
    std::string tmp = o.address_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << address << "\n";
      if (!out.flush()) return usage_error(absl::InvalidArgumentError("cannot write --address-file " + o.address_file));
    }
    std::filesystem::rename(tmp, o.address_file);
  }
  std::cout << "kurrentdb: serving " << (o.mem_db ? std::string("an in-memory store") : o.db_path) << " on " << address
            << " (kurrentdb://" << address << (tls ? "?tls=true, trusting " + o.tls_cert : std::string("?tls=false"))
            << ")";
  if (user_count > 0) std::cout << "; Basic authentication, " << user_count << " user(s), streams closed to anonymous";
  if (!o.follower_of.empty()) std::cout << "; follower of " << o.follower_of << " (writes answer not-leader)";
  if (!o.advertise.empty()) std::cout << "; gossip advertises " << o.advertise;
  if (browser) std::cout << "; stream browser on " << browser->url();
  std::cout << "; stop with Ctrl-C" << std::endl;
  auto metrics_out = start_metrics(registry, o.metrics, std::chrono::seconds(o.metrics_every_s));
  if (!metrics_out.ok()) return usage_error(metrics_out.status());
  while (!interrupted()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // SIGINT/SIGTERM: in-flight appends are answered (and committed) before the store closes, so no
  // acknowledged write is lost.
  if (browser) browser->stop();
  (*server)->shutdown();
  (*store)->close();
  if (*metrics_out) {
    if (auto st = (*metrics_out)->stop(); !st.ok()) std::cerr << "error: " << st.message() << "\n";
  }
  if (!o.http_address_file.empty()) std::filesystem::remove(o.http_address_file);
  if (!o.address_file.empty()) std::filesystem::remove(o.address_file);
  return kExitDone;
}

}  // namespace

void register_serve_store(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<ServeStoreOptions>();
  auto* cmd = app.add_subcommand("serve-store", "Serve the embedded event store over KurrentDB's gRPC protocol");
  cmd->add_option("--listen", o->listen, "HOST:PORT to listen on (port 0 picks a free one)")->capture_default_str();
  auto* db = cmd->add_option("--db", o->db_path, "SQLite database file of the store");
  auto* mem = cmd->add_flag("--mem-db", o->mem_db, "Keep the store in memory (nothing persists)");
  db->excludes(mem);
  cmd->add_flag("--hide-batch-append", o->hide_batch_append,
                "Leave BatchAppend out of ServerFeatures, so clients use Append");
  cmd->add_flag("--hide-append-records", o->hide_append_records,
                "Leave AppendRecords out of ServerFeatures (a server before KurrentDB 26.1), so --append-mode auto "
                "uses BatchAppend");
  cmd->add_option("--max-append-size", o->max_append_size, "Largest append in bytes (KurrentDB's MaxAppendSize)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30))
      ->capture_default_str();
  cmd->add_option("--address-file", o->address_file, "Write the bound address (HOST:PORT) to FILE once listening");
  cmd->add_option("--tls-cert", o->tls_cert, "PEM certificate chain: serve TLS (with --tls-key)");
  cmd->add_option("--tls-key", o->tls_key, "PEM private key of --tls-cert (unencrypted)");
  cmd->add_option(
      "--user", o->users,
      "NAME:PASSWORD for Basic authentication (repeatable; visible in ps: prefer --users-file or " +
          std::string(server::kUsersVariable) + "); with any, anonymous callers cannot use streams");
  cmd->add_option("--users-file", o->users_file,
                  "FILE of NAME:PASSWORD lines ('#' comments), added to --user and to " +
                      std::string(server::kUsersVariable) + " (one NAME:PASSWORD a line)");
  cmd->add_option("--advertise", o->advertise, "HOST:PORT that Gossip.Read reports (default: the bound address)");
  cmd->add_option("--follower-of", o->follower_of,
                  "Act as a follower of the leader at HOST:PORT: writes answer not-leader, gossip lists both");
  add_metrics_flags(*cmd, o->metrics, "--metrics-every-s");
  cmd->add_option("--metrics-every-s", o->metrics_every_s, "Seconds between rewrites of --metrics-textfile")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600}));
  cmd->add_option("--http", o->http,
                  "Serve the stream browser (web UI and JSON API) on HOST:PORT, or PORT on 127.0.0.1; port 0 picks a "
                  "free one");
  cmd->add_option("--http-address-file", o->http_address_file,
                  "Write the browser's bound address (HOST:PORT) to FILE once listening");
  cmd->callback([o, set_action] { set_action([o] { return run_serve_store(*o); }); });
}

}  // namespace kingest::cli
