#include "pipeline/dead_letter.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/json_writer.h"

namespace kingest::pipeline {
namespace {

// An exclusive advisory lock on the whole file for a scope (every kurrent-ingest process takes it).
class FileLock {
 public:
  explicit FileLock(int fd) : fd_(fd) {
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~FileLock() { ::flock(fd_, LOCK_UN); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

}  // namespace

std::string base64_encode(std::string_view in) {
  static constexpr char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
    out.push_back(k[v >> 18]);
    out.push_back(k[(v >> 12) & 63]);
    out.push_back(k[(v >> 6) & 63]);
    out.push_back(k[v & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out.push_back(k[v >> 18]);
    out.push_back(k[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? k[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string dead_letter_to_json(const DeadLetter& d) {
  JsonWriter w;
  w.begin_object();
  w.key("reason").value(d.reason);
  w.key("detail").value(d.detail);
  w.key("topic").value(d.topic);
  w.key("partition").value(int64_t{d.partition});
  w.key("offset").value(d.offset);
  w.key("timestamp_ms").value(d.timestamp_ms);
  if (d.key_null) {
    w.key("key").null();
  } else if (is_valid_utf8(d.key)) {
    w.key("key").value(d.key);
  } else {
    w.key("key_base64").value(base64_encode(d.key));
  }
  if (!d.stream.empty()) w.key("stream").value(d.stream);
  if (!d.content_type.empty()) w.key("content_type").value(d.content_type);
  // One lossless form only: a lossy `value` beside `value_base64` would be the one a reader (or
  // `dlq replay`) takes.
  if (is_valid_utf8(d.value)) {
    w.key("value").value(d.value);
  } else {
    w.key("value_base64").value(base64_encode(d.value));
  }
  w.end_object();
  return w.take();
}

absl::StatusOr<std::unique_ptr<NdjsonDeadLetterFile>> NdjsonDeadLetterFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError("dead-letter file " + path + ": " + std::strerror(errno));
  }
  std::unique_ptr<NdjsonDeadLetterFile> f(new NdjsonDeadLetterFile());
  f->fd_ = fd;
  f->path_ = path;
  // Several processes may share the file (members of one group): each holds the lock while it
  // writes, so a partial last line seen under the lock is a crash's, never a live write.
  FileLock lock(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return absl::InvalidArgumentError("dead-letter file " + path + ": " + std::strerror(errno));
  // The end of the last complete line: scanned backwards from the end of the file.
  uint64_t end = uint64_t(st.st_size);
  char buf[65536];
  bool found = end == 0;
  for (uint64_t at = end; at > 0 && !found;) {
    const uint64_t from = at > sizeof buf ? at - sizeof buf : 0;
    ssize_t n = ::pread(fd, buf, size_t(at - from), off_t(from));
    if (n != ssize_t(at - from)) {
      return absl::InvalidArgumentError("dead-letter file " + path + ": read: " +
                                        (n < 0 ? std::strerror(errno) : "short read"));
    }
    for (ssize_t i = n; i > 0 && !found; --i) {
      if (buf[i - 1] == '\n') {
        end = from + uint64_t(i);
        found = true;
      }
    }
    at = from;
    if (!found && at == 0) end = 0;
  }
  if (end < uint64_t(st.st_size)) {
    if (::ftruncate(fd, off_t(end)) != 0 || ::fsync(fd) != 0) {
      return absl::InvalidArgumentError("dead-letter file " + path + ": cutting off its partial last line: " +
                                        std::strerror(errno));
    }
    f->repaired_bytes_ = uint64_t(st.st_size) - end;
    spdlog::warn("dead-letter file {}: cut off a partial last line of {} bytes at offset {} (left by a write that "
                 "did not finish; its offsets were never committed, so the letter is written again)",
                 path, f->repaired_bytes_, end);
  }
  return f;
}

NdjsonDeadLetterFile::~NdjsonDeadLetterFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status NdjsonDeadLetterFile::write(const std::vector<DeadLetter>& letters) {
  if (letters.empty()) return absl::OkStatus();
  std::string text;
  for (const auto& d : letters) {
    text += dead_letter_to_json(d);
    text.push_back('\n');
  }
  std::lock_guard lock(mu_);
  FileLock file_lock(fd_);
  // Whole lines or nothing: a failed write or fsync cuts the file back to where this write began,
  // so that the next write (or run) never glues a record onto a partial one.
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    return absl::UnavailableError("dead-letter file " + path_ + ": " + std::strerror(errno));
  }
  const off_t start = st.st_size;
  auto fail = [&](const std::string& what, int err) {
    std::string message = "dead-letter file " + path_ + ": " + what + ": " + std::strerror(err);
    if (::ftruncate(fd_, start) != 0 || ::fdatasync(fd_) != 0) {
      message += "; cutting the partial record off failed too (" + std::string(std::strerror(errno)) +
                 "), the next open repairs it";
    }
    return absl::UnavailableError(message);
  };
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd_, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write", errno);
    }
    off += size_t(n);
  }
  if (::fdatasync(fd_) != 0) return fail("fsync", errno);
  return absl::OkStatus();
}

absl::Status TeeDeadLetters::write(const std::vector<DeadLetter>& letters) {
  for (auto* s : sinks_) {
    if (auto st = s->write(letters); !st.ok()) return st;
  }
  return absl::OkStatus();
}

std::string TeeDeadLetters::describe() const {
  std::string out;
  for (auto* s : sinks_) out += (out.empty() ? "" : " and ") + s->describe();
  return out;
}

}  // namespace kingest::pipeline
