// SIGINT/SIGTERM handling shared by the long-running commands: the first signal asks the run to
// stop (drain in-flight work, commit, exit 130); a second one exits at once.
#pragma once

namespace kingest::cli {

void install_interrupt_handlers();
[[nodiscard]] bool interrupted();

}  // namespace kingest::cli
