// Append mode: one Streams.Append call per append.
#include "kurrent/internal/core.h"

#include "kurrent/internal/request_writer.h"

namespace kingest::kurrent::internal {
namespace {

class AppendCall final : public RequestWriter<streams::AppendReq> {
 public:
  AppendCall(std::shared_ptr<Core> core, std::shared_ptr<Node> node, OpPtr op)
      : core_(std::move(core)), node_(std::move(node)), op_(std::move(op)) {}

  void start() {
    auto& first = reqs_.emplace_back();
    first.mutable_options()->mutable_stream_identifier()->set_stream_name(op_->req.stream);
    wire::set_expected(op_->expected, first.mutable_options());
    for (size_t i = op_->begin(); i < op_->end(); ++i) {
      const EventData& e = op_->req.events[i];
      wire::fill_proposed(e, reqs_.emplace_back().mutable_proposed_message());
    }
    core_->prepare(ctx_, core_->deadline());
    core_->call_started();
    node_->streams->async()->Append(&ctx_, &resp_, this);
    write_next();
    StartCall();
  }

  void OnDone(const grpc::Status& status) override {
    core_->append_done(op_, status, ctx_.GetServerTrailingMetadata(), resp_, node_);
    auto core = std::move(core_);
    delete this;
    core->call_ended();
  }

 private:
  std::shared_ptr<Core> core_;
  std::shared_ptr<Node> node_;
  OpPtr op_;
  grpc::ClientContext ctx_;
  streams::AppendResp resp_;
};

}  // namespace

void Core::send_append(const OpPtr& op) { (new AppendCall(shared_from_this(), node(), op))->start(); }

void Core::append_done(const OpPtr& op, const grpc::Status& status, const wire::Trailers& trailers,
                       const streams::AppendResp& resp, const std::shared_ptr<Node>& from) {
  if (status.ok()) return part_done(op, wire::outcome_of(resp));
  act(op, wire::classify(status, trailers), from);
}

}  // namespace kingest::kurrent::internal
