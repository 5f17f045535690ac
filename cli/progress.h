// What a run shows while it works: a bar redrawn in place on a terminal, a log line every
// --progress-s elsewhere, or nothing. Log lines and the bar share the terminal: a log line clears
// the bar's line, is printed, and the bar is drawn again under it, so the two never run together.
//
// Threads: the bar is drawn by the command's thread; log lines come from any thread. Both go
// through one lock.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "absl/status/statusor.h"

namespace kingest::cli {

enum class ProgressMode { kPlain, kBar, kNone };

// "plain", "bar" or "none"; empty: a bar when stderr is a terminal, else plain lines.
absl::StatusOr<ProgressMode> progress_mode(const std::string& flag);
void add_progress_flag(CLI::App& cmd, std::string& mode);

// Draws `line` as the bar (replacing the previous one) on stderr.
void draw_bar(const std::string& line);
// Ends the bar's line (a newline) so what follows starts on its own line. Idempotent.
void end_bar();

// Makes spdlog's default logger write to stdout through the bar-aware sink (colours kept).
void install_bar_aware_logging();

}  // namespace kingest::cli
