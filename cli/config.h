// Job files: `--config FILE` (TOML) for every command. Keys are the command's flags without the
// leading dashes (`brokers = "..."`, `batch-max-events = 4096`, lists for repeatable flags); a flag
// given on the command line overrides the file's key; an unknown key is an error naming the key
// and its line; `${NAME}` in a string is replaced by the environment variable NAME, so secrets stay
// out of the file. `--print-config` prints the effective configuration (file, flags and defaults)
// as TOML with passwords masked, and exits.
//
//   # nightly.toml
//   brokers = "kafka-1:9092"
//   topics = ["system-events", "task-events"]
//   kurrent = "kurrentdb://admin:${KURRENT_PASSWORD}@db:2113?tls=true"
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kingest::cli {

// Adds --config FILE and --print-config to every subcommand of `app`.
void add_config_flags(CLI::App& app);

// The command line with the --config file's keys put in as flags (after the subcommand name,
// before the user's own flags; keys whose flag the user gave are left out). `args` excludes the
// program name. Errors name the file, the line and the key (exit 2).
absl::StatusOr<std::vector<std::string>> expand_config(CLI::App& app, const std::vector<std::string>& args);

// When the parsed subcommand asked for --print-config: its effective configuration, else empty.
std::string print_config_requested(CLI::App& app);

// Replaces the password of `scheme://user:password@` and the value of any `...password=VALUE`
// with ****.
std::string mask_secrets(const std::string& text);

}  // namespace kingest::cli
