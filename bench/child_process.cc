#include "bench/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <thread>

#include "cli/ingest_session.h"
#include "cli/signals.h"

namespace kingest::bench {

using cli::cpu_seconds;
using cli::interrupted;

namespace {

ChildExit exit_of(int status, const rusage& ru) {
  ChildExit e;
  e.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  e.cpu_s = cpu_seconds(ru);
  e.peak_rss_mib = double(ru.ru_maxrss) / 1024.0;
  return e;
}

}  // namespace

absl::StatusOr<ChildProcess> ChildProcess::spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("no command to start");
  int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return absl::InvalidArgumentError("cannot open " + log_path + ": " + std::strerror(errno));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    ::close(log);
    return absl::InternalError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);  // its own group: Ctrl-C reaches the parent, which stops it in order
    int null = ::open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    execvp(args[0], args.data());
    dprintf(2, "cannot start %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  ::close(log);
  return ChildProcess(pid, log_path);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), log_path_(std::move(other.log_path_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) stop();
    pid_ = std::exchange(other.pid_, -1);
    log_path_ = std::move(other.log_path_);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) stop(std::chrono::seconds(5));
}

std::optional<ChildExit> ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return ChildExit{};
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    rusage ru{};
    pid_t r = wait4(pid_, &status, WNOHANG, &ru);
    if (r == pid_) {
      pid_ = -1;
      return exit_of(status, ru);
    }
    if (r < 0 && errno != EINTR) {
      pid_ = -1;
      return ChildExit{};
    }
    if (interrupted() || std::chrono::steady_clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

ChildExit ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return ChildExit{};
  kill(pid_, SIGTERM);
  const auto until = std::chrono::steady_clock::now() + grace;
  for (;;) {
    int status = 0;
    rusage ru{};
    pid_t r = wait4(pid_, &status, WNOHANG, &ru);
    if (r == pid_ || (r < 0 && errno != EINTR)) {
      pid_ = -1;
      return r > 0 ? exit_of(status, ru) : ChildExit{};
    }
    if (std::chrono::steady_clock::now() >= until) {
      kill(pid_, SIGKILL);
      r = wait4(pid_, &status, 0, &ru);
      pid_ = -1;
      return r > 0 ? exit_of(status, ru) : ChildExit{};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string ChildProcess::log_tail(size_t lines) const {
  std::ifstream in(log_path_);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += "  | " + l + "\n";
  return out;
}

absl::StatusOr<std::string> wait_for_file_line(const std::string& path, std::chrono::milliseconds timeout,
                                               ChildProcess* writer) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until && !interrupted()) {
    std::ifstream in(path);
    std::string line;
    if (in && std::getline(in, line) && !line.empty()) return line;
    if (writer != nullptr) {
      if (auto gone = writer->wait(std::chrono::milliseconds(0))) {
        return absl::InternalError("process ended (exit " + std::to_string(gone->exit_code) + ") before writing " +
                                   path + ":\n" + writer->log_tail());
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError("no " + path + " after " + std::to_string(timeout.count() / 1000) + " s" +
                                     (writer ? ":\n" + writer->log_tail() : std::string()));
}

}  // namespace kingest::bench
