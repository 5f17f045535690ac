// `kurrent-ingest serve-store`: the embedded event store behind a KurrentDB wire-compatible gRPC
// server (server/), so the official clients (and `run --kurrentdb ...`) can talk to it.
#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "cli/signals.h"
#include "pipeline/run_report.h"
#include "server/kurrent_server.h"
#include "store/event_store.h"

namespace kingest::cli {
namespace {

struct ServeStoreOptions {
  std::string listen = "127.0.0.1:2113";
  std::string db_path;
  bool mem_db = false;
  bool hide_batch_append = false;
  size_t max_append_size = size_t{1} << 20;
  std::string address_file;
};

int run_serve_store(const ServeStoreOptions& o) {
  install_interrupt_handlers();
  if (o.db_path.empty() == !o.mem_db) {
    return usage_error(absl::InvalidArgumentError("give exactly one of --db PATH and --mem-db"));
  }
  auto store = store::EventStore::open({.path = o.db_path, .in_memory = o.mem_db});
  if (!store.ok()) return fatal_error(store.status());
  auto server = server::KurrentServer::start(
      **store, {.listen = o.listen, .hide_batch_append = o.hide_batch_append, .max_append_size = o.max_append_size});
  if (!server.ok()) return usage_error(server.status());
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
            << " (kurrentdb://" << address << "?tls=false); stop with Ctrl-C" << std::endl;
  while (!interrupted()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // In-flight appends are answered before the store closes.
  (*server)->shutdown();
  (*store)->close();
  if (!o.address_file.empty()) std::filesystem::remove(o.address_file);
  return pipeline::kExitDone;
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
  cmd->add_option("--max-append-size", o->max_append_size, "Largest append in bytes (KurrentDB's MaxAppendSize)")
      ->capture_default_str();
  cmd->add_option("--address-file", o->address_file, "Write the bound address (HOST:PORT) to FILE once listening");
  cmd->callback([o, set_action] { set_action([o] { return run_serve_store(*o); }); });
}

}  // namespace kingest::cli
