// jemalloc's options for every process that allocates like the product: kurrent-ingest itself and
// kurrent-ingest-bench, whose probes are the ceilings the pipeline is measured against. Each main
// defines jemalloc's `malloc_conf` symbol from this text; jemalloc reads it at its first allocation,
// and the MALLOC_CONF environment variable still overrides each option.
//
// - `dirty_decay_ms:750,muzzy_decay_ms:0`: freed pages go back to the system after about three
//   quarters of a second instead of ten, so a burst of in-flight batches does not stay in the
//   resident set for the rest of the run (docs/performance.md, "Memory"). At a second, 4 M wide
//   events' peak sat at the 256 MiB target (246–262 MiB); half a second kept it about 10 MiB lower
//   but cost wide data about 5 % more CPU, three quarters about 5 MiB for 1–2 %.
// - `oversize_threshold:0`: no arena of its own for allocations over 8 MiB. That arena gives pages
//   back as soon as they are freed, and librdkafka's fetch responses (up to fetch.max.bytes, 8 MiB)
//   were faulted in afresh on every fetch.
// - `background_thread:true`: pages are given back by jemalloc's own background thread, not inline
//   on the thread whose free ends a decay step. Each return is an madvise whose TLB flush
//   interrupts every core the process runs on; done inline, they came in small pieces on the
//   pipeline's busiest threads.
#pragma once

namespace kingest::cli {

inline constexpr char kMallocConf[] =
    "background_thread:true,dirty_decay_ms:750,muzzy_decay_ms:0,oversize_threshold:0";

}  // namespace kingest::cli
