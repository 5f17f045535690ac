// The librdkafka settings that `-X KEY=VALUE` may not change, because correctness rests on them:
// offsets are committed only once the store acknowledged the events, into the group `--group`
// names, on the brokers `--brokers` names; aborted transactions are never read; dead letters and
// replayed letters are acknowledged by every in-sync replica before their offsets count.
//
// A refused key is a usage error naming the key and what to use instead. A key set to the very
// value kurrent-ingest uses is accepted (a shared config file may spell it out).
//
//   if (auto s = check_consumer_properties(props); !s.ok()) return usage_error(s);
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"

namespace kingest::kafka {

// For the ingest consumer (replay, run, demo, bench) and the group progress reader.
absl::Status check_consumer_properties(const std::map<std::string, std::string>& properties);
// For every producer whose deliveries must be durable: dead-letter topics, `dlq replay`, replies.
absl::Status check_producer_properties(const std::map<std::string, std::string>& properties);

}  // namespace kingest::kafka
