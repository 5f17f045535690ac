// kurrent-ingest: moves domain events from Kafka into KurrentDB, in batches, in order, once.
#include <pthread.h>

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/config.h"
#include "cli/progress.h"
#include "cli/exit_codes.h"
#include "cli/lock_checks.h"
#include "cli/malloc_options.h"

// jemalloc's options (cli/malloc_options.h says why each).
extern "C" {
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): jemalloc reads this symbol by name
const char* malloc_conf = kingest::cli::kMallocConf;
}

// NOLINTNEXTLINE(bugprone-exception-escape): the commands are run inside a catch; what else throws is allocation.
int main(int argc, char** argv) {
  pthread_setname_np(pthread_self(), "ki-main");
  kingest::cli::turn_off_lock_order_checks();  // before the first lock gRPC takes (cli/lock_checks.h)
  CLI::App app{"kurrent-ingest: batch ingestion of domain events from Kafka into KurrentDB (EventStoreDB)",
               "kurrent-ingest"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kurrent-ingest 0.1.0");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  std::function<int()> action;
  auto set_action = [&](std::function<int()> f) { action = std::move(f); };
  kingest::cli::register_demo(app, set_action);
  kingest::cli::register_broker(app, set_action);
  kingest::cli::register_generate(app, set_action);
  kingest::cli::register_serve_store(app, set_action);
  kingest::cli::register_run(app, set_action);
  kingest::cli::register_verify(app, set_action);
  kingest::cli::register_read(app, set_action);
  kingest::cli::register_streams(app, set_action);
  kingest::cli::register_audit(app, set_action);
  kingest::cli::register_dlq(app, set_action);
  kingest::cli::register_sandbox(app, set_action);
  kingest::cli::add_config_flags(app);

  std::vector<std::string> args(argv + 1, argv + argc);
  auto expanded = kingest::cli::expand_config(app, args);
  if (!expanded.ok()) {
    std::cerr << "error: " << expanded.status().message() << "\n";
    return kingest::cli::kExitUsage;
  }
  // CLI11 takes the arguments last-first.
  std::vector<std::string> reversed(expanded->rbegin(), expanded->rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kingest::cli::kExitUsage;
  }
  if (auto printed = kingest::cli::print_config_requested(app); !printed.empty()) {
    std::cout << printed;
    return kingest::cli::kExitDone;
  }
  kingest::cli::install_bar_aware_logging();
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  try {
    return action ? action() : kingest::cli::kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kingest::cli::kExitFatal;
  }
}
