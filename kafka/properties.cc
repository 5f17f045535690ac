#include "kafka/properties.h"

#include <vector>

#include "absl/strings/ascii.h"

namespace kingest::kafka {
namespace {

struct Locked {
  const char* key;
  std::vector<const char*> accepted;  // values equal to what kurrent-ingest sets (lower case)
  const char* instead;
};

// Aliases are listed too: librdkafka accepts both spellings.
const std::vector<Locked>& consumer_locked() {
  static const std::vector<Locked> k = {
      {"bootstrap.servers", {}, "use --brokers"},
      {"metadata.broker.list", {}, "use --brokers"},
      {"group.id", {}, "use --group"},
      {"enable.auto.commit", {"false"},
       "offsets are committed only after the store acknowledged the events; choose the group with --group"},
      {"auto.commit.enable", {"false"},
       "offsets are committed only after the store acknowledged the events; choose the group with --group"},
      {"enable.auto.offset.store", {"false"},
       "offsets are stored only after the store acknowledged the events; choose the group with --group"},
      {"auto.offset.reset", {"error"},
       "choose the start with --from (committed, beginning, time:..., TOPIC:PARTITION:OFFSET) and what happens "
       "to deleted data with --on-data-loss"},
      {"isolation.level", {"read_committed"}, "aborted transactional messages must never be ingested"},
      {"partition.assignment.strategy", {"cooperative-sticky"},
       "every member of the group must use the same assignor (cooperative-sticky)"},
      {"offset.store.method", {"broker"}, "offsets live in the consumer group (--group)"},
  };
  return k;
}

const std::vector<Locked>& producer_locked() {
  static const std::vector<Locked> k = {
      {"bootstrap.servers", {}, "use --brokers"},
      {"metadata.broker.list", {}, "use --brokers"},
      {"acks", {"all", "-1"}, "a delivery counts only once every in-sync replica has it (acks=all)"},
      {"request.required.acks", {"all", "-1"}, "a delivery counts only once every in-sync replica has it (acks=all)"},
      {"transactional.id", {}, "deliveries are acknowledged one by one, not in transactions"},
  };
  return k;
}

absl::Status check(const std::map<std::string, std::string>& properties, const std::vector<Locked>& locked,
                   const char* what) {
  for (const auto& [key, value] : properties) {
    for (const auto& l : locked) {
      if (key != l.key) continue;
      const std::string v = absl::AsciiStrToLower(value);
      bool same = false;
      for (const char* a : l.accepted) same = same || v == a;
      if (same) continue;
      std::string fixed;
      if (!l.accepted.empty()) fixed = std::string(" (kurrent-ingest sets ") + l.key + "=" + l.accepted.front() + ")";
      return absl::InvalidArgumentError("-X " + key + "=" + value + ": the " + what + " setting " + key +
                                        " cannot be changed" + fixed + ": " + l.instead);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status check_consumer_properties(const std::map<std::string, std::string>& properties) {
  return check(properties, consumer_locked(), "Kafka consumer");
}

absl::Status check_producer_properties(const std::map<std::string, std::string>& properties) {
  return check(properties, producer_locked(), "Kafka producer");
}

}  // namespace kingest::kafka
