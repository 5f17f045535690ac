#include "cli/progress.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

namespace kingest::cli {
namespace {

std::mutex& terminal_mu() {
  static std::mutex mu;
  return mu;
}
std::string g_bar;       // guarded by terminal_mu(); empty: no bar on screen
bool g_bar_shown = false;  // likewise

void clear_locked() {
  if (g_bar_shown) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
}

void redraw_locked() {
  if (g_bar_shown) {
    std::fputs(g_bar.c_str(), stderr);
    std::fflush(stderr);
  }
}

// Forwards to the usual coloured stdout sink, with the bar taken down around each line.
class BarAwareSink final : public spdlog::sinks::sink {
 public:
  void log(const spdlog::details::log_msg& msg) override {
    std::lock_guard lock(terminal_mu());
    clear_locked();
    inner_->log(msg);
    inner_->flush();
    redraw_locked();
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 private:
  std::shared_ptr<spdlog::sinks::sink> inner_ = std::make_shared<spdlog::sinks::stdout_color_sink_mt>();
};

}  // namespace

absl::StatusOr<ProgressMode> progress_mode(const std::string& flag) {
  if (flag.empty()) return ::isatty(STDERR_FILENO) == 1 ? ProgressMode::kBar : ProgressMode::kPlain;
  if (flag == "plain") return ProgressMode::kPlain;
  if (flag == "bar") return ProgressMode::kBar;
  if (flag == "none") return ProgressMode::kNone;
  return absl::InvalidArgumentError("--progress '" + flag + "': use plain, bar or none");
}

void add_progress_flag(CLI::App& cmd, std::string& mode) {
  cmd.add_option("--progress", mode,
                 "plain (a log line every --progress-s), bar (redrawn in place on stderr) or none; default: bar on a "
                 "terminal, else plain")
      ->check(CLI::IsMember({"plain", "bar", "none"}));
}

void draw_bar(const std::string& line) {
  std::lock_guard lock(terminal_mu());
  g_bar = "\r\033[K" + line;
  g_bar_shown = true;
  std::fputs(g_bar.c_str(), stderr);
  std::fflush(stderr);
}

void end_bar() {
  std::lock_guard lock(terminal_mu());
  if (!g_bar_shown) return;
  std::fputs("\n", stderr);
  std::fflush(stderr);
  g_bar_shown = false;
  g_bar.clear();
}

void install_bar_aware_logging() {
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("", std::make_shared<BarAwareSink>()));
}

}  // namespace kingest::cli
