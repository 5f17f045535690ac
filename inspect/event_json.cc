#include "inspect/event_json.h"

#include <simdjson.h>

#include <cstdio>
#include <ctime>

#include "absl/strings/escaping.h"
#include "core/json_writer.h"

namespace kingest::inspect {
namespace {

bool valid_utf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

void body_value(JsonWriter& w, std::string_view text, bool json_content) {
  if (json_content || (!text.empty() && (text.front() == '{' || text.front() == '['))) {
    if (auto j = valid_json(text)) {
      w.raw(*j);
      return;
    }
  }
  if (valid_utf8(text)) {
    w.value(text);
  } else {
    w.begin_object().key("base64").value(absl::Base64Escape(std::string(text))).end_object();
  }
}

}  // namespace

std::string ticks_to_iso8601(int64_t ticks) {
  if (ticks <= 0) return {};
  std::time_t secs = std::time_t(ticks / 10000000);
  int64_t micros = (ticks % 10000000) / 10;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(micros));
  return buf;
}

std::optional<std::string> valid_json(std::string_view text) {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(text);
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS) return std::nullopt;
  return simdjson::minify(root);
}

std::string event_json(const RecordedEventData& e) {
  JsonWriter w;
  w.begin_object();
  if (!e.stream.empty()) w.key("stream").value(e.stream);
  w.key("revision").value(e.revision.value());
  w.key("id").value(e.id.to_string());
  w.key("type").value(e.type);
  w.key("created").value(ticks_to_iso8601(e.created_ticks));
  if (e.position != 0) w.key("position").value(e.position);
  w.key("contentType").value(e.content_type);
  w.key("data");
  body_value(w, e.data, e.content_type == "application/json");
  w.key("metadata");
  if (e.metadata.empty()) {
    w.null();
  } else {
    body_value(w, e.metadata, true);
  }
  w.end_object();
  return w.take();
}

std::string summary_json(const StreamSummary& s) {
  JsonWriter w;
  w.begin_object()
      .key("stream").value(s.stream)
      .key("events").value(s.events)
      .key("last_revision").value(s.last_revision)
      .key("first_created").value(ticks_to_iso8601(s.first_created_ticks))
      .key("last_created").value(ticks_to_iso8601(s.last_created_ticks))
      .end_object();
  return w.take();
}

std::string pretty_json(std::string_view json) {
  std::string out;
  out.reserve(json.size() * 2);
  int depth = 0;
  bool in_string = false;
  auto newline = [&] {
    out.push_back('\n');
    out.append(size_t(depth) * 2, ' ');
  };
  for (size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < json.size()) {
        out.push_back(json[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out.push_back(c);
        break;
      case '{':
      case '[':
        out.push_back(c);
        if (i + 1 < json.size() && (json[i + 1] == '}' || json[i + 1] == ']')) {
          out.push_back(json[++i]);
        } else {
          ++depth;
          newline();
        }
        break;
      case '}':
      case ']':
        --depth;
        newline();
        out.push_back(c);
        break;
      case ',':
        out.push_back(c);
        newline();
        break;
      case ':':
        out.append(": ");
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace kingest::inspect
