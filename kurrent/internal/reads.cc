// Reads: one stream forwards or backwards (retried and redirected as appends are), and many
// stream tails at once with their reads overlapped on the channel.
#include "kurrent/internal/core.h"

#include "absl/strings/numbers.h"

#include <thread>

namespace kingest::kurrent::internal {
namespace {

struct TailBatch {
  std::mutex mu;
  std::condition_variable cv;
  size_t outstanding = 0;
};

class ReadTailCall final : public grpc::ClientReadReactor<streams::ReadResp> {
 public:
  ReadTailCall(Core& core, const std::shared_ptr<Node>& node, const std::string& stream, TailBatch& batch,
               std::optional<StreamTail>& out)
      : batch_(batch), out_(out) {
    req_ = Core::read_request(stream, /*backwards=*/true, std::nullopt, 1);
    core.prepare(ctx_, core.deadline(), /*requires_leader=*/true);
    node->streams->async()->Read(&ctx_, &req_, this);
    StartRead(&resp_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (resp_.content_case() == streams::ReadResp::kEvent && !event_) {
      event_ = Core::recorded(resp_.event().event());
      if (!event_) bad_ = true;
    }
    StartRead(&resp_);
  }

  void OnDone(const grpc::Status& status) override {
    if (status.ok() && !bad_) {
      std::vector<RecordedEventData> events;
      if (event_) events.push_back(std::move(*event_));
      out_ = tail_of(events, false);
    } else if (wire::trailer(ctx_.GetServerTrailingMetadata(), "exception") == "stream-deleted") {
      out_ = tail_of({}, true);
    }
    // Anything else stays empty: read again one by one.
    TailBatch& batch = batch_;
    delete this;
    std::lock_guard lock(batch.mu);
    if (--batch.outstanding == 0) batch.cv.notify_all();
  }

 private:
  TailBatch& batch_;
  std::optional<StreamTail>& out_;
  grpc::ClientContext ctx_;
  streams::ReadReq req_;
  streams::ReadResp resp_;
  std::optional<RecordedEventData> event_;
  bool bad_ = false;
};

}  // namespace

StreamTail tail_of(const std::vector<RecordedEventData>& events, bool deleted) {
  StreamTail tail;
  tail.deleted = deleted;
  if (!events.empty()) {
    tail.exists = true;
    tail.last_revision = events.front().revision;
    tail.last_id = events.front().id;
  }
  return tail;
}

std::vector<absl::StatusOr<StreamTail>> Core::read_tails(const std::vector<std::string>& names) {
  std::vector<std::optional<StreamTail>> got(names.size());
  TailBatch batch;
  batch.outstanding = names.size();
  auto n = node();
  for (size_t i = 0; i < names.size(); ++i) new ReadTailCall(*this, n, names[i], batch, got[i]);
  {
    std::unique_lock lock(batch.mu);
    batch.cv.wait(lock, [&] { return batch.outstanding == 0; });
  }
  std::vector<absl::StatusOr<StreamTail>> out;
  out.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    if (got[i]) {
      out.emplace_back(*got[i]);
      continue;
    }
    auto r = read(names[i], /*backwards=*/true, std::nullopt, 1);
    if (!r.ok()) {
      out.emplace_back(r.status());
    } else {
      out.emplace_back(tail_of(r->events, r->deleted));
    }
  }
  return out;
}

milliseconds Core::read_failed() {
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  // Failures further apart than one backoff step and one deadline are not one outage: reads stopped
  // meanwhile (a recovered store, no reads), so an old failure must not eat a new read's budget.
  if (!outage_since_ || now - outage_last_failure_ > options_.backoff_max + deadline()) outage_since_ = now;
  outage_last_failure_ = now;
  return std::chrono::duration_cast<milliseconds>(now - *outage_since_);
}

void Core::read_succeeded() {
  std::lock_guard lock(mu_);
  outage_since_.reset();
}

absl::StatusOr<Core::ReadResult> Core::read(const std::string& stream, bool backwards, std::optional<uint64_t> from,
                                            uint64_t count) {
  return read(stream, read_request(stream, backwards, from, count));
}

absl::StatusOr<Core::ReadResult> Core::read_all(uint64_t from_position, uint64_t count) {
  streams::ReadReq req = read_request("$all", false, std::nullopt, count);
  auto* all = req.mutable_options()->mutable_all();
  if (from_position == 0) {
    all->mutable_start();
  } else {
    all->mutable_position()->set_commit_position(from_position);
    all->mutable_position()->set_prepare_position(from_position);
  }
  return read("$all", req);
}

absl::StatusOr<Core::ReadResult> Core::read(const std::string& stream, const streams::ReadReq& req) {
  for (int attempt = 1;; ++attempt) {
    auto n = node();
    grpc::ClientContext ctx;
    prepare(ctx, deadline(), /*requires_leader=*/true);
    ReadResult result;
    auto reader = n->streams->Read(&ctx, req);
    streams::ReadResp resp;
    while (reader->Read(&resp)) {
      if (resp.content_case() == streams::ReadResp::kStreamNotFound) result.not_found = true;
      if (resp.content_case() != streams::ReadResp::kEvent) continue;
      auto d = recorded(resp.event().event());
      if (!d) return absl::DataLossError("read " + stream + ": an event without a readable id");
      result.events.push_back(std::move(*d));
    }
    grpc::Status st = reader->Finish();
    if (st.ok()) {
      read_succeeded();
      return result;
    }
    wire::Trailers trailers = ctx.GetServerTrailingMetadata();
    if (wire::trailer(trailers, "exception") == "stream-deleted") {
      read_succeeded();
      result.events.clear();
      result.deleted = true;
      return result;
    }
    wire::Verdict v = wire::classify(st, trailers);
    milliseconds left{0};
    if (v.kind == wire::Verdict::kRetry) left = options_.retry_for - read_failed();
    if (v.kind == wire::Verdict::kRedirect) {
      redirect(n, v.leader_host, v.leader_port);
      continue;
    }
    if (v.kind != wire::Verdict::kRetry || left <= milliseconds(0)) {
      return call_error(st, v.kind == wire::Verdict::kRetry,
                        "read " + stream + " from " + n->endpoint + ": " +
                            explain_connect_error(settings_, n->endpoint, st));
    }
    // Never sleeps past the outage's budget: the last attempt comes at its end.
    const milliseconds wait{
        std::min<int64_t>(options_.backoff_initial.count() << std::min(attempt - 1, 16), options_.backoff_max.count())};
    std::this_thread::sleep_for(std::min(wait, left));
  }
}

streams::ReadReq Core::read_request(const std::string& stream, bool backwards, std::optional<uint64_t> from,
                                    uint64_t count) {
  streams::ReadReq req;
  auto* o = req.mutable_options();
  o->mutable_stream()->mutable_stream_identifier()->set_stream_name(stream);
  if (from) {
    o->mutable_stream()->set_revision(*from);
  } else if (backwards) {
    o->mutable_stream()->mutable_end();
  } else {
    o->mutable_stream()->mutable_start();
  }
  o->set_read_direction(backwards ? streams::ReadReq::Options::Backwards : streams::ReadReq::Options::Forwards);
  o->set_resolve_links(false);
  o->set_count(count);
  o->mutable_no_filter();
  o->mutable_uuid_option()->mutable_structured();
  o->mutable_control_option()->set_compatibility(1);
  return req;
}

std::optional<RecordedEventData> Core::recorded(const streams::ReadResp::ReadEvent::RecordedEvent& e) {
  RecordedEventData d;
  auto id = wire::from_proto(e.id());
  if (!id) return std::nullopt;
  d.id = *id;
  d.revision = StreamRevision{e.stream_revision()};
  auto type = e.metadata().find("type");
  if (type != e.metadata().end()) d.type = type->second;
  auto ct = e.metadata().find("content-type");
  if (ct != e.metadata().end()) d.content_type = ct->second;
  d.data = e.data();
  d.metadata = e.custom_metadata();
  d.stream = e.stream_identifier().stream_name();
  d.position = e.commit_position();
  auto created = e.metadata().find("created");
  if (created != e.metadata().end()) (void)absl::SimpleAtoi(created->second, &d.created_ticks);
  return d;
}

}  // namespace kingest::kurrent::internal
