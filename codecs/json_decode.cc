// JSON envelope decoding on simdjson's On-Demand API (error codes only, never exceptions).
//
// One pass over the top-level object: envelope fields are converted as they come; every other
// member is walked (fully validated: On-Demand skips values lazily, so the walk is what makes the
// payload guaranteed-valid JSON) and remembered as a span of the input text. At the end the shape
// is chosen and the payload is assembled from those spans, byte for byte (`finish_event`).
//
// Every input is first offered to the scan (json_scan.cc), which decodes the common case without
// On-Demand and leaves the rest, errors included, to this full pass.
//
// Here: the per-thread parser and buffers, the pass, the choice of shape and the payload's
// assembly; the parts the pass calls are declared in internal/json_decoding.h.
#include "codecs/json_codec.h"

#include "codecs/decode_guard.h"
#include "codecs/internal/json_decoding.h"

#include <simdjson.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kingest::codecs {
using namespace json_internal;  // the codec's own parts (internal/json_decoding.h)
namespace {

static_assert(kValuePadding >= simdjson::SIMDJSON_PADDING,
              "SourceMessage::assign_value must reserve at least simdjson's padding");

// Thread-local buffers larger than this are released at the thread's next call.
constexpr size_t kKeepBytes = size_t{4} << 20;

struct ThreadState {
  od::parser parser;
  std::string copy;              // padded copy of inputs that lack padding capacity
  std::vector<Member> members;   // scratch, reused
};

ThreadState& thread_state() {
  thread_local ThreadState state;
  return state;
}

// An envelope field with one value (not a time): its reader's error, returned as it is made (one
// optional per field assigned from each reader's was a move per field).
std::optional<DecodeError> read_envelope_field(od::value& v, Field kind, DomainEvent& event) {
  switch (kind) {
    case Field::kEventId: return read_optional_string(v, kind, event.event_id);
    case Field::kEventType: return read_required_string(v, kind, event.event_type);
    case Field::kAggregateId: return read_aggregate_id(v, event.aggregate_id);
    case Field::kAggregateType: return read_required_string(v, kind, event.aggregate_type);
    case Field::kAggregateVersion: return read_aggregate_version(v, event.aggregate_version);
    case Field::kCorrelationId: return read_optional_string(v, kind, event.correlation_id);
    case Field::kCausationId: return read_optional_string(v, kind, event.causation_id);
    default: return std::nullopt;
  }
}

// Decodes into `event`, which the caller has in its place already; the error when it cannot.
std::optional<DecodeError> decode_fields(ThreadState& ts, simdjson::padded_string_view json, JsonShape shape,
                                         DomainEvent& event) {
  const std::string_view input(json.data(), json.size());
  od::document doc;
  if (auto e = ts.parser.iterate(json).get(doc)) return invalid_json_text(e, input);
  od::json_type top;
  if (auto e = doc.type().get(top)) return invalid_json_text(e, input);
  if (top != od::json_type::object && top != od::json_type::array) {
    return type_error("top level", "a JSON object",
                      std::string(type_name(top)) + " \"" + quote_text(trim(input)) + "\"");
  }
  if (top == od::json_type::array) {
    // Valid JSON of another type, or text that merely starts like it ("[object Object]").
    od::value v;
    const char* end = nullptr;
    if (auto e = doc.get_value().get(v)) return invalid_json_text(e, input);
    if (auto e = walk(v, 1, end)) return invalid_json_text(e, input);
    if (!doc.current_location().error()) return invalid_json_text(simdjson::TRAILING_CONTENT, input);
    return type_error("top level", "a JSON object",
                      std::string(type_name(top)) + " \"" + quote_text(trim(input)) + "\"");
  }
  od::object obj;
  if (auto e = doc.get_object().get(obj)) return invalid_json_text(e, input);

  TimeMembers times;
  uint32_t seen = 0;  // bit per envelope Field
  auto& members = ts.members;
  members.clear();

  for (auto field_result : obj) {
    od::field field;
    if (auto e = std::move(field_result).get(field)) return invalid_json_text(e, input);
    const char* key_raw = field.key().raw();
    od::value& v = field.value();
    const char* value_begin = v.raw_json_token().data();
    std::string_view key = raw_key(key_raw, value_begin);
    if (has_backslash(key)) {
      if (auto e = field.unescaped_key().get(key)) return invalid_json(e);
    }
    const Field kind = classify(key);
    const char* key_begin = key_raw - 1;

    if (kind == Field::kPayload || kind == Field::kData || kind == Field::kMetadata) {
      Member m{kind, key_begin, value_begin, nullptr};
      if (auto e = walk(v, 1, m.value_end)) return invalid_json(e, key);
      if (!followed_by(m.value_end, '}')) return invalid_json(simdjson::TAPE_ERROR, key);
      members.push_back(m);
      continue;
    }

    const uint32_t bit = 1u << static_cast<unsigned>(kind);
    if (seen & bit) return field_error(name_of(kind), "duplicate field");
    seen |= bit;

    if (kind != Field::kOccurredOn && kind != Field::kOccurredAt && kind != Field::kTimestamp) {
      if (auto e = read_envelope_field(v, kind, event)) return e;
      continue;
    }
    // Every time-named member is kept as a payload candidate: only the first present one is the
    // envelope's time, the others stay in the payload.
    std::optional<DecodeError> err;
    const size_t i = static_cast<size_t>(kind) - static_cast<size_t>(Field::kOccurredOn);
    auto& time_present = times.present;
    Member m{kind, key_begin, value_begin, nullptr};
    od::json_type t;
    if (auto e = v.type().get(t)) return invalid_json(e, key);
    if (t == od::json_type::object || t == od::json_type::array) {
      if (auto e = walk(v, 1, m.value_end)) return invalid_json(e, key);
      time_present[i] = true;
      times.errors[i] = type_error(name_of(kind), "a string or epoch milliseconds", type_name(t));
    } else {
      const std::string_view token = trim_right(v.raw_json_token());
      m.value_end = token.data() + token.size();
      read_time(v, kind, times.values[i], time_present[i], err, times.errors[i]);
    }
    if (err) return err;
    if (!followed_by(m.value_end, '}')) return invalid_json(simdjson::TAPE_ERROR, key);
    times.seen[i] = true;
    times.member[i] = members.size();
    members.push_back(m);
  }

  // Anything after the top-level object's closing brace.
  if (!doc.current_location().error()) return invalid_json_text(simdjson::TRAILING_CONTENT, input);
  return finish_event(members, times, seen, shape, event);
}

}  // namespace

std::optional<DecodeError> json_internal::finish_event(const std::vector<Member>& members, TimeMembers& times,
                                                       uint32_t seen, JsonShape shape, DomainEvent& event) {
  for (Field f : {Field::kEventType, Field::kAggregateId, Field::kAggregateType, Field::kAggregateVersion}) {
    if (!(seen & (1u << static_cast<unsigned>(f)))) {
      std::string reason = "missing required field ";
      reason += name_of(f);
      return DecodeError{std::move(reason)};
    }
  }
  // The envelope's time: the first time-named member with a value; when none has one, the first
  // present (null or "", i.e. no time). Every other time-named member is payload.
  const Member* time_used = nullptr;
  for (size_t i = 0; i < times.values.size(); ++i) {
    if (times.present[i]) {
      if (times.errors[i]) return std::move(*times.errors[i]);
      event.occurred_at = std::move(times.values[i]);
      time_used = &members[times.member[i]];
      break;
    }
  }
  for (size_t i = 0; time_used == nullptr && i < times.values.size(); ++i) {
    if (times.seen[i]) time_used = &members[times.member[i]];
  }

  if (shape == JsonShape::kNested) {
    // The payload is the `data` object; besides it only `metadata` (the producer's own, not kept)
    // may sit next to the envelope, so that nothing else is silently dropped.
    const Member* data = nullptr;
    for (const Member& m : members) {
      if (&m == time_used) continue;
      if (m.kind == Field::kData && data == nullptr) {
        if (*m.value_begin != '{') return DecodeError{"nested shape: \"data\" is not a JSON object"};
        data = &m;
      } else if (m.kind != Field::kMetadata) {
        std::string reason = "nested shape: unexpected top-level field \"";
        append_key_for_reason(reason, raw_key(m.key_begin + 1, m.value_begin));
        reason += "\" (the payload goes under \"data\"; the json codec takes the flat shape)";
        return DecodeError{std::move(reason)};
      }
    }
    if (data == nullptr) return DecodeError{"nested shape: missing \"data\" object"};
    event.payload.assign(data->value_begin, data->value_end);
    return std::nullopt;
  }

  // Flat: every member that is not the envelope's, in input order, text verbatim, one comma between
  // members, in a payload reserved once. Members that follow one another in the input with just a
  // comma between them are copied as one run (in compact JSON, all of the payload's members often
  // are): a few appends per event, and no zero fill of the string first.
  size_t payload_size = 1;  // '{', then each member with the ',' or '}' after it
  for (const Member& m : members) {
    if (&m != time_used) payload_size += static_cast<size_t>(m.value_end - m.key_begin) + 1;
  }
  std::string& out = event.payload;
  out.reserve(payload_size == 1 ? 2 : payload_size);
  out.push_back('{');
  const char* run = nullptr;
  const char* run_end = nullptr;
  for (const Member& m : members) {
    if (&m == time_used) continue;
    if (run != nullptr && m.key_begin == run_end + 1 && *run_end == ',') {
      run_end = m.value_end;
      continue;
    }
    if (run != nullptr) {
      out.append(run, run_end);
      out.push_back(',');
    }
    run = m.key_begin;
    run_end = m.value_end;
  }
  if (run != nullptr) out.append(run, run_end);
  out.push_back('}');
  return std::nullopt;
}

namespace {

// The event is decoded where the result holds it, and the result is returned without a move (one
// named return): a DomainEvent's move is a copy of each of its short texts. The scan decodes the
// common case; whatever it leaves goes through the full pass, which gives every error its reason.
DecodeResult decode_padded(ThreadState& ts, simdjson::padded_string_view json, JsonShape shape) {
  DecodeResult result(std::in_place_type<DomainEvent>);
  DomainEvent& event = std::get<DomainEvent>(result);
  if (scan_event(json.data(), json.size(), shape, ts.members, event)) return result;
  event = DomainEvent{};
  if (auto error = decode_fields(ts, json, shape, event)) result = std::move(*error);
  return result;
}

// Frees thread-local buffers that a rare huge message grew (they would otherwise stay with the
// thread for its lifetime).
void trim_thread_state(ThreadState& ts) {
  if (ts.parser.capacity() > kKeepBytes) ts.parser = od::parser{};
  if (ts.copy.capacity() > kKeepBytes) std::string().swap(ts.copy);
  if (ts.members.capacity() > 4096) std::vector<Member>().swap(ts.members);
}

DecodeResult decode_guarded(const char* data, size_t size, size_t capacity, bool needs_copy, JsonShape shape) {
  return detail::guard_decode([&]() -> DecodeResult {
    ThreadState& ts = thread_state();
    // Buffers grown by a previous huge message are released here rather than after the decode,
    // so that the result can be returned without a move.
    trim_thread_state(ts);
    if (needs_copy) {
      ts.copy.reserve(size + simdjson::SIMDJSON_PADDING);
      ts.copy.assign(data, size);
      return decode_padded(ts, simdjson::padded_string_view(ts.copy.data(), size, ts.copy.capacity()), shape);
    }
    return decode_padded(ts, simdjson::padded_string_view(data, size, capacity), shape);
  });
}

}  // namespace

DecodeResult decode_json(const std::string& bytes, JsonShape shape) {
  const bool padded = bytes.capacity() >= bytes.size() + simdjson::SIMDJSON_PADDING;
  return decode_guarded(bytes.data(), bytes.size(), bytes.capacity(), !padded, shape);
}

DecodeResult decode_json(std::string_view bytes, JsonShape shape) {
  return decode_guarded(bytes.data(), bytes.size(), 0, true, shape);
}

DecodeResult json_internal::decode_json_full_pass(std::string_view bytes, JsonShape shape) {
  return detail::guard_decode([&]() -> DecodeResult {
    ThreadState& ts = thread_state();
    trim_thread_state(ts);
    ts.copy.reserve(bytes.size() + simdjson::SIMDJSON_PADDING);
    ts.copy.assign(bytes);
    DecodeResult result(std::in_place_type<DomainEvent>);
    const simdjson::padded_string_view json(ts.copy.data(), bytes.size(), ts.copy.capacity());
    if (auto error = decode_fields(ts, json, shape, std::get<DomainEvent>(result))) result = std::move(*error);
    return result;
  });
}

namespace {

// `text` checked as one JSON object: by the scan first when `scan`, else (and whenever the scan
// does not take it) by On-Demand, which gives the reason.
std::optional<std::string> check_object(std::string_view text, bool scan) {
  try {
    ThreadState& ts = thread_state();
    trim_thread_state(ts);
    ts.copy.reserve(text.size() + simdjson::SIMDJSON_PADDING);
    ts.copy.assign(text);
    if (scan && scan_json_object(ts.copy.data(), text.size())) return std::nullopt;
    const simdjson::padded_string_view json(ts.copy.data(), text.size(), ts.copy.capacity());
    od::document doc;
    if (auto e = ts.parser.iterate(json).get(doc)) return std::string(simdjson::error_message(e));
    od::json_type top;
    if (auto e = doc.type().get(top)) return std::string(simdjson::error_message(e));
    if (top != od::json_type::object) return "expected a JSON object, got " + std::string(type_name(top));
    od::value v;
    if (auto e = doc.get_value().get(v)) return std::string(simdjson::error_message(e));
    const char* end = nullptr;
    if (auto e = walk(v, 1, end)) return std::string(simdjson::error_message(e));
    if (!doc.current_location().error()) return std::string(simdjson::error_message(simdjson::TRAILING_CONTENT));
    return std::nullopt;
  } catch (const std::bad_alloc&) {
    return std::string("out of memory while validating JSON");
  } catch (...) {
    return std::string("internal error while validating JSON");
  }
}

}  // namespace

std::optional<std::string> check_json_object(std::string_view text) { return check_object(text, true); }

std::optional<std::string> json_internal::check_json_object_full_pass(std::string_view text) {
  return check_object(text, false);
}

}  // namespace kingest::codecs
