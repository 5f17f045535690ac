// The exit codes every kurrent-ingest command (and kurrent-ingest-bench) returns; scripts rely on
// them, and the run report's `outcome` names the same ends (pipeline/run_report.h).
#pragma once

namespace kingest::cli {

enum ExitCode : int {
  kExitDone = 0,
  kExitUsage = 2,         // usage or configuration error
  kExitDeadLetters = 3,   // finished, with dead letters
  kExitFatal = 4,         // fatal error
  kExitInterrupted = 130,
};

}  // namespace kingest::cli
