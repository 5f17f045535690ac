#include "cli/sinks.h"

#include <vector>

#include "cli/discard_sink.h"
#include "store/store_sink.h"

namespace kingest::cli {

absl::StatusOr<OpenedSink> open_sink(const std::string& kind, const KurrentFlags& kurrent, const IngestFlags& ingest,
                                     const std::optional<std::string>& url, store::EventStore* store,
                                     bool* usage_fault) {
  *usage_fault = false;
  OpenedSink out;
  if (kind == "discard") {
    out.sink = std::make_unique<DiscardSink>();
  } else if (kind == "direct") {
    if (store == nullptr) {
      *usage_fault = true;
      return absl::InvalidArgumentError("--sink direct writes to the embedded store: it does not go with --kurrent");
    }
    out.sink = std::make_unique<store::StoreSink>(*store);
  } else {
    auto connected = connect_kurrent(kurrent, ingest, url, usage_fault);
    if (!connected.ok()) return connected.status();
    out.client = connected->get();
    out.sink = std::move(*connected);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<DeadLetterSinks>> DeadLetterSinks::open(const std::string& file,
                                                                        const std::string& brokers,
                                                                        const std::string& topic) {
  std::unique_ptr<DeadLetterSinks> out(new DeadLetterSinks());
  auto f = pipeline::NdjsonDeadLetterFile::open(file);
  if (!f.ok()) return f.status();
  out->file_ = std::move(*f);
  std::vector<DeadLetterSink*> sinks{out->file_.get()};
  if (!topic.empty()) {
    auto t = kafka::KafkaDeadLetterTopic::open(brokers, topic);
    if (!t.ok()) return t.status();
    out->topic_ = std::move(*t);
    sinks.push_back(out->topic_.get());
  }
  out->tee_ = std::make_unique<pipeline::TeeDeadLetters>(std::move(sinks));
  return out;
}

void add_client_figures(pipeline::RunReport& report, const kurrent::ClientStats& stats) {
  report.numbers["kurrent_appends"] = double(stats.appends);
  report.numbers["kurrent_retries"] = double(stats.retries);
  report.numbers["kurrent_reconnects"] = double(stats.reconnects);
  report.numbers["kurrent_redirects"] = double(stats.redirects);
  if (stats.v2_requests > 0) {
    report.numbers["kurrent_requests"] = double(stats.v2_requests);
    report.numbers["kurrent_streams_per_request"] = double(stats.v2_request_streams) / double(stats.v2_requests);
  }
}

}  // namespace kingest::cli
