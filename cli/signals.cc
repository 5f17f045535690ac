#include "cli/signals.h"

#include <csignal>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

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

void install_interrupt_handlers(std::chrono::seconds hard_stop) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (hard_stop.count() > 0) {
    std::thread([hard_stop] {
      while (g_signals.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::this_thread::sleep_for(hard_stop);
      std::fprintf(stderr,
                   "error: still stopping %lld s after the signal: exiting without waiting; work in flight was not "
                   "committed and is read again by the next run\n",
                   static_cast<long long>(hard_stop.count()));
      std::fflush(stdout);
      ::_exit(130);
    }).detach();
  }
}

bool interrupted() { return g_signals.load() > 0; }

}  // namespace kingest::cli
