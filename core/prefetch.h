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

// Starts loading the cache lines of [p, p + bytes) without waiting for them.
inline void prefetch_bytes(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t at = 0; at < bytes; at += 64) __builtin_prefetch(c + at);
}

}  // namespace kingest
