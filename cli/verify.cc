// `kurrent-ingest verify`: checks that a KurrentDB holds exactly what `generate` produced with the
// same options: per stream the count, order, revisions, ids, types, payloads and metadata. Exit 0
// when it does, 4 when it does not (the first problems are printed).
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "workload/generator.h"
#include "workload/verifier.h"

namespace kingest::cli {
namespace {

struct VerifyOptions {
  WorkloadFlags workload;
  KurrentFlags kurrent;
  IngestFlags ingest;  // only for the client's size limit
};

int run_verify(const VerifyOptions& o) {
  auto gen = o.workload.generator_options();
  if (!gen.ok()) return usage_error(gen.status());
  bool usage_fault = false;
  auto client = connect_kurrent(o.kurrent, o.ingest, std::nullopt, &usage_fault);
  if (!client.ok()) return usage_fault ? usage_error(client.status()) : fatal_error(client.status());
  auto v = workload::verify(*gen, **client);
  for (const auto& p : v.problems) std::cout << "problem: " << p << "\n";
  std::cout << "streams: " << v.streams_checked << ", events: " << v.events_checked << ", problems: " << v.problem_count
            << "\nverified: " << (v.ok ? "true" : "false") << std::endl;
  return v.ok ? kExitDone : kExitFatal;
}

}  // namespace

void register_verify(CLI::App& app, ActionSetter set_action) {
  auto o = std::make_shared<VerifyOptions>();
  auto* cmd = app.add_subcommand("verify", "Check that KurrentDB holds exactly what `generate` produced with the same options");
  add_workload_flags(*cmd, o->workload);
  add_kurrent_flags(*cmd, o->kurrent);
  cmd->callback([o, set_action] { set_action([o] { return run_verify(*o); }); });
}

}  // namespace kingest::cli
