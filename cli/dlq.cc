// `kurrent-ingest dlq replay`: puts dead letters back into Kafka once they are fixed, so that the
// next `replay` or `run` ingests them. Reads the NDJSON dead-letter file (one letter per line, as
// `--dlq-file` writes it) and produces each letter's bytes, with its key, to its original topic (or
// `--topic`), in file order: the order in which a stream's letters were written.
//
// The bytes are the line's `value` when present (edit it to fix a letter), else `value_base64`; the
// key is `key` (null: no key) or `key_base64`; the content-type header is `content_type`. A line
// that is not a dead letter is reported and skipped (exit 3 when any was). `--reason` keeps only
// letters with that reason (repeatable).
#include <simdjson.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <map>
#include <iostream>
#include <optional>
#include <set>

#include "absl/strings/escaping.h"
#include "cli/commands.h"
#include "codecs/codec.h"
#include "core/json_writer.h"
#include "kafka/producer.h"
#include "cli/exit_codes.h"
#include "kafka/properties.h"

namespace kingest::cli {
namespace {

struct DlqReplayOptions {
  std::string file;
  std::string brokers;
  std::string topic;
  std::vector<std::string> reasons;
  std::vector<std::string> properties;
};

// One letter's message, or why the line is not one.
struct Letter {
  std::string topic;
  std::optional<std::string> key;  // nullopt: the message had no key
  std::string value;
  std::string content_type;
};

absl::StatusOr<Letter> parse_letter(simdjson::dom::parser& parser, const std::string& line, std::string_view* reason) {
  simdjson::dom::element doc;
  if (parser.parse(line).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
    return absl::InvalidArgumentError("not a JSON object (a dead letter per line)");
  }
  std::string_view topic;
  if (doc["reason"].get(*reason) != simdjson::SUCCESS || doc["topic"].get(topic) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("a dead letter needs \"reason\" and \"topic\"");
  }
  Letter l;
  l.topic = std::string(topic);
  auto base64 = [](std::string_view text, std::string* out) {
    return absl::Base64Unescape(absl::string_view(text.data(), text.size()), out);
  };
  std::string_view text;
  if (doc["key_base64"].get(text) == simdjson::SUCCESS) {
    l.key.emplace();
    if (!base64(text, &*l.key)) return absl::InvalidArgumentError("key_base64 is not base64");
  } else if (doc["key"].get(text) == simdjson::SUCCESS) {
    l.key = std::string(text);
  }  // null or absent: no key
  if (doc["content_type"].get(text) == simdjson::SUCCESS) l.content_type = std::string(text);
  std::string_view value, value_b64;
  const bool has_value = doc["value"].get(value) == simdjson::SUCCESS;
  const bool has_b64 = doc["value_base64"].get(value_b64) == simdjson::SUCCESS;
  if (!has_value && !has_b64) return absl::InvalidArgumentError("a dead letter needs \"value\" or \"value_base64\"");
  std::string decoded;
  if (has_b64 && !base64(value_b64, &decoded)) return absl::InvalidArgumentError("value_base64 is not base64");
  // Files written before letters became lossless carry both, the `value` with U+FFFD where the
  // bytes were not UTF-8: the base64 holds the original then, unless the value was edited.
  if (has_value && (!has_b64 || replace_invalid_utf8(decoded) != value)) {
    l.value = std::string(value);
  } else {
    l.value = std::move(decoded);
  }
  return l;
}

// The order to produce letters in: each stream's letters together, in version order, where the
// stream's first letter stood in the file, keyed by aggregate id, so that the next run finds them
// in one partition in order (letters are often written out of order: a gap's later versions first).
// A letter whose value does not decode (a fixed decode error, say) keeps its place and its key.
std::vector<Letter*> in_version_order(std::vector<Letter>& letters) {
  struct Decoded {
    std::string stream;
    int64_t version = 0;
  };
  std::vector<std::optional<Decoded>> decoded(letters.size());
  std::map<std::string, std::vector<size_t>> by_stream;
  for (size_t i = 0; i < letters.size(); ++i) {
    Letter& l = letters[i];
    auto codec = l.content_type.empty() ? std::optional<codecs::Codec>(codecs::Codec::kJson)
                                        : codecs::codec_for_content_type(l.content_type);
    if (!codec) continue;
    std::string padded;
    padded.reserve(l.value.size() + kValuePadding);
    padded.assign(l.value);
    auto result = codecs::decode(*codec, padded);
    const auto* e = std::get_if<DomainEvent>(&result);
    if (e == nullptr) continue;
    decoded[i] = Decoded{e->aggregate_type + "-" + e->aggregate_id, e->aggregate_version};
    l.key = e->aggregate_id;
    by_stream[decoded[i]->stream].push_back(i);
  }
  std::vector<Letter*> out;
  out.reserve(letters.size());
  std::set<std::string> emitted;
  for (size_t i = 0; i < letters.size(); ++i) {
    if (!decoded[i]) {
      out.push_back(&letters[i]);
      continue;
    }
    if (!emitted.insert(decoded[i]->stream).second) continue;
    auto idx = by_stream[decoded[i]->stream];
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return decoded[a]->version < decoded[b]->version; });
    for (size_t k : idx) out.push_back(&letters[k]);
  }
  return out;
}

int run_dlq_replay(const DlqReplayOptions& o) {
  std::ifstream in(o.file);
  if (!in) return usage_error(absl::InvalidArgumentError("--file: cannot read " + o.file));
  auto props = parse_properties(o.properties);
  if (!props.ok()) return usage_error(props.status());
  if (auto st = kafka::check_producer_properties(*props); !st.ok()) return usage_error(st);
  const std::set<std::string> reasons(o.reasons.begin(), o.reasons.end());
  auto producer = kafka::Producer::create(o.brokers, *props);
  if (!producer.ok()) return usage_error(producer.status());

  simdjson::dom::parser parser;
  std::string line;
  uint64_t line_no = 0, produced = 0, skipped = 0, malformed = 0;
  absl::Status failed;
  std::vector<Letter> letters;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string_view reason;
    auto letter = parse_letter(parser, line, &reason);
    if (!letter.ok()) {
      // One bad line (a torn write, a bad edit) must not hold back the letters around it.
      ++malformed;
      std::cerr << "dlq replay: " << o.file << ":" << line_no << ": " << letter.status().message()
                << "; line skipped\n";
      continue;
    }
    if (!reasons.empty() && !reasons.contains(std::string(reason))) {
      ++skipped;
      continue;
    }
    letters.push_back(std::move(*letter));
  }
  for (const Letter* letter : in_version_order(letters)) {
    const std::string to = o.topic.empty() ? letter->topic : o.topic;
    // A default string_view (null data) produces a message without a key.
    const std::string_view key = letter->key ? std::string_view(*letter->key) : std::string_view();
    failed = (*producer)->produce(to, key, letter->value, letter->content_type);
    if (!failed.ok()) break;
    ++produced;
  }
  // What was queued is delivered (or reported failed) before exiting, whatever stopped the loop.
  auto flushed = (*producer)->flush(std::chrono::seconds(60));
  std::cout << "dlq replay: " << produced << " dead letter(s) produced to Kafka";
  if (skipped > 0) std::cout << ", " << skipped << " skipped by --reason";
  if (malformed > 0) std::cout << ", " << malformed << " malformed line(s) skipped";
  std::cout << std::endl;
  if (!failed.ok()) return fatal_error(failed);
  if (!flushed.ok()) return fatal_error(flushed);
  return malformed > 0 ? kExitDeadLetters : kExitDone;
}

}  // namespace

void register_dlq(CLI::App& app, ActionSetter set_action) {
  auto* dlq = app.add_subcommand("dlq", "Work with dead letters");
  dlq->require_subcommand(1);
  auto o = std::make_shared<DlqReplayOptions>();
  auto* cmd = dlq->add_subcommand("replay", "Produce (fixed) dead letters back to Kafka for the next replay or run");
  cmd->add_option("--file", o->file, "The dead-letter NDJSON file (as written by --dlq-file)")->required();
  cmd->add_option("--brokers", o->brokers, "Kafka bootstrap servers HOST:PORT[,...]")->required();
  cmd->add_option("--topic", o->topic, "Produce every letter to this topic (default: each letter's own topic)");
  cmd->add_option("--reason", o->reasons, "Only letters with this reason (repeatable), e.g. decode-error");
  cmd->add_option("-X,--kafka-property", o->properties, "librdkafka producer property KEY=VALUE (repeatable)");
  cmd->callback([o, set_action] { set_action([o] { return run_dlq_replay(*o); }); });
}

}  // namespace kingest::cli
