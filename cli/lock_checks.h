// Abseil's lock-order checks, turned off in every process that runs like the product: kurrent-ingest
// itself and kurrent-ingest-bench, whose probes are the ceilings the pipeline is measured against.
//
// Debian's Abseil is built with its debug checks on, so every absl::Mutex lock and unlock (gRPC's,
// several per call) records the order of the locks held in one graph for the whole process, under
// a global lock, and a cycle in that graph aborts the process ("Potential Mutex deadlock"). The
// product takes no absl::Mutex of its own; what the check watches is gRPC's locking, whose own
// lock orders have set it off (grpc/grpc#39461, a client whose server is down). A process that
// moves events for hours must not end on a diagnostic meant for gRPC's developers, and the graph
// costs every gRPC thread a turn of that global lock per lock it takes.
#pragma once

#include "absl/synchronization/mutex.h"

namespace kingest::cli {

inline void turn_off_lock_order_checks() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace kingest::cli
