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

namespace kingest {

// Starts loading the cache lines of [p, p + bytes) without waiting for them: every line the range
// touches, also when it does not start at a line's start.
inline void prefetch_bytes(const void* p, size_t bytes) {
  if (bytes == 0) return;
  const char* c = static_cast<const char*>(p);
  for (size_t at = 0; at < bytes; at += 64) __builtin_prefetch(c + at);
  // The range's last line, which the steps above miss when `p` is not at a line's start.
  __builtin_prefetch(c + bytes - 1);
}

}  // namespace kingest
