// Streams.Read of a stream or of $all, streamed out page by page.
#include "server/internal/server.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kingest::server::internal {
namespace {

class ReadReactor final : public grpc::ServerWriteReactor<streams::ReadResp> {
 public:
  ReadReactor(Shared& shared, grpc::CallbackServerContext* ctx, const streams::ReadReq& req)
      : shared_(shared), ctx_(ctx) {
    const auto& o = req.options();
    if (o.count_option_case() != streams::ReadReq::Options::kCount) {
      fail({grpc::StatusCode::UNIMPLEMENTED, "read: subscriptions are not served"});
      return;
    }
    remaining_ = o.count();
    uuid_as_string_ = o.uuid_option().has_string();
    if (o.has_all()) {
      start_all(o);
      return;
    }
    if (!o.has_stream()) {
      fail({grpc::StatusCode::INVALID_ARGUMENT, "read: options name neither a stream nor $all"});
      return;
    }
    stream_ = o.stream().stream_identifier().stream_name();
    if (stream_.empty()) {
      fail({grpc::StatusCode::INVALID_ARGUMENT, "read: empty stream name"});
      return;
    }
    direction_ = o.read_direction() == streams::ReadReq::Options::Backwards ? store::ReadDirection::kBackwards
                                                                            : store::ReadDirection::kForwards;
    report_last_ = o.control_option().compatibility() >= 1;
    using S = streams::ReadReq::Options::StreamOptions;
    switch (o.stream().revision_option_case()) {
      case S::kRevision:
        from_ = store::ReadFrom::at(StreamRevision{o.stream().revision()});
        break;
      case S::kEnd:
        from_ = store::ReadFrom::end();
        break;
      default:
        from_ = store::ReadFrom::start();
        break;
    }
    next_page();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::CANCELLED);
    next_message();
  }

  void OnDone() override { delete this; }

 private:
  void fail(const grpc::Status& s) { Finish(s); }

  // $all: forwards, from the start or from a position (inclusive, as KurrentDB), no filter.
  void start_all(const streams::ReadReq::Options& o) {
    if (o.read_direction() == streams::ReadReq::Options::Backwards) {
      return fail({grpc::StatusCode::UNIMPLEMENTED, "read: $all backwards is not served"});
    }
    if (o.filter_option_case() == streams::ReadReq::Options::kFilter) {
      return fail({grpc::StatusCode::UNIMPLEMENTED, "read: filtered $all reads are not served"});
    }
    all_ = true;
    using A = streams::ReadReq::Options::AllOptions;
    switch (o.all().all_option_case()) {
      case A::kPosition: {
        // The store reads after a position; every event has a position > 0.
        uint64_t p = o.all().position().commit_position();
        after_position_ = p == 0 ? 0 : p - 1;
        break;
      }
      case A::kEnd:
        exhausted_ = true;  // nothing lies after the end of the log
        break;
      default:
        after_position_ = 0;
        break;
    }
    next_all_page();
  }

  void next_all_page() {
    if (remaining_ == 0 || exhausted_) return Finish(grpc::Status::OK);
    uint64_t n = std::min<uint64_t>(remaining_, shared_.options.read_page_size);
    auto page = shared_.store.read_all(after_position_, n);
    if (!page.ok()) return Finish(to_grpc(page.status()));
    page_ = std::move(*page);
    index_ = 0;
    if (page_.size() < n) exhausted_ = true;
    if (!page_.empty()) after_position_ = page_.back().position;
    remaining_ -= page_.size();
    next_message();
  }

  // Reads the next page from the store (a local SQLite read on pooled connections: short) and
  // streams it out one message per write.
  void next_page() {
    if (remaining_ == 0 || exhausted_) return finish_read();
    uint64_t n = std::min<uint64_t>(remaining_, shared_.options.read_page_size);
    auto page = shared_.store.read(stream_, from_, n, direction_);
    if (!page.ok()) return Finish(to_grpc(page.status()));
    if (page->stream_deleted) {
      ctx_->AddTrailingMetadata("exception", "stream-deleted");
      ctx_->AddTrailingMetadata("stream-name", stream_);
      return Finish({grpc::StatusCode::FAILED_PRECONDITION, absl::StrCat("Event stream '", stream_, "' is deleted.")});
    }
    if (!page->stream_found) {
      if (first_page_) {
        msg_.Clear();
        msg_.mutable_stream_not_found()->mutable_stream_identifier()->set_stream_name(stream_);
        not_found_ = true;
        StartWrite(&msg_);
        return;
      }
      return finish_read();
    }
    first_page_ = false;
    page_ = std::move(page->events);
    index_ = 0;
    if (page_.size() < n) exhausted_ = true;
    if (!page_.empty()) {
      const auto last = page_.back().revision.value();
      if (direction_ == store::ReadDirection::kForwards) {
        from_ = store::ReadFrom::at(StreamRevision{last + 1});
      } else if (last == 0) {
        exhausted_ = true;
      } else {
        from_ = store::ReadFrom::at(StreamRevision{last - 1});
      }
    }
    remaining_ -= page_.size();
    next_message();
  }

  void next_message() {
    if (not_found_ || finished_) {
      finished_ = true;
      return Finish(grpc::Status::OK);
    }
    if (index_ < page_.size()) {
      write_event(page_[index_++]);
      return;
    }
    if (all_) return next_all_page();
    next_page();
  }

  void finish_read() {
    if (report_last_ && !last_sent_) {
      last_sent_ = true;
      auto last = shared_.store.read(stream_, store::ReadFrom::end(), 1, store::ReadDirection::kBackwards);
      if (last.ok() && last->stream_found && !last->events.empty()) {
        msg_.Clear();
        msg_.set_last_stream_position(last->events.front().revision.value());
        finished_ = true;
        StartWrite(&msg_);
        return;
      }
    }
    Finish(grpc::Status::OK);
  }

  void write_event(const store::RecordedEvent& e) {
    msg_.Clear();
    auto* read_event = msg_.mutable_event();
    auto* r = read_event->mutable_event();
    to_proto(e.id, r->mutable_id(), uuid_as_string_);
    r->mutable_stream_identifier()->set_stream_name(e.stream);
    r->set_stream_revision(e.revision.value());
    r->set_prepare_position(e.position);
    r->set_commit_position(e.position);
    auto& md = *r->mutable_metadata();
    md["type"] = e.type;
    md["content-type"] = e.content_type;
    md["created"] = std::to_string(e.created_ticks);
    r->set_custom_metadata(e.metadata);
    r->set_data(e.data);
    read_event->set_commit_position(e.position);
    StartWrite(&msg_);
  }

  Shared& shared_;
  grpc::CallbackServerContext* ctx_;
  std::string stream_;
  store::ReadDirection direction_ = store::ReadDirection::kForwards;
  store::ReadFrom from_;
  uint64_t remaining_ = 0;
  bool uuid_as_string_ = false;
  bool report_last_ = false;
  bool first_page_ = true;
  bool exhausted_ = false;
  bool not_found_ = false;
  bool last_sent_ = false;
  bool finished_ = false;
  bool all_ = false;             // reading $all
  uint64_t after_position_ = 0;  // $all: the next page starts after this position
  std::vector<store::RecordedEvent> page_;
  size_t index_ = 0;
  streams::ReadResp msg_;
};

}  // namespace

grpc::ServerWriteReactor<streams::ReadResp>* new_read_reactor(Shared& shared, grpc::CallbackServerContext* ctx,
                                                              const streams::ReadReq& req) {
  return new ReadReactor(shared, ctx, req);
}

}  // namespace kingest::server::internal
