#include "cli/ingest_session.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "cli/signals.h"

namespace kingest::cli {

namespace {
// Initialised before main runs: the process's start, near enough.
const std::chrono::steady_clock::time_point kProcessStart = std::chrono::steady_clock::now();
}  // namespace

double process_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - kProcessStart).count();
}

double cpu_seconds(const rusage& ru) {
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return cpu_seconds(ru);
}

double process_peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

IngestSession::IngestSession(kafka::SourceOptions source, pipeline::EngineOptions engine, Sink& sink,
                             pipeline::DeadLetterSink* dead_letters, kafka::Replier* replier)
    : source_options_(std::move(source)), replier_(replier) {
  if (replier_ != nullptr) {
    // Queued (not sent) on the engine thread, before the message counts as done; chained after
    // any hook the caller set.
    auto previous = std::move(engine.on_outcome);
    // Without a hook of the caller's, only the messages that await a reply need their outcome.
    if (!previous && !engine.outcome_wanted) {
      engine.outcome_wanted = [](const SourceMessage& m) { return kafka::Replier::wants_reply(m); };
    }
    engine.on_outcome = [r = replier_, previous](const SourceMessage& m, const pipeline::MessageOutcome& o) {
      if (previous) previous(m, o);
      if (!kafka::Replier::wants_reply(m)) return;
      if (o.kind == pipeline::MessageOutcome::Kind::kDeadLettered) {
        r->reply_error(m, o.reason, o.detail);
      } else {
        r->reply_success(m, o.event_id);  // kDuplicate: the id already stored, the same answer again
      }
    };
  }
  engine_ = std::make_unique<pipeline::IngestEngine>(
      std::move(engine), sink, dead_letters, [this](const std::vector<SourceMessage>& messages) {
        // Called by the engine's serial completion stage: the source exists by then.
        uint64_t bytes = 0;
        for (const auto& m : messages) bytes += m.byte_size();
        bytes_done_.fetch_add(bytes, std::memory_order_relaxed);
        source_->tracker().done_messages(messages);
      });
}

IngestSession::~IngestSession() { (void)finish(); }

absl::Status IngestSession::start() {
  kafka::SourceCallbacks cb;
  cb.on_batch = [this](std::vector<SourceMessage>&& msgs, size_t bytes) {
    if (!got_batch_.load(std::memory_order_relaxed)) {
      first_batch_at_ = std::chrono::steady_clock::now();
      cpu_s_at_first_batch_ = process_cpu_seconds();
      got_batch_.store(true, std::memory_order_release);
    }
    bytes_submitted_.fetch_add(bytes, std::memory_order_relaxed);
    engine_->submit(std::move(msgs), bytes);
  };
  cb.has_room = [this] { return engine_->has_room(); };
  cb.wait_for_room = [this](std::chrono::microseconds timeout) { return engine_->wait_for_room(timeout); };
  // A bounded run reads the partitions furthest behind first while held events are over budget
  // (the partitions' ends tell it which are done; a live run gives gaps up after the window instead).
  if (!source_options_.end_at.empty()) cb.behind_first = [this] { return engine_->held_over_soft_limit(); };
  cb.on_revoke = [this](const std::vector<TopicPartition>& tps) {
    engine_->on_revoke(tps, /*closing=*/closing_.load());
  };
  if (replier_ != nullptr) {
    // A reply reaches Kafka before the offset that covers its request: a crash in between may
    // send it twice, never lose it.
    cb.before_commit = [this] {
      auto s = replier_->flush(std::chrono::seconds(10));
      if (!s.ok()) spdlog::warn("{}; the offset commit waits for them", s.ToString());
      return s.ok();
    };
  }
  cb.on_fatal = [this](absl::Status s) {
    std::lock_guard lock(mu_);
    if (source_fatal_.ok()) source_fatal_ = std::move(s);
  };
  auto source = kafka::KafkaSource::create(source_options_, std::move(cb));
  if (!source.ok()) return source.status();
  source_ = std::move(*source);
  return source_->start();
}

std::optional<std::chrono::steady_clock::time_point> IngestSession::first_batch_at() const {
  if (!got_batch_.load(std::memory_order_acquire)) return std::nullopt;
  return first_batch_at_;
}

absl::Status IngestSession::fatal() const {
  {
    std::lock_guard lock(mu_);
    if (!source_fatal_.ok()) return source_fatal_;
  }
  return engine_->fatal();
}

uint64_t IngestSession::bytes_in_flight() const {
  const uint64_t done = bytes_done_.load(std::memory_order_relaxed);
  const uint64_t submitted = bytes_submitted_.load(std::memory_order_relaxed);
  return submitted > done ? submitted - done : 0;
}

double IngestSession::done_rate() const {
  auto first = first_batch_at();
  if (!first) return 0;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - *first).count();
  return s > 0 ? double(engine_->stats().messages_done) / s : 0;
}

RunEnd IngestSession::run_until(const std::function<bool(const pipeline::EngineStats&)>& reached,
                                std::chrono::milliseconds timeout, const ProgressOptions& progress) {
  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  const bool bar = progress.mode == ProgressMode::kBar;
  // The bar is redrawn a few times a second; a plain line is logged every `every`.
  const auto every = bar ? std::chrono::milliseconds(250) : progress.every;
  const uint64_t total = progress.total;
  auto next_log = start + every;
  struct EndLine {
    ~EndLine() { end_bar(); }
  } end_line;
  auto next_gap_check = start;
  for (;;) {
    auto s = engine_->stats();
    if (reached(s)) return RunEnd::kReached;
    if (Clock::now() >= next_gap_check) {
      // Gaps past the reorder window are re-checked; held events are kept under their budget.
      engine_->check_gaps();
      next_gap_check = Clock::now() + std::chrono::milliseconds(200);
    }
    if (!fatal().ok()) return RunEnd::kFatal;
    if (interrupted()) return RunEnd::kInterrupted;
    auto now = Clock::now();
    if (now - start >= timeout) return RunEnd::kTimedOut;
    if (progress.mode != ProgressMode::kNone && now >= next_log) {
      // The report's rate: appended events over the time since the first batch. The ETA uses the
      // rate of messages done (duplicates count there too).
      const auto first = first_batch_at();
      const double since = first ? std::chrono::duration<double>(now - *first).count() : 0;
      const double rate = since > 0 ? double(s.events_appended) / since : 0;
      const double done_rate = since > 0 ? double(s.messages_done) / since : 0;
      std::string extra = progress.extra ? progress.extra(done_rate) : std::string();
      if (!extra.empty()) extra = ", " + extra;
      if (bar) {
        std::string line;
        if (total > 0) {
          double frac = std::min(1.0, double(s.messages_done) / double(total));
          int filled = int(frac * 30);
          std::string eta = done_rate > 0 && s.messages_done < total
                                ? fmt::format(" ETA {:.0f}s", double(total - s.messages_done) / done_rate)
                                : "";
          line = fmt::format("[{}{}] {:5.1f}% {}/{} events {:.0f} appended/s{}, dead letters {}{}",
                             std::string(size_t(filled), '#'), std::string(size_t(30 - filled), '.'), 100 * frac,
                             s.messages_done, total, rate, eta, s.dead_lettered, extra);
        } else {
          line = fmt::format("{} events {:.0f} appended/s, dead letters {}{}", s.messages_done, rate, s.dead_lettered, extra);
        }
        draw_bar(line);
      } else if (total > 0) {
        spdlog::info("progress: {}/{} events done ({:.1f}%), {:.0f} appended/s, {} dead-lettered{}", s.messages_done, total,
                     100.0 * double(s.messages_done) / double(total), rate, s.dead_lettered, extra);
      } else {
        spdlog::info("progress: {} events done, {:.0f} appended/s, {} dead-lettered{}", s.messages_done, rate, s.dead_lettered,
                     extra);
      }
      next_log = now + every;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool IngestSession::read_everything() const {
  if (!source_ || !source_->read_to_ends()) return false;
  const auto s = engine_->stats();
  return s.events_read == source_->messages_read() && s.batches_in_flight == 0;
}

absl::Status IngestSession::finish(bool kafka_lost) {
  if (finished_ || !source_) return absl::OkStatus();
  finished_ = true;
  source_->stop_fetching();  // after this, no batch is submitted any more
  engine_->wait_idle();
  if (const auto s = engine_->stats(); s.streams_on_several_partitions > 0) {
    spdlog::warn("{} stream(s) had events on more than one partition ({} event(s) waited for an earlier version, "
                 "up to {} ms): producers should key messages by aggregate id so each stream stays in one partition",
                 s.streams_on_several_partitions, s.events_reordered, s.max_reorder_wait_ms);
  }
  if (kafka_lost) {
    source_->abandon();
    return absl::OkStatus();
  }
  closing_.store(true);
  return source_->close();
}

void add_sink_figures(pipeline::RunReport& report, const pipeline::TimedSink& sink, const IngestSession& session,
                      double cpu_s) {
  const auto first = session.first_batch_at();
  const auto last = sink.last_answer_at();
  if (first && last && *last > *first) {
    report.numbers["first_to_last_s"] = std::chrono::duration<double>(*last - *first).count();
  }
  report.numbers["cpu_s"] = cpu_s;
  report.numbers["peak_rss_mib"] = process_peak_rss_mib();
  // `appends` itself is the engine's count (stats): only the figures derived from the answers here.
  const uint64_t appends = sink.latency().count();
  if (appends > 0) {
    report.numbers["events_per_append"] = double(report.stats.events_appended) / double(appends);
    report.numbers["append_latency_p50_ms"] = sink.latency().quantile_ms(0.5);
    report.numbers["append_latency_p99_ms"] = sink.latency().quantile_ms(0.99);
  }
}

}  // namespace kingest::cli
