// Streams.Append: options, then proposed messages, one append when the client half-closes.
#include "server/internal/server.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kingest::server::internal {
namespace {

class AppendReactor final : public grpc::ServerReadReactor<streams::AppendReq> {
 public:
  AppendReactor(Shared& shared, grpc::CallbackServerContext* ctx, streams::AppendResp* resp)
      : shared_(shared), ctx_(ctx), resp_(resp) {
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      submit();
      return;
    }
    if (!have_options_) {
      if (!req_.has_options())
        return Finish({grpc::StatusCode::INVALID_ARGUMENT, "append: first message must be options"});
      auto expected = expected_of(req_.options());
      if (!expected.ok()) return Finish(to_grpc(expected.status()));
      stream_ = req_.options().stream_identifier().stream_name();
      if (stream_.empty()) return Finish({grpc::StatusCode::INVALID_ARGUMENT, "append: empty stream name"});
      expected_ = *expected;
      have_options_ = true;
    } else {
      if (!req_.has_proposed_message()) {
        return Finish({grpc::StatusCode::INVALID_ARGUMENT, "append: options sent twice"});
      }
      auto ev = to_event(req_.proposed_message());
      if (!ev.ok()) return Finish(to_grpc(ev.status()));
      size_t size = event_size(*ev);
      total_size_ += size;
      if (size > shared_.options.max_event_size || total_size_ > shared_.options.max_append_size) {
        ctx_->AddTrailingMetadata("exception", "maximum-append-size-exceeded");
        ctx_->AddTrailingMetadata("maximum-append-size", std::to_string(shared_.options.max_append_size));
        return Finish({grpc::StatusCode::INVALID_ARGUMENT, "Maximum Append Size Exceeded"});
      }
      events_.push_back(std::move(*ev));
    }
    StartRead(&req_);
  }

  void OnDone() override { delete this; }

 private:
  void submit() {
    if (!have_options_) return Finish({grpc::StatusCode::INVALID_ARGUMENT, "append: no options"});
    // The answer arrives on the store's writer thread; Finish is non-blocking.
    shared_.store.append(stream_, expected_, std::move(events_), [this](const store::AppendResult& r) { answer(r); });
  }

  void answer(const store::AppendResult& r) {
    switch (r.status) {
      case store::AppendStatus::kSuccess: {
        fill_success(r, resp_->mutable_success());
        return Finish(grpc::Status::OK);
      }
      case store::AppendStatus::kWrongExpectedVersion:
        fill_wrong_version(expected_, r.current_revision, resp_->mutable_wrong_expected_version());
        return Finish(grpc::Status::OK);
      case store::AppendStatus::kStreamDeleted:
        ctx_->AddTrailingMetadata("exception", "stream-deleted");
        ctx_->AddTrailingMetadata("stream-name", stream_);
        return Finish(
            {grpc::StatusCode::FAILED_PRECONDITION, absl::StrCat("Event stream '", stream_, "' is deleted.")});
      case store::AppendStatus::kError:
        return Finish({grpc::StatusCode::UNAVAILABLE, r.message});
    }
  }

  Shared& shared_;
  grpc::CallbackServerContext* ctx_;
  streams::AppendResp* resp_;
  streams::AppendReq req_;
  bool have_options_ = false;
  std::string stream_;
  ExpectedRevision expected_;
  std::vector<store::ProposedEvent> events_;
  size_t total_size_ = 0;
};

}  // namespace

grpc::ServerReadReactor<streams::AppendReq>* new_append_reactor(Shared& shared, grpc::CallbackServerContext* ctx,
                                                                streams::AppendResp* resp) {
  return new AppendReactor(shared, ctx, resp);
}

}  // namespace kingest::server::internal
