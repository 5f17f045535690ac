// `kurrent-ingest-bench`: the end-to-end harness (harness.cc) and the three ceilings it measures in
// processes of their own (`probe kafka|sink|store`, probes.cc). The product binary `kurrent-ingest` runs
// the broker, the generator, the store and the pipeline; this binary only starts and measures them.
//
//   kurrent-ingest-bench --events 200000 --json bench.json   (scripts/bench passes --peer-dir)
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/commands.h"

namespace kingest::bench {

// Adds the harness's flags to `cmd` (the binary's top level); the returned action runs it with them.
std::function<int()> add_harness_flags(CLI::App& cmd);

// `probe kafka|sink|store`, which the harness starts itself.
void register_probes(CLI::App& app, cli::ActionSetter set_action);

}  // namespace kingest::bench
