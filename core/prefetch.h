// Starting to load memory into the cache before it is read, for the places that reach objects
// last touched long ago or on another core (an answered append's group and stream state, a
// request's events): the loads overlap the work on the object before, instead of each read
// waiting for memory in turn.
//
//   prefetch_bytes(next_group, sizeof(Group));  // then work on the current one
//
// A hint only: it never faults, changes nothing, and costs a few instructions per 64-byte line.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kingest {

// Starts loading the cache lines of [p, p + bytes) without waiting for them: every line the range
// touches, also when it does not start at a line's start.
inline void prefetch_bytes(const void* p, size_t bytes) {
  if (bytes == 0) return;
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
  const uintptr_t last = reinterpret_cast<uintptr_t>(p) + bytes - 1;
  for (uintptr_t at = first; at <= last; at += 64) __builtin_prefetch(reinterpret_cast<const void*>(at));
}

}  // namespace kingest
