// BatchCall: one long-lived BatchAppend call; every append is a correlation id on it. Owned by
// itself while it runs (until OnDone) and held by the Core while it is the current call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "kurrent/internal/core.h"

namespace kingest::kurrent::internal {

// One long-lived BatchAppend call: every append is a correlation id on it.
class BatchCall final : public grpc::ClientBidiReactor<streams::BatchAppendReq, streams::BatchAppendResp>,
                        public std::enable_shared_from_this<BatchCall> {
 public:
  BatchCall(std::shared_ptr<Core> core, std::shared_ptr<Node> node) : core_(std::move(core)), node_(std::move(node)) {}

  void start(const std::string& auth);
  // Queues the op's current part under a new correlation id; false when the call has ended.
  bool send(const OpPtr& op, milliseconds deadline);
  // Sends again what got no answer in time; runs every quarter deadline while the call lives (so a
  // correlation id's deadline is enforced up to a quarter late), instead of a timer per append.
  void sweep();
  // Half-closes once nothing is pending; the call then ends.
  void close();
  [[nodiscard]] bool ended() const {
    std::lock_guard lock(mu_);
    return ended_ || broken_;
  }
  [[nodiscard]] const std::shared_ptr<Node>& node() const { return node_; }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void write_next_locked();
  void release_hold();
  void schedule_sweep();
  struct Pending {
    OpPtr op;
    Clock::time_point due;
  };

  std::shared_ptr<Core> core_;
  std::shared_ptr<Node> node_;
  std::shared_ptr<BatchCall> self_;  // alive until OnDone
  grpc::ClientContext ctx_;
  streams::BatchAppendResp resp_;
  mutable std::mutex mu_;
  std::deque<std::unique_ptr<streams::BatchAppendReq>> writes_;
  bool writing_ = false;
  bool ended_ = false;
  bool closing_ = false;
  bool half_closed_ = false;
  bool broken_ = false;  // a read or write failed: the call is ending
  bool held_ = true;
  std::map<std::pair<int64_t, int64_t>, Pending> pending_;
};

}  // namespace kingest::kurrent::internal
