// How `read`, `streams` and the stream browser show events: JSON objects with the revision, id,
// type, created time, data and metadata (JSON kept as JSON, anything else as text or base64).
//
//   event_json(e)              → {"stream":"s","revision":0,"id":"…","type":"T","created":"2026-…Z",…}
//   pretty_json(event_json(e)) → the same, indented by two spaces
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/sink.h"

namespace kingest::inspect {

// 100 ns ticks since the Unix epoch → "2026-12-04T14:09:27.123456Z" (empty for 0).
std::string ticks_to_iso8601(int64_t ticks);

// The text, minified, when it is one valid JSON value; nullopt otherwise.
std::optional<std::string> valid_json(std::string_view text);

// `data` and `metadata` are JSON values when they hold JSON; else strings (valid UTF-8) or
// {"base64": "..."}.
std::string event_json(const RecordedEventData& e);

// Indents minified JSON text (as produced here) by two spaces per level.
std::string pretty_json(std::string_view json);

// Per-stream summary as `streams` and the browser list it.
struct StreamSummary {
  std::string stream;
  uint64_t events = 0;
  uint64_t last_revision = 0;
  int64_t first_created_ticks = 0;
  int64_t last_created_ticks = 0;
  uint64_t last_position = 0;
};

std::string summary_json(const StreamSummary& s);

}  // namespace kingest::inspect
