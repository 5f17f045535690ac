// SIGINT/SIGTERM handling shared by the long-running commands: the first signal asks the run to
// stop (drain in-flight work, commit, exit 130); a second one exits at once.
#pragma once

#include <chrono>

namespace kingest::cli {

// With a `hard_stop` above zero, a process still running that long after the first signal exits
// 130 anyway: whatever the owner's thread is waiting on (a store or brokers that do not answer),
// a signal takes effect within a bound. Only for commands whose unfinished work is safe to abandon
// (replay, run: it is not committed, so the next run reads it again).
void install_interrupt_handlers(std::chrono::seconds hard_stop = std::chrono::seconds(0));
[[nodiscard]] bool interrupted();

}  // namespace kingest::cli
