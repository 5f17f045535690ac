// Identifier and revision vocabulary shared by every layer of kurrent-ingest.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "core/named_type.h"

namespace kingest {

// Dense number stamped on each batch at the source (0, 1, 2, ...); never a Kafka offset.
using SequenceNumber = NamedType<uint64_t, struct SequenceNumberTag>;
// A message's position inside one Kafka partition. Offsets have holes (transaction markers,
// compaction), so "offset + 1" is not "the next message".
using KafkaOffset = NamedType<int64_t, struct KafkaOffsetTag>;
// 0-based position of an event inside one KurrentDB stream.
using StreamRevision = NamedType<uint64_t, struct StreamRevisionTag>;
// Generation of a partition assignment; a completion from an older epoch never commits.
using AssignmentEpoch = NamedType<uint64_t, struct AssignmentEpochTag>;

// What an append expects the stream to look like (KurrentDB semantics).
struct ExpectNoStream {
  auto operator<=>(const ExpectNoStream&) const = default;
};
struct ExpectAny {
  auto operator<=>(const ExpectAny&) const = default;
};
struct ExpectStreamExists {
  auto operator<=>(const ExpectStreamExists&) const = default;
};
using ExpectedRevision = std::variant<StreamRevision, ExpectNoStream, ExpectAny, ExpectStreamExists>;

std::string to_string(const ExpectedRevision& e);

// Topic + partition, the unit of Kafka ordering and of offset commits.
struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const TopicPartition&) const = default;
};
std::string to_string(const TopicPartition& tp);

}  // namespace kingest
