#include "pipeline/dead_letter.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/json_writer.h"

namespace kingest::pipeline {

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
  w.key("key").value(d.key);
  if (!d.stream.empty()) w.key("stream").value(d.stream);
  w.key("value").value(d.value);
  w.key("value_base64").value(base64_encode(d.value));
  w.end_object();
  return w.take();
}

absl::StatusOr<std::unique_ptr<NdjsonDeadLetterFile>> NdjsonDeadLetterFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError("dead-letter file " + path + ": " + std::strerror(errno));
  }
  std::unique_ptr<NdjsonDeadLetterFile> f(new NdjsonDeadLetterFile());
  f->fd_ = fd;
  f->path_ = path;
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
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd_, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError("dead-letter file " + path_ + ": " + std::strerror(errno));
    }
    off += size_t(n);
  }
  if (::fdatasync(fd_) != 0) {
    return absl::UnavailableError("dead-letter file " + path_ + ": fsync: " + std::strerror(errno));
  }
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
