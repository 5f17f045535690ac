// The scan (json_scan.cc) against the full pass (json_decode.cc). Whatever the scan accepts must
// decode to the event the full pass gives; whatever it leaves must come out of decode_json exactly
// as the full pass has it, errors and their reasons included. The same for check_json_object.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "codecs/internal/json_decoding.h"
#include "codecs/json_codec.h"

namespace kingest::codecs {
namespace {

using json_internal::check_json_object_full_pass;
using json_internal::decode_json_full_pass;
using json_internal::Member;
using json_internal::scan_event;
using json_internal::scan_json_object;

// The scan's event, or nullopt when it leaves the input to the full pass. The input gets
// simdjson's padding after it, as every caller's does.
std::optional<DomainEvent> scan(std::string_view input, JsonShape shape = JsonShape::kFlat) {
  std::string padded;
  padded.reserve(input.size() + kValuePadding);
  padded.assign(input);
  std::vector<Member> members;
  DomainEvent event;
  if (!scan_event(padded.data(), padded.size(), shape, members, event)) return std::nullopt;
  return event;
}

std::string describe(const DecodeResult& r) {
  if (const auto* error = std::get_if<DecodeError>(&r)) return "error: " + error->reason;
  const auto& e = std::get<DomainEvent>(r);
  return "event id=" + e.event_id.str() + " type=" + e.event_type.str() + " aggregate=" + e.aggregate_type.str() +
         "/" + e.aggregate_id.str() + " v" + std::to_string(e.aggregate_version) + " corr=" +
         e.correlation_id.str() + " cause=" + e.causation_id.str() + " at=" + e.occurred_at.str() +
         " content=" + e.content_type.str() + " payload=" + e.payload;
}

std::string describe(const DomainEvent& e) { return describe(DecodeResult(e)); }

std::vector<std::string> common_envelopes() {
  std::vector<std::string> out;
  out.emplace_back(R"({"eventId":"550e8400-e29b-41d4-a716-446655440000","eventType":"TaskCreated",)"
                   R"("aggregateId":"t-1","aggregateType":"Task","aggregateVersion":1,)"
                   R"("occurredOn":"2024-01-02T03:04:05.678Z","title":"x"})");
  out.emplace_back(R"({"eventType":"TaskUpdated","aggregateId":"t-1","aggregateType":"Task","aggregateVersion":12,)"
                   R"("correlationId":"c-1","causationId":null,"occurredAt":"","timestamp":"2024-01-02T03:04:05Z",)"
                   R"("data":{"a":[1,-2.5e+3,0.0,true,false,null,{"b":"c\"d\\e\/f\b\f\n\r\t"}],"empty":{},"arr":[]},)"
                   R"("metadata":{"m":1}})");
  // Whitespace everywhere it may be, and UTF-8 beyond ASCII.
  out.emplace_back("{ \"aggregateVersion\" : 0 ,\n\t\"eventType\":\"A\", \"aggregateType\" :\"B\",\r\n "
                   "\"aggregateId\":\"\xe5\xb1\xb1\" , \"note\" : \"\xe8\x84\x86\xe5\xbc\xb1\xe6\x80\xa7 \xc3\xa9\" , "
                   "\"n\" : 1E5 , \"z\":-0 }  \n");
  out.emplace_back(R"({"eventType":"A","aggregateType":"B","aggregateId":"c","aggregateVersion":999999999999999999})");
  out.emplace_back(R"({"eventType":"A","aggregateType":"B","aggregateId":"c","aggregateVersion":3,"eventId":null,)"
                   R"("occurredOn":null,"occurredAt":null})");
  return out;
}

std::vector<std::string> golden_inputs() {
  std::vector<std::string> out;
  for (const char* dir : {"json", "json-nested"}) {
    for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(KI_GOLDEN_DIR) / dir)) {
      const std::string name = entry.path().filename().string();
      if (name.ends_with(".expected.json")) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  return out;
}

TEST(JsonScan, DecodesTheCommonEnvelopesAsTheFullPassDoes) {
  for (const std::string& input : common_envelopes()) {
    for (JsonShape shape : {JsonShape::kFlat, JsonShape::kNested}) {
      const DecodeResult full = decode_json_full_pass(input, shape);
      const std::optional<DomainEvent> scanned = scan(input, shape);
      if (shape == JsonShape::kNested && std::holds_alternative<DecodeError>(full)) {
        EXPECT_FALSE(scanned) << input;  // the nested shape's errors are the full pass's to give
        continue;
      }
      ASSERT_TRUE(std::holds_alternative<DomainEvent>(full)) << input << "\n" << describe(full);
      ASSERT_TRUE(scanned) << "the scan left a common envelope to the full pass: " << input;
      EXPECT_EQ(describe(*scanned), describe(full)) << input;
    }
  }
}

TEST(JsonScan, LeavesWhatItDoesNotDecodeToTheFullPass) {
  const std::string base = R"("eventType":"A","aggregateType":"B","aggregateId":"c","aggregateVersion":1)";
  const std::vector<std::string> left = {
      "{" + base + R"(,"k\"ey":1})",                 // an escape in a top-level key
      "{" + base + R"(,"e\u0076entId":"x"})",        // ... that names an envelope field once unescaped
      "{" + base + R"(,"eventId":"a\"b"})",          // an escape in an envelope string
      "{" + base + R"(,"p":"\u00e9"})",              // a \u escape in the payload
      "{" + base + R"(,"p":"\ud800"})",              // a lone surrogate
      "{" + base + R"(,"occurredOn":1700000000000})",  // epoch milliseconds
      "{" + base + R"(,"occurredOn":{"a":1}})",      // a time that is an object
      R"({"eventType":"A","aggregateType":"B","aggregateId":7,"aggregateVersion":1})",
      R"({"eventType":"A","aggregateType":"B","aggregateId":"c","aggregateVersion":1.0})",
      R"({"eventType":"A","aggregateType":"B","aggregateId":"c","aggregateVersion":-1})",
      R"({"eventType":"A","aggregateType":"B","aggregateId":"c","aggregateVersion":01})",
      R"({"eventType":"A","aggregateType":"B","aggregateId":"c","aggregateVersion":1234567890123456789})",
      R"({"eventType":"","aggregateType":"B","aggregateId":"c","aggregateVersion":1})",
      "{" + base + R"(,"eventType":"A"})",           // a duplicate envelope field
      "{" + base + std::string(",\"p\":") + std::string(64, '[') + std::string(64, ']') + "}",  // deep
      "{" + base + "} x",                            // trailing content
      "{" + base + ",}",                             // a trailing comma
      "{" + base + ",\"p\":\"\x01\"}",               // a control character in a string
      "{" + base + ",\"p\":\"\xc3\x28\"}",           // invalid UTF-8
      "{" + base + ",\"p\":tru}",                    // a truncated literal
      "{" + base + ",\"p\":1.}",                     // a number without its fraction's digits
      "{" + base,                                    // the object not closed
      R"({"aggregateType":"B","aggregateId":"c","aggregateVersion":1})",  // a required field missing
      "[" + base + "]",
      "",
  };
  for (const std::string& input : left) {
    EXPECT_FALSE(scan(input)) << input;
    EXPECT_EQ(describe(decode_json(input)), describe(decode_json_full_pass(input, JsonShape::kFlat))) << input;
  }
  // Deep nesting that the scan leaves is still decoded, by the full pass.
  const std::string deep = "{" + base + ",\"p\":" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_TRUE(std::holds_alternative<DomainEvent>(decode_json(deep)));
}

// Compares the scan with the full pass on `input` in both shapes, and as a binary envelope's
// payload (check_json_object); counts what the scan decoded and what it found a valid object.
void expect_agreement(const std::string& input, size_t& scanned, size_t& objects) {
  std::string padded;
  padded.reserve(input.size() + kValuePadding);
  padded.assign(input);
  const std::optional<std::string> checked = check_json_object_full_pass(input);
  if (scan_json_object(padded.data(), padded.size())) {
    ++objects;
    ASSERT_EQ(checked, std::nullopt) << "input: " << input;
  }
  ASSERT_EQ(check_json_object(input), checked) << "input: " << input;
  for (JsonShape shape : {JsonShape::kFlat, JsonShape::kNested}) {
    const DecodeResult full = decode_json_full_pass(input, shape);
    if (const std::optional<DomainEvent> event = scan(input, shape)) {
      ++scanned;
      ASSERT_EQ(describe(*event), describe(full)) << "input: " << input;
    }
    ASSERT_EQ(describe(decode_json(input, shape)), describe(full)) << "input: " << input;
  }
}

TEST(JsonScan, AgreesWithTheFullPassOnEverySingleEdit) {
  // Every byte of the common envelopes removed, and each of these inserted before every byte and
  // put in its place: the characters the grammar turns on, a control character, a lone UTF-8 lead.
  static constexpr std::string_view kEdits = "{}[]\":,\\ \t/u0-.eE+tfnl\x01\xc3";
  size_t scanned = 0;
  size_t objects = 0;
  size_t inputs = 0;
  for (const std::string& seed : common_envelopes()) {
    for (size_t at = 0; at <= seed.size(); ++at) {
      if (at < seed.size()) {
        std::string removed = seed;
        removed.erase(at, 1);
        ASSERT_NO_FATAL_FAILURE(expect_agreement(removed, scanned, objects));
        ++inputs;
      }
      for (char c : kEdits) {
        std::string inserted = seed;
        inserted.insert(at, 1, c);
        ASSERT_NO_FATAL_FAILURE(expect_agreement(inserted, scanned, objects));
        ++inputs;
        if (at < seed.size() && seed[at] != c) {
          std::string replaced = seed;
          replaced[at] = c;
          ASSERT_NO_FATAL_FAILURE(expect_agreement(replaced, scanned, objects));
          ++inputs;
        }
      }
    }
  }
  // Many edits leave valid envelopes (inside strings, whitespace), and the scan decodes those.
  EXPECT_GT(scanned, inputs / 10) << inputs << " inputs";
  EXPECT_GT(objects, inputs / 10) << inputs << " inputs";
}

// A mutation of `seed`: bytes replaced, inserted, removed or repeated, or the text cut short, one
// to three times; the replacements favour the characters JSON's grammar turns on, and letters and
// digits swapped for others keep many inputs valid.
std::string mutate(const std::string& seed, std::mt19937_64& rng) {
  static constexpr std::string_view kAlnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  static constexpr std::string_view kBytes = "{}[]\":,\\ \t\n/ubfnrt0123456789-+.eEal\x01\x1f\x7f\xc3\xa9\xff";
  std::string s = seed;
  const int ops = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < ops && !s.empty(); ++i) {
    const size_t at = rng() % s.size();
    switch (rng() % 8) {
      case 0: s[at] = kBytes[rng() % kBytes.size()]; break;
      case 1: s.insert(at, 1, kBytes[rng() % kBytes.size()]); break;
      case 2: s.erase(at, 1 + rng() % 3); break;
      case 3: s.resize(at); break;
      case 4: s.insert(at, s.substr(rng() % s.size(), 1 + rng() % 12)); break;
      case 5:
      case 6:  // a letter or digit for another: mostly still valid, so that the scan decodes it
        if (std::isalnum(static_cast<unsigned char>(s[at]))) s[at] = kAlnum[rng() % kAlnum.size()];
        break;
      default: s[at] = static_cast<char>(rng() & 0xff); break;
    }
  }
  return s;
}

TEST(JsonScan, AgreesWithTheFullPassOnMutatedEnvelopes) {
  std::vector<std::string> seeds = common_envelopes();
  for (std::string& g : golden_inputs()) seeds.push_back(std::move(g));
  ASSERT_GT(seeds.size(), 20u);
  std::mt19937_64 rng(20261206);
  size_t scanned = 0;
  size_t left = 0;
  for (int i = 0; i < 300000; ++i) {
    const std::string input = mutate(seeds[rng() % seeds.size()], rng);
    const JsonShape shape = (i % 4 == 0) ? JsonShape::kNested : JsonShape::kFlat;
    const DecodeResult full = decode_json_full_pass(input, shape);
    if (const std::optional<DomainEvent> event = scan(input, shape)) {
      ++scanned;
      ASSERT_EQ(describe(*event), describe(full)) << "input: " << input;
    } else {
      ++left;
    }
    ASSERT_EQ(describe(decode_json(input, shape)), describe(full)) << "input: " << input;
    ASSERT_EQ(check_json_object(input), check_json_object_full_pass(input)) << "input: " << input;
  }
  // Both sides of the scan were exercised: these are counts of a fixed sequence of inputs.
  EXPECT_GT(scanned, 10000u) << left << " left to the full pass";
  EXPECT_GT(left, 100000u) << scanned << " scanned";
}

}  // namespace
}  // namespace kingest::codecs
