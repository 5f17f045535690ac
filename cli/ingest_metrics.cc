#include "cli/ingest_metrics.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>

namespace kingest::cli {
namespace {

// Every EngineStats field, once: adding a field to the engine's figures is one line here.
struct EngineField {
  uint64_t pipeline::EngineStats::*field;
  const char* name;
  bool counter;
  const char* help;
  double scale = 1;  // to the metric's base unit (ms → seconds: 0.001)
};

constexpr EngineField kEngineFields[] = {
    {&pipeline::EngineStats::events_read, "kurrent_ingest_events_read_total", true, "Kafka messages handed to the pipeline"},
    {&pipeline::EngineStats::events_appended, "kurrent_ingest_events_appended_total", true, "Events written to KurrentDB by this run"},
    {&pipeline::EngineStats::duplicates, "kurrent_ingest_events_duplicate_total", true, "Events found already written (same id at the revision)"},
    {&pipeline::EngineStats::conflicts, "kurrent_ingest_revision_conflicts_total", true, "Events dead-lettered for a revision conflict"},
    {&pipeline::EngineStats::dead_lettered, "kurrent_ingest_events_dead_lettered_total", true, "Events sent to the dead-letter sink, every reason"},
    {&pipeline::EngineStats::streams, "kurrent_ingest_streams", false, "Distinct streams touched by this run"},
    {&pipeline::EngineStats::batches, "kurrent_ingest_batches_total", true, "Kafka batches completed"},
    {&pipeline::EngineStats::batches_in_flight, "kurrent_ingest_batches_in_flight", false, "Kafka batches inside the pipeline"},
    {&pipeline::EngineStats::appends, "kurrent_ingest_appends_total", true, "Append requests sent to the sink"},
    {&pipeline::EngineStats::messages_done, "kurrent_ingest_messages_done_total", true, "Messages whose offsets may be committed"},
    {&pipeline::EngineStats::streams_on_several_partitions, "kurrent_ingest_streams_on_several_partitions", false, "Streams whose events came from more than one partition"},
    {&pipeline::EngineStats::events_held, "kurrent_ingest_events_held", false, "Events waiting for an earlier version of their stream"},
    {&pipeline::EngineStats::held_bytes, "kurrent_ingest_held_bytes", false, "Message bytes of the held events"},
    {&pipeline::EngineStats::events_reordered, "kurrent_ingest_events_reordered_total", true, "Events that waited for an earlier version of their stream"},
    {&pipeline::EngineStats::max_reorder_wait_ms, "kurrent_ingest_max_reorder_wait_seconds", false, "The longest wait of a held event so far", 0.001},
    {&pipeline::EngineStats::stream_reads, "kurrent_ingest_stream_state_reads_total", true, "Reads of stream state (first touches the answers cannot check, stale states, written prefixes, gap re-checks)"},
    {&pipeline::EngineStats::cached_streams, "kurrent_ingest_stream_cache_streams", false, "Per-stream states held in the cache"},
    {&pipeline::EngineStats::stream_cache_bytes, "kurrent_ingest_stream_cache_bytes", false, "Estimated memory of the per-stream states"},
    {&pipeline::EngineStats::stream_cache_evictions, "kurrent_ingest_stream_cache_evictions_total", true, "Per-stream states dropped to stay under --stream-cache-bytes"},
    {&pipeline::EngineStats::stream_cache_hits, "kurrent_ingest_stream_cache_hits_total", true, "A batch's streams found in the stream-state cache"},
    {&pipeline::EngineStats::stream_cache_misses, "kurrent_ingest_stream_cache_misses_total", true, "A batch's streams not in the cache (loaded: presumed new or read); hits / (hits + misses) is the hit ratio"},
    {&pipeline::EngineStats::open_gaps, "kurrent_ingest_open_gaps", false, "Streams waiting for a missing version"},
    {&pipeline::EngineStats::pending_groups, "kurrent_ingest_pending_groups", false, "Stream groups waiting in the engine (behind an append, for a slot, or held)"},
};

// Append and read latencies: 100 µs to 30 s.
const std::vector<double> kLatencyBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                            0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,  30};

metrics::HistogramSnapshot snapshot(const pipeline::LatencyHistogram& h) {
  return {.buckets = h.cumulative(kLatencyBounds), .count = h.count(), .sum = h.sum_s()};
}

}  // namespace

void add_metrics_flags(CLI::App& cmd, MetricsFlags& f, const std::string& every_flag) {
  cmd.add_option("--metrics-listen", f.listen,
                 "Serve Prometheus metrics at http://HOST:PORT/metrics (HOST defaults to 127.0.0.1; port 0 picks a "
                 "free one)");
  cmd.add_option("--metrics-textfile", f.textfile,
                 "Write the metrics to FILE (atomically: temporary file, then rename) every " + every_flag +
                     " and at exit, for node_exporter's textfile collector (name it *.prom)");
}

absl::StatusOr<std::unique_ptr<metrics::MetricsOutput>> start_metrics(const metrics::Registry& registry,
                                                                      const MetricsFlags& flags,
                                                                      std::chrono::milliseconds every) {
  if (flags.listen.empty() && flags.textfile.empty()) return std::unique_ptr<metrics::MetricsOutput>();
  auto out = metrics::MetricsOutput::start(registry, {.listen = flags.listen, .textfile = flags.textfile,
                                                      .textfile_every = every});
  if (!out.ok()) return out.status();
  if (!(*out)->url().empty()) std::cout << "metrics: " << (*out)->url() << std::endl;
  return out;
}

absl::Status CountingDeadLetters::write(const std::vector<pipeline::DeadLetter>& letters) {
  auto s = inner_.write(letters);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    for (const auto& l : letters) ++by_reason_[l.reason];
  }
  return s;
}

std::map<std::string, uint64_t> CountingDeadLetters::by_reason() const {
  std::lock_guard lock(mu_);
  return by_reason_;
}

std::string lag_text(const LagSnapshot& lag, double rate, bool catch_up) {
  if (!lag.at) return {};
  std::string out = fmt::format("lag {}", lag.total());
  if (catch_up) {
    if (lag.total() == 0) {
      out += ", caught up";
    } else if (rate > 0) {
      out += fmt::format(", catch up in {:.0f}s", double(lag.total()) / rate);
    }
  }
  return out;
}

void add_ingest_metrics(metrics::Registry& registry, IngestMetricsSources src) {
  registry.add([src](metrics::Exposition& e) {
    e.gauge("kurrent_ingest_run_info", "What this process runs: version, command and append mode (always 1)", 1,
            {{"version", "0.1.0"}, {"command", src.command}, {"append_mode", src.append_mode}});
    if (src.session != nullptr) {
      const auto s = src.session->stats();
      for (const auto& f : kEngineFields) {
        const uint64_t v = s.*(f.field);
        if (f.counter && f.scale == 1) {
          e.counter(f.name, f.help, v);
        } else if (f.counter) {
          e.counter(f.name, f.help, double(v) * f.scale);
        } else {
          e.gauge(f.name, f.help, double(v) * f.scale);
        }
      }
      e.gauge("kurrent_ingest_events_per_append", "Events appended per append request so far",
              s.appends > 0 ? double(s.events_appended) / double(s.appends) : 0);
      e.gauge("kurrent_ingest_bytes_in_flight", "Kafka message bytes inside the pipeline",
              double(src.session->bytes_in_flight()));
      e.counter("kurrent_ingest_offset_commits_total", "Kafka offset commits sent", src.session->offset_commits());
      e.counter("kurrent_ingest_messages_lost_total", "Messages deleted by retention before they were ingested",
                src.session->messages_lost());
    }
    if (src.sink != nullptr) {
      e.histogram("kurrent_ingest_append_duration_seconds",
                  "Append latency, from the pipeline handing it over to its answer", snapshot(src.sink->latency()));
      e.histogram("kurrent_ingest_stream_read_duration_seconds",
                  "First-touch reads of stream tails (one call may cover several streams)",
                  snapshot(src.sink->read_latency()));
      e.counter("kurrent_ingest_streams_read_total", "Streams whose tail was read on first touch",
                src.sink->streams_read());
      e.gauge("kurrent_ingest_appends_in_flight", "Appends sent to KurrentDB and not answered yet (calls in flight)",
              double(src.sink->appends_in_flight()));
    }
    if (src.client != nullptr) {
      const auto cs = src.client->stats();
      e.counter("kurrent_ingest_kurrent_appends_total", "Appends on the wire (parts and re-sends included)", cs.appends);
      e.counter("kurrent_ingest_kurrent_retries_total", "Appends sent again after a retryable error or a deadline",
                cs.retries);
      e.counter("kurrent_ingest_kurrent_reconnects_total", "BatchAppend calls opened after the first", cs.reconnects);
      e.counter("kurrent_ingest_kurrent_redirects_total", "Not-leader answers followed", cs.redirects);
      e.counter("kurrent_ingest_kurrent_splits_total", "Stream groups sent in several parts", cs.splits);
      e.gauge("kurrent_ingest_kurrent_connections", "gRPC channels to the node (the connection pool)",
              double(cs.channels));
      e.gauge("kurrent_ingest_kurrent_connections_ready", "gRPC channels connected and ready now",
              double(cs.channels_connected));
      e.gauge("kurrent_ingest_kurrent_calls_open", "Append calls open on the channel (a BatchAppend call counts once)",
              double(cs.calls_open));
      e.counter("kurrent_ingest_kurrent_v2_requests_total", "AppendRecords / AppendSession requests sent",
                cs.v2_requests);
      e.counter("kurrent_ingest_kurrent_v2_request_streams_total", "Stream groups those requests carried",
                cs.v2_request_streams);
    }
    if (src.dead_letters != nullptr) {
      e.declare("kurrent_ingest_dead_letters_total", "counter", "Dead letters written, by reason");
      for (const auto& [reason, n] : src.dead_letters->by_reason()) {
        e.counter("kurrent_ingest_dead_letters_total", "Dead letters written, by reason", n, {{"reason", reason}});
      }
    }
    if (src.lag != nullptr) {
      const auto lag = src.lag->snapshot();
      e.declare("kurrent_ingest_consumer_lag", "gauge",
                "Messages after the group's committed offset (high watermark - committed), per partition");
      if (lag.at) {
        for (const auto& [tp, p] : lag.partitions) {
          e.gauge("kurrent_ingest_consumer_lag",
                  "Messages after the group's committed offset (high watermark - committed), per partition",
                  double(p.lag), {{"topic", tp.topic}, {"partition", std::to_string(tp.partition)}});
        }
        e.gauge("kurrent_ingest_consumer_lag_all_partitions", "The consumer lag summed over every partition",
                double(lag.total()));
        const double age = std::chrono::duration<double>(std::chrono::steady_clock::now() - *lag.at).count();
        e.gauge("kurrent_ingest_consumer_lag_age_seconds", "How old the consumer lag figures are", age);
        if (src.catch_up && src.session != nullptr) {
          const double rate = src.session->done_rate();
          if (lag.total() == 0) {
            e.gauge("kurrent_ingest_catch_up_seconds", "Time to consume the lag at the rate so far", 0);
          } else if (rate > 0) {
            e.gauge("kurrent_ingest_catch_up_seconds", "Time to consume the lag at the rate so far",
                    double(lag.total()) / rate);
          }
        }
      }
    }
  });
}

}  // namespace kingest::cli
