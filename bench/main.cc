// kurrent-ingest-bench: how fast kurrent-ingest moves events, against the ceilings around it.
#include <pthread.h>

#include <CLI/CLI.hpp>

#include "bench/harness.h"
#include "cli/exit_codes.h"
#include "cli/lock_checks.h"
#include "cli/malloc_options.h"

// The probes allocate as the product does (cli/malloc_options.h).
extern "C" {
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): jemalloc reads this symbol by name
const char* malloc_conf = kingest::cli::kMallocConf;
}

// NOLINTNEXTLINE(bugprone-exception-escape): parse_and_run runs the command inside a catch; what else throws is allocation.
int main(int argc, char** argv) {
  pthread_setname_np(pthread_self(), "ki-bench");
  kingest::cli::turn_off_lock_order_checks();  // as in the product (cli/lock_checks.h)
  CLI::App app{"kurrent-ingest-bench: measure the pipeline against the raw Kafka, sink and store ceilings, "
               "unbatched appends and the per-message Node.js peer, in one run, on a deep and a wide data shape; "
               "print the tables and the ratios",
               "kurrent-ingest-bench"};
  app.require_subcommand(0, 1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  std::function<int()> harness = kingest::bench::add_harness_flags(app);
  std::function<int()> action;
  kingest::bench::register_probes(app, [&](std::function<int()> f) { action = std::move(f); });

  return kingest::cli::parse_and_run(app, argc, argv, log_level, [&] { return action ? action() : harness(); });
}
