#include "kafka/properties.h"

#include <gtest/gtest.h>

namespace kingest::kafka {
namespace {

TEST(ConsumerProperties, SettingsThatCarryCorrectnessAreRefusedWithTheFlagToUseInstead) {
  const std::map<std::string, std::string> cases[] = {
      {{"enable.auto.commit", "true"}},       {{"enable.auto.offset.store", "true"}},
      {{"auto.commit.enable", "true"}},       {{"group.id", "other"}},
      {{"auto.offset.reset", "latest"}},      {{"isolation.level", "read_uncommitted"}},
      {{"partition.assignment.strategy", "range"}}, {{"bootstrap.servers", "127.0.0.1:1"}},
      {{"metadata.broker.list", "127.0.0.1:1"}},
  };
  for (const auto& props : cases) {
    auto s = check_consumer_properties(props);
    ASSERT_FALSE(s.ok()) << props.begin()->first;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(props.begin()->first), std::string::npos) << s;
  }
  EXPECT_NE(check_consumer_properties({{"group.id", "x"}}).message().find("--group"), std::string::npos);
  EXPECT_NE(check_consumer_properties({{"bootstrap.servers", "x"}}).message().find("--brokers"), std::string::npos);
  EXPECT_NE(check_consumer_properties({{"auto.offset.reset", "earliest"}}).message().find("--from"), std::string::npos);
}

TEST(ConsumerProperties, TuningAndTheEnforcedValuesThemselvesAreAccepted) {
  EXPECT_TRUE(check_consumer_properties({{"session.timeout.ms", "4000"},
                                         {"security.protocol", "SASL_SSL"},
                                         {"fetch.max.bytes", "1048576"},
                                         {"enable.auto.commit", "False"},
                                         {"isolation.level", "read_committed"}})
                  .ok());
}

TEST(ProducerProperties, AcksBelowAllAndAnotherClusterAreRefused) {
  EXPECT_FALSE(check_producer_properties({{"acks", "1"}}).ok());
  EXPECT_FALSE(check_producer_properties({{"request.required.acks", "0"}}).ok());
  EXPECT_FALSE(check_producer_properties({{"bootstrap.servers", "x:1"}}).ok());
  EXPECT_FALSE(check_producer_properties({{"transactional.id", "t"}}).ok());
  EXPECT_TRUE(check_producer_properties({{"acks", "all"}, {"linger.ms", "20"}, {"sasl.username", "u"}}).ok());
  EXPECT_TRUE(check_producer_properties({{"acks", "-1"}}).ok());
}

}  // namespace
}  // namespace kingest::kafka
