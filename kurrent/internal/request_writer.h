// RequestWriter: the base of the Append and AppendSession calls (append_call.cc, session_call.cc).
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <deque>

namespace kingest::kurrent::internal {

// A client-streaming call that writes a list of requests made up front, the last one with the
// half-close.
template <typename Req>
class RequestWriter : public grpc::ClientWriteReactor<Req> {
 public:
  void OnWriteDone(bool ok) override {
    if (ok) write_next();
  }

 protected:
  void write_next() {
    if (next_ >= reqs_.size()) return;
    const auto& r = reqs_[next_++];
    if (next_ == reqs_.size()) {
      this->StartWriteLast(&r, grpc::WriteOptions());
    } else {
      this->StartWrite(&r);
    }
  }

  std::deque<Req> reqs_;  // stable addresses while written
  size_t next_ = 0;
};

}  // namespace kingest::kurrent::internal
