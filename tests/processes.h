// Child processes for the integration tests, and reading the files they write: a shell command
// line or `kurrent-ingest ARGS` (KI_BINARY, set by tests/CMakeLists.txt) with its output appended to
// a file, waited for with a deadline and killed when the test lets go of it.
//
// Threads: the test's thread only.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/testing/eventually.h"

namespace kingest::testing {

// A child process running the shell command line `cmdline` through sh, its output appended to
// `out`. `cmdline` starts with `exec` when the signals are meant for the command, not for sh.
class ShellProcess {
 public:
  ShellProcess(const std::string& cmdline, const std::string& out) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string cmd = cmdline + " >> " + out + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      ::_exit(127);
    }
  }
  ~ShellProcess() {
    if (pid_ > 0) kill(SIGKILL);
  }
  ShellProcess(const ShellProcess&) = delete;
  ShellProcess& operator=(const ShellProcess&) = delete;

  // Exit code (or 128 + signal), waiting up to `timeout`; -1 when still running.
  int wait(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (std::chrono::steady_clock::now() >= end) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a child's exit, not waiting for a result
    }
    return code_;
  }
  // Sends `sig` and waits up to a minute for the exit; the exit code as `wait` gives it.
  int kill(int sig) {
    if (pid_ <= 0) return code_;
    ::kill(pid_, sig);
    return wait(std::chrono::seconds(60));
  }
  // Sends `sig` and returns at once.
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }

 private:
  pid_t pid_ = -1;
  int code_ = -1;
};

// `kurrent-ingest ARGS`, behind `shell_prefix` (environment variables, limits) when one is given.
class Process : public ShellProcess {
 public:
  Process(const std::string& args, const std::string& out, const std::string& shell_prefix = "")
      : ShellProcess(shell_prefix + " exec " + std::string(KI_BINARY) + " " + args, out) {}
};

inline std::string slurp(const std::string& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The first line of `file` once it has one, or "" after `timeout`.
inline std::string read_line(const std::string& file, std::chrono::milliseconds timeout) {
  std::string line;
  const bool found = eventually(
      [&] {
        std::ifstream in(file);
        return std::getline(in, line) && !line.empty();
      },
      timeout);
  return found ? line : std::string();
}

// Occurrences of `what` in `text`.
inline size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace kingest::testing
