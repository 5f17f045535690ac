#include "workload/generator.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "codecs/json_codec.h"

namespace kingest::workload {
namespace {

TEST(Generator, IsDeterministicForASeed) {
  GeneratorOptions o{.events = 500, .aggregates = 20, .seed = 9};
  Generator a(o), b(o);
  GeneratedEvent x, y;
  while (a.next(x)) {
    ASSERT_TRUE(b.next(y));
    EXPECT_EQ(x.value, y.value);
    EXPECT_EQ(x.topic, y.topic);
  }
  EXPECT_FALSE(b.next(y));
  o.seed = 10;
  Generator c(o);
  Generator d({.events = 500, .aggregates = 20, .seed = 9});
  c.next(x);
  d.next(y);
  EXPECT_NE(x.value, y.value);
}

TEST(Generator, EmitsVersionsInOrderInterleavedAcrossStreamsInTheSeedShape) {
  Generator g({.events = 2000, .aggregates = 100, .seed = 3});
  std::map<std::string, int64_t> last;
  std::set<std::string> topics;
  GeneratedEvent e;
  uint64_t n = 0, switches = 0;
  std::string prev_stream;
  while (g.next(e)) {
    ++n;
    auto d = codecs::decode_json(e.value);
    ASSERT_TRUE(std::holds_alternative<DomainEvent>(d)) << std::get<DecodeError>(d).reason;
    const auto& ev = std::get<DomainEvent>(d);
    EXPECT_EQ(ev.aggregate_version, last[e.stream] + 1) << e.stream;
    last[e.stream] = ev.aggregate_version;
    EXPECT_EQ(e.key, ev.aggregate_id) << "Kafka key = aggregate id";
    EXPECT_EQ(ev.payload, e.event.payload);
    EXPECT_GE(ev.payload.size(), 150u);
    EXPECT_LE(ev.payload.size(), 700u);
    topics.insert(e.topic);
    if (e.stream != prev_stream) ++switches;
    prev_stream = e.stream;
  }
  EXPECT_EQ(n, 2000u);
  EXPECT_EQ(last.size(), 100u);
  for (const auto& [s, v] : last) EXPECT_EQ(v, 20) << s;
  EXPECT_EQ(topics.size(), 4u);
  EXPECT_GT(switches, 1500u) << "streams are interleaved, not produced one after another";
}

}  // namespace
}  // namespace kingest::workload
