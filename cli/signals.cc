#include "cli/signals.h"

#include <csignal>
#include <unistd.h>

#include <atomic>

namespace kingest::cli {
namespace {

std::atomic<int> g_signals{0};

void on_signal(int) {
  if (g_signals.fetch_add(1) >= 1) {
    static const char kMsg[] = "\nsecond interrupt: exiting now\n";
    (void)!::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(130);
  }
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_signals.load() > 0; }

}  // namespace kingest::cli
