// The engine's rules on their own, without TBB, a sink or threads: the per-stream scheduler
// (StreamTable: one claim per stream, order by version, gaps held, merging, the cache and its
// briefs), the revision rules (groups, expected revisions, appends, written prefixes) and the
// append slots.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "pipeline/append_slots.h"
#include "pipeline/revision_rules.h"
#include "pipeline/stream_table.h"

namespace kingest::pipeline {
namespace {

// Keys spread like hashes (some colliding in their home slots), the same ones every run.
struct Xorshift {
  uint64_t x;
  uint64_t operator()() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
};

const TopicPartition kTp{"task-events", 0};

// A batch of one stream's events with the given aggregate versions (1-based), in this order.
BatchPtr batch_of(const std::string& aggregate, const std::vector<int64_t>& versions, int64_t first_offset = 0) {
  auto b = std::make_shared<Batch>();
  for (size_t i = 0; i < versions.size(); ++i) {
    SourceMessage m;
    m.tp = kTp;
    m.offset = KafkaOffset{first_offset + int64_t(i)};
    b->messages.push_back(std::move(m));
    DomainEvent e;
    e.event_id = Uuid::v5(kEventIdNamespace, aggregate + "/" + std::to_string(versions[i])).to_string();
    e.event_type = "TaskUpdated";
    e.aggregate_id = aggregate;
    e.aggregate_type = "Task";
    e.aggregate_version = versions[i];
    e.payload = R"({"v":)" + std::to_string(versions[i]) + "}";
    e.content_type = std::string(kJsonContentType);
    b->decoded.emplace_back(std::move(e));
  }
  b->detached.assign(versions.size(), 0);
  return b;
}

std::vector<uint32_t> all_of(const Batch& b) {
  std::vector<uint32_t> out(b.messages.size());
  for (uint32_t i = 0; i < out.size(); ++i) out[i] = i;
  return out;
}

const RevisionRules kRules{VersionBase{VersionBase::Kind::kOneBased}, 1u << 20};

// The batch's events of one stream cut into groups, appended after any groups already in `out`.
std::vector<GroupPtr> cut_all(const BatchPtr& b, const std::string& stream, const RevisionRules& rules,
                              std::vector<GroupPtr> out = {}) {
  b->facts.clear();
  for (const auto& d : b->decoded) b->facts.push_back(*facts_of(std::get<DomainEvent>(d), rules));
  cut_groups(b, stream, all_of(*b), rules, out);
  return out;
}

// One group per call (the versions must be contiguous).
GroupPtr group_of(const BatchPtr& b, const std::string& stream) {
  auto groups = cut_all(b, stream, kRules);
  EXPECT_EQ(groups.size(), 1u);
  return std::move(groups.front());
}

std::vector<int64_t> versions_of(const Group& g) {
  std::vector<int64_t> out;
  for (const auto& it : g.items) out.push_back(it.event().aggregate_version);
  return out;
}

TEST(RevisionRules, CutsRunsOfContiguousVersionsUnderTheSizeLimit) {
  auto b = batch_of("a", {1, 2, 3, 5, 6});
  auto groups = cut_all(b, "Task-a", kRules);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0]->first_revision, 0u);
  EXPECT_EQ(versions_of(*groups[0]), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(groups[1]->first_revision, 4u);
  EXPECT_EQ(groups[0]->stream, "Task-a");
  EXPECT_EQ(groups[1]->stream, "Task-a");
  RevisionRules small = kRules;
  small.max_append_bytes = 2 * estimated_size(std::get<DomainEvent>(b->decoded[0]));
  EXPECT_EQ(cut_all(b, "Task-a", small).size(), 3u) << "{1,2} {3} {5,6}";
  // Appended after the groups already there, which keep their streams.
  auto both = cut_all(b, "Task-b", small, cut_all(b, "Task-a", kRules));
  ASSERT_EQ(both.size(), 5u);
  EXPECT_EQ(both[1]->stream, "Task-a");
  EXPECT_EQ(both[2]->stream, "Task-b");
  EXPECT_EQ(versions_of(*both[2]), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(both[4]->stream, "Task-b");
}

TEST(RevisionRules, ExpectedRevisionFollowsTheFirstVersion) {
  EXPECT_TRUE(std::holds_alternative<ExpectNoStream>(expected_for(kRules, 0)));
  EXPECT_EQ(std::get<StreamRevision>(expected_for(kRules, 7)).value(), 6u);
  RevisionRules none{VersionBase{VersionBase::Kind::kNone}, 1u << 20};
  EXPECT_TRUE(std::holds_alternative<ExpectAny>(expected_for(none, 7)));
}

TEST(RevisionRules, AnAppendCarriesIdsAndCausationFromTheStreamsLastEvent) {
  auto b = batch_of("a", {4, 5});
  auto g = group_of(b, "Task-a");
  StreamState st;
  st.next_revision = 3;
  st.last_id = Uuid::v4();
  EventIds ids;
  const Uuid run = Uuid::v4();
  AppendRequest req = build_append(*g, st, kRules, &ids, &run);
  EXPECT_EQ(req.stream, "Task-a");
  EXPECT_EQ(std::get<StreamRevision>(req.expected).value(), 2u);
  ASSERT_EQ(req.events.size(), 2u);
  EXPECT_EQ(std::vector<Uuid>(ids.begin(), ids.end()), proposed_ids(*g, 2));
  EXPECT_EQ(req.events[0].id.to_string(), std::get<DomainEvent>(b->decoded[0]).event_id);
  EXPECT_NE(req.events[0].metadata.find("\"$causationId\":\"" + st.last_id->to_string() + "\""), std::string::npos);
  EXPECT_NE(req.events[1].metadata.find("\"$causationId\":\"" + ids[0].to_string() + "\""), std::string::npos);
  EXPECT_NE(req.events[0].metadata.find("\"ingestRunId\":\"" + run.to_string() + "\""), std::string::npos);
  EXPECT_EQ(req.events[1].metadata.find("ingestRunId"), std::string::npos) << "only the append's first event";
  EXPECT_EQ(req.events[0].data, R"({"v":4})");
}

TEST(RevisionRules, AWrittenPrefixIsDuplicatesUpToTheFirstDifferentId) {
  const std::vector<Uuid> proposed = {Uuid::v4(), Uuid::v4(), Uuid::v4()};
  std::vector<RecordedEventData> written(3);
  for (size_t k = 0; k < 3; ++k) {
    written[k].id = proposed[k];
    written[k].revision = StreamRevision{10 + k};
  }
  auto v = compare_written(proposed, 10, written);
  EXPECT_EQ(v.duplicates, 3u);
  EXPECT_FALSE(v.conflict);
  written[2].id = Uuid::v4();
  v = compare_written(proposed, 10, written);
  EXPECT_EQ(v.duplicates, 2u);
  EXPECT_TRUE(v.conflict);
  EXPECT_NE(v.detail.find("revision 12 holds event " + written[2].id.to_string()), std::string::npos) << v.detail;
  written.resize(1);
  v = compare_written(proposed, 10, written);
  EXPECT_EQ(v.duplicates, 1u);
  EXPECT_TRUE(v.conflict) << "the stream claims revision 11 but the read has nothing there";
}

TEST(StreamTable, OneGroupPerStreamRunsAtATimeAndTheNextFollowsItsRelease) {
  StreamTable table(true, 1u << 20);
  auto [st, fresh] = table.find_or_add("Task-a", kTp);
  ASSERT_TRUE(fresh);
  const auto now = Clock::now();
  auto first = table.offer(group_of(batch_of("a", {1}), "Task-a"), now);
  ASSERT_TRUE(first.run) << "revision 0 fits a new stream";
  EXPECT_TRUE(st->claimed);
  EXPECT_FALSE(table.offer(group_of(batch_of("a", {2}, 1), "Task-a"), now).run) << "the stream is claimed";
  EXPECT_FALSE(table.offer(group_of(batch_of("a", {3}, 2), "Task-a"), now).run);
  st->next_revision = 1;  // the claim holder's append answered
  auto next = table.release(*st, now);
  ASSERT_TRUE(next.run);
  EXPECT_EQ(versions_of(*next.run), (std::vector<int64_t>{2, 3})) << "waiting contiguous groups merge into one append";
}

// `release` without a time (the engine's): a stream with nothing waiting is free again, one with a
// group waiting hands it on, and one whose waiting group cannot run holds it with its gap open.
TEST(StreamTable, AReleaseAtTheTimeOfTheCallFreesHandsOnOrHolds) {
  StreamTable table(true, 1u << 20);
  auto [st, fresh] = table.find_or_add("Task-a", kTp);
  ASSERT_TRUE(fresh);
  const auto now = Clock::now();
  ASSERT_TRUE(table.offer(group_of(batch_of("a", {1}), "Task-a"), now).run);
  st->next_revision = 1;
  EXPECT_FALSE(table.release(*st).run) << "nothing waits";
  EXPECT_FALSE(st->claimed);
  auto second = table.offer(group_of(batch_of("a", {2}, 1), "Task-a"), now);
  ASSERT_TRUE(second.run) << "a free stream runs its next group at once";
  EXPECT_FALSE(table.offer(group_of(batch_of("a", {3}, 2), "Task-a"), now).run) << "the stream is claimed";
  st->next_revision = 2;
  auto next = table.release(*st);
  ASSERT_TRUE(next.run) << "the waiting group is handed on";
  EXPECT_EQ(versions_of(*next.run), (std::vector<int64_t>{3}));
  EXPECT_FALSE(table.offer(group_of(batch_of("a", {5}, 3), "Task-a"), now).run);
  st->next_revision = 3;
  EXPECT_FALSE(table.release(*st).run) << "version 5 waits for version 4";
  EXPECT_EQ(table.stats().gaps, 1u);
  EXPECT_EQ(table.stats().held_events, 1u);
}

// A claimed stream's group that waited for an append slot comes back as it was when nothing of its
// stream arrived meanwhile, and merged with what did arrive (in version order) otherwise.
TEST(StreamTable, AGroupBackFromWaitingForASlotMergesWithWhatArrivedMeanwhile) {
  StreamTable table(true, 1u << 20);
  auto [st, fresh] = table.find_or_add("Task-a", kTp);
  ASSERT_TRUE(fresh);
  const auto now = Clock::now();
  auto first = table.offer(group_of(batch_of("a", {1, 2}), "Task-a"), now);
  ASSERT_TRUE(first.run);
  Group* parked = first.run.get();
  auto same = table.unpark(std::move(first.run));
  EXPECT_EQ(same.get(), parked) << "nothing waited: the group itself";
  EXPECT_EQ(versions_of(*same), (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(st->claimed);
  EXPECT_FALSE(table.offer(group_of(batch_of("a", {3}, 2), "Task-a"), now).run) << "the stream is claimed";
  EXPECT_EQ(table.stats().pending_groups, 1u);
  auto merged = table.unpark(std::move(same));
  ASSERT_TRUE(merged);
  EXPECT_EQ(versions_of(*merged), (std::vector<int64_t>{1, 2, 3})) << "the later group merges into it";
  EXPECT_EQ(table.stats().pending_groups, 0u);
  EXPECT_EQ(table.stats().events_reordered, 0u) << "nothing came before its turn";
  st->next_revision = 3;
  EXPECT_FALSE(table.release(*st, now).run) << "nothing left";
}

// An earlier version that arrives while a later group waits for a slot goes first, and the waiting
// group counts as reordered, as it would have waiting among the stream's groups.
TEST(StreamTable, AnEarlierVersionArrivingWhileAGroupWaitsForASlotGoesFirst) {
  StreamTable table(true, 1u << 20);
  auto [st, fresh] = table.find_or_add("Task-a", kTp);
  ASSERT_TRUE(fresh);
  const auto now = Clock::now();
  ASSERT_TRUE(table.offer(group_of(batch_of("a", {1}), "Task-a"), now).run);
  st->next_revision = 1;
  EXPECT_FALSE(table.release(*st, now).run);
  st->next_revision = 2;  // version 2 was written by an earlier run: version 3's group may run
  auto later = table.offer(group_of(batch_of("a", {3}, 2), "Task-a"), now);
  ASSERT_TRUE(later.run);
  EXPECT_FALSE(table.offer(group_of(batch_of("a", {2}, 1), "Task-a"), now).run) << "the stream is claimed";
  auto back = table.unpark(std::move(later.run));
  ASSERT_TRUE(back);
  EXPECT_EQ(versions_of(*back), (std::vector<int64_t>{2, 3})) << "in version order, the earlier one first";
  EXPECT_EQ(table.stats().events_reordered, 1u);
}

TEST(StreamTable, ALaterVersionWaitsForTheMissingOneFromAnyPartition) {
  StreamTable table(true, 1u << 20);
  auto [st, fresh] = table.find_or_add("Task-a", kTp);
  const auto now = Clock::now();
  auto held = table.offer(group_of(batch_of("a", {3, 4}), "Task-a"), now);
  EXPECT_FALSE(held.run) << "revision 2 cannot go before 0 and 1";
  EXPECT_EQ(held.release.size(), 1u) << "its batch is released: the held events are detached from it";
  auto stats = table.stats();
  EXPECT_EQ(stats.held_events, 2u);
  EXPECT_EQ(stats.gaps, 1u);
  auto first = table.offer(group_of(batch_of("a", {1, 2}, 10), "Task-a"), now);
  ASSERT_TRUE(first.run);
  EXPECT_EQ(versions_of(*first.run), (std::vector<int64_t>{1, 2, 3, 4})) << "the held versions follow in one append";
  EXPECT_EQ(table.stats().events_reordered, 2u);
  EXPECT_EQ(table.stats().gaps, 0u);
  st->next_revision = 4;
  EXPECT_FALSE(table.release(*st, now).run) << "nothing left";
}

TEST(StreamTable, ADroppedStateResumesFromItsBriefAndADeadOneIsKept) {
  StreamTable table(true, 1u << 20);
  auto [a, fresh_a] = table.find_or_add("Task-a", kTp);
  a->next_revision = 7;
  a->last_id = Uuid::v4();
  const Uuid last = *a->last_id;
  auto [d, fresh_d] = table.find_or_add("Task-dead", kTp);
  d->dead = true;
  // A budget just under the two states: one must go, and its brief fits in the rest.
  const size_t budget = table.cache_bytes() - 1;
  EXPECT_EQ(table.evict(budget), 1u) << "the dead stream stays: later events must not take its revisions";
  EXPECT_EQ(table.stats().cached_streams, 1u);
  auto [again, fresh] = table.find_or_add("Task-a", kTp);
  EXPECT_TRUE(fresh);
  EXPECT_TRUE(again->from_brief);
  EXPECT_EQ(again->next_revision, 7u);
  ASSERT_TRUE(again->last_id.has_value());
  EXPECT_EQ(*again->last_id, last);
  auto [other, other_fresh] = table.find_or_add("Task-b", kTp);
  EXPECT_TRUE(other_fresh);
  EXPECT_FALSE(other->from_brief) << "never seen: nothing to resume from";
  // A revoke that forgets streams forgets the briefs too (another member may write them meanwhile).
  again->from_brief = false;
  EXPECT_EQ(table.evict(budget), 2u);
  (void)table.revoke({kTp}, /*forget_streams=*/true);
  EXPECT_FALSE(table.find_or_add("Task-a", kTp).first->from_brief);
}

// The briefs' table is counted at its real size (free slots included) and never grows past three
// quarters of the budget: when a shard is full an eighth of its briefs goes, the oldest ones long gone.
TEST(StreamTable, BriefsStayWithinThreeQuartersOfTheBudgetAtTheirTablesRealSize) {
  constexpr size_t kBudget = 256 * 1024;
  const size_t capacity = StreamTable::max_brief_capacity(kBudget);
  ASSERT_EQ(capacity, 6144u) << "the 32-byte slots within 192 KiB";
  StreamTable table(true, 1u << 20);
  const size_t streams = capacity * 4;
  for (size_t i = 0; i < streams; ++i) {
    auto [st, fresh] = table.find_or_add("Task-" + std::to_string(i), kTp);
    ASSERT_TRUE(fresh);
    st->next_revision = i + 1;
    st->last_id = Uuid::v4();
    (void)table.evict(kBudget);
    ASSERT_LE(table.brief_table_bytes(), kBudget / 4 * 3);
    ASSERT_LE(table.cache_bytes(), kBudget) << "states dropped to make room for the briefs' table";
  }
  EXPECT_EQ(table.brief_table_bytes(), capacity * 32) << "the table grew to its share";
  EXPECT_GT(table.briefs(), capacity / 2);
  size_t early = 0, recent = 0;
  for (size_t i = 0; i < 100; ++i) {
    if (table.find_or_add("Task-" + std::to_string(i), kTp).first->from_brief) ++early;
  }
  for (size_t i = streams - 100; i < streams; ++i) {
    auto [st, fresh] = table.find_or_add("Task-" + std::to_string(i), kTp);
    if (!fresh || st->from_brief) ++recent;
    if (st->from_brief) {
      EXPECT_EQ(st->next_revision, i + 1);
    }
  }
  EXPECT_EQ(early, 0u) << "every eighth of every shard was dropped since the first streams";
  EXPECT_GE(recent, 70u) << "the latest streams are cached or briefed (at most an eighth dropped since)";
}

// `first_seen` marks a stream met for the first time in the run, however its state was dropped
// since (with a brief, without one, or its brief dropped when the briefs were full).
TEST(StreamTable, AStreamIsFirstSeenOnceHoweverItsStateWasDropped) {
  constexpr size_t kBudget = 16 * 1024;
  StreamTable table(true, 1u << 20);
  size_t first = 0;
  auto meet = [&](size_t i, bool known) {
    auto [st, fresh] = table.find_or_add("Task-" + std::to_string(i), kTp);
    if (st->first_seen) ++first;
    st->first_seen = false;
    // Known streams leave a brief when dropped; presumed-new ones (no answer yet) do not.
    st->presumed_new = !known;
    if (known) {
      st->next_revision = 1;
      st->last_id = Uuid::v4();
    }
    (void)table.evict(kBudget);
  };
  const size_t streams = StreamTable::max_brief_capacity(kBudget) * 3;  // past what the briefs hold
  for (int pass = 0; pass < 3; ++pass) {
    for (size_t i = 0; i < streams; ++i) meet(i, i % 5 != 0);
  }
  EXPECT_EQ(first, streams) << "each stream counted once in three passes";
}

TEST(BriefTable, FindsWhatItHoldsAfterGrowingAndErasingWithoutTombstones) {
  BriefTable t;
  std::map<uint64_t, uint64_t> model;
  Xorshift next{88172645463325252ULL};
  for (int round = 0; round < 20000; ++round) {
    // (0 and 1 are one key to the table: a hash of 0 is stored as 1.)
    const uint64_t key = 2 + next() % 5000 + (round % 3 == 0 ? 0 : (uint64_t{1} << 62));
    if (next() % 3 == 0) {
      EXPECT_EQ(t.erase(key), model.erase(key) == 1);
    } else {
      t.insert_or_assign(key, uint64_t(round), Uuid{});
      model[key] = uint64_t(round);
    }
    ASSERT_EQ(t.size(), model.size());
    ASSERT_LE(t.size(), BriefTable::max_load(t.capacity()));
  }
  for (const auto& [key, value] : model) {
    const auto* e = t.find(key);
    ASSERT_NE(e, nullptr) << key;
    EXPECT_EQ(e->value, value);
  }
  const size_t capacity = t.capacity();
  // Churn at a steady size: erasing shifts entries back instead of leaving tombstones, so the
  // table never grows for it.
  std::vector<uint64_t> keys;
  for (const auto& [key, value] : model) keys.push_back(key);
  for (size_t k = 0; k < keys.size(); ++k) {
    ASSERT_TRUE(t.erase(keys[k]));
    t.insert_or_assign(keys[k] + 7919, 1, Uuid{});
    ASSERT_TRUE(t.contains(keys[k] + 7919));
  }
  EXPECT_EQ(t.capacity(), capacity);
  EXPECT_EQ(t.size(), keys.size());
  EXPECT_EQ(t.erase_if([](uint64_t) { return true; }), keys.size());
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.find(keys.front() + 7919), nullptr);
}

// The stream table's briefs: sixteen shards by the key's top bits. A growth copies one shard, so
// the table never holds two copies of more than a sixteenth of its limit; a full shard is found
// by the key that would grow it, and an eighth of that shard's briefs goes, a different eighth
// each time.
TEST(ShardedBriefTable, GrowsAShardAtATimeAndDropsEighthsOfTheFullShard) {
  constexpr size_t kLimit = 16 * 1000;
  const size_t part = ShardedBriefTable::shard_limit(kLimit);
  ShardedBriefTable t;
  std::map<uint64_t, uint64_t> model;
  Xorshift next{88172645463325252ULL};
  auto fill_until_full = [&] {
    for (;;) {
      const uint64_t key = next();
      if (model.contains(key)) continue;
      if (t.full_for(key, kLimit)) return key;
      const size_t before = t.capacity();
      t.insert_or_assign(key, key / 3, Uuid{}, kLimit);
      model[key] = key / 3;
      EXPECT_LE(t.capacity() - before, part) << "one shard grew, not the table";
      EXPECT_EQ(t.size(), model.size());
    }
  };
  const uint64_t full_key = fill_until_full();
  EXPECT_LE(t.capacity(), kLimit);
  EXPECT_EQ(t.bytes(), t.capacity() * 32);
  EXPECT_GT(t.size(), kLimit / 2) << "every shard had filled most of its part when the first was full";
  for (const auto& [key, value] : model) {
    const auto* e = t.find(key);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->value, value);
  }
  // Eight drops in that shard take each eighth once: the whole shard, nothing of the others.
  const size_t others = model.size() - BriefTable::max_load(part);
  std::set<uint64_t> eighths;
  size_t dropped = 0;
  for (int k = 0; k < 8; ++k) {
    std::vector<uint64_t> gone;
    const size_t n = t.drop_eighth_of(full_key, [&](uint64_t key) { gone.push_back(key); });
    EXPECT_EQ(n, gone.size());
    EXPECT_GT(n, 0u);
    EXPECT_LT(n, BriefTable::max_load(part) / 4) << "about an eighth";
    for (uint64_t key : gone) {
      EXPECT_EQ(key >> 60, full_key >> 60) << "only the full shard's briefs";
      EXPECT_EQ((key >> 57) & 7, (gone.front() >> 57) & 7) << "one eighth at a time";
      ASSERT_EQ(model.erase(key), 1u);
    }
    eighths.insert((gone.front() >> 57) & 7);
    dropped += n;
    EXPECT_FALSE(t.full_for(full_key, kLimit)) << "its shard has room again";
    EXPECT_EQ(t.size(), model.size());
  }
  EXPECT_EQ(eighths.size(), 8u);
  EXPECT_EQ(dropped, BriefTable::max_load(part));
  EXPECT_EQ(model.size(), others);
  for (const auto& [key, value] : model) ASSERT_TRUE(t.contains(key));
  EXPECT_EQ(t.erase_if([](uint64_t) { return true; }), model.size());
  EXPECT_TRUE(t.empty());
  t.clear();
  EXPECT_EQ(t.bytes(), 0u);
}

// A limit that is not a power of two: the table doubles up to it, then stays there while the
// same number of keys churns, every key found where probing wraps around its end.
TEST(BriefTable, GrowsToALimitThatIsNotAPowerOfTwoAndChurnsThere) {
  constexpr size_t kLimit = 1000;
  BriefTable t;
  std::map<uint64_t, uint64_t> model;
  Xorshift next{2463534242ULL};
  while (t.capacity_after_insert(kLimit) <= kLimit) {
    const uint64_t key = next();
    if (!model.contains(key)) t.insert_or_assign(key, key / 3, Uuid{}, kLimit);
    model[key] = key / 3;
  }
  EXPECT_EQ(t.capacity(), kLimit) << "8, 16, ..., 512, then the limit";
  EXPECT_EQ(t.size(), BriefTable::max_load(kLimit));
  EXPECT_EQ(t.capacity_after_insert(kLimit), 2 * kLimit) << "full at its limit";
  for (int round = 0; round < 20000; ++round) {
    auto victim = model.begin();
    std::advance(victim, long(next() % model.size()));
    ASSERT_TRUE(t.erase(victim->first));
    model.erase(victim);
    const uint64_t key = next();
    t.insert_or_assign(key, uint64_t(round), Uuid{}, kLimit);
    model[key] = uint64_t(round);
    ASSERT_EQ(t.capacity(), kLimit);
  }
  for (const auto& [key, value] : model) {
    const auto* e = t.find(key);
    ASSERT_NE(e, nullptr) << key;
    EXPECT_EQ(e->value, value);
  }
  EXPECT_EQ(t.size(), model.size());
}

TEST(AppendSlots, AParkedStreamGetsTheNextFreeSlotFirstComeFirstServed) {
  AppendSlots<int> slots(1);
  int one = 1, two = 2, three = 3, four = 4;
  EXPECT_TRUE(slots.take_or_park(one));
  EXPECT_FALSE(slots.take_or_park(two));
  EXPECT_FALSE(slots.take_or_park(three));
  EXPECT_EQ(slots.parked(), 2u);
  std::vector<int> taken;
  auto take = [&](int key) -> std::unique_ptr<int> {
    taken.push_back(key);
    return key == 2 ? nullptr : std::make_unique<int>(key);  // stream 2 has nothing any more
  };
  auto next = slots.give(take);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, 3) << "2 had nothing left, so 3 got the slot";
  EXPECT_EQ(taken, (std::vector<int>{2, 3}));
  EXPECT_EQ(slots.parked(), 0u);
  EXPECT_FALSE(slots.give(take)) << "nobody parked: the slot is free again";
  EXPECT_TRUE(slots.take_or_park(four));
}

TEST(AppendSlots, AParkedKeyIsMovedInAndHandedBackWhole) {
  AppendSlots<std::unique_ptr<int>> slots(1);
  auto first = std::make_unique<int>(1);
  ASSERT_TRUE(slots.take_or_park(first));
  EXPECT_TRUE(first) << "a key that got a slot stays with the caller";
  auto second = std::make_unique<int>(2);
  ASSERT_FALSE(slots.take_or_park(second));
  EXPECT_FALSE(second) << "a parked key waits in the slots";
  auto next = slots.give([](std::unique_ptr<int> key) { return key; });
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, 2);
}

TEST(AppendSlots, EachServedKeyWarmsTheNextTwoBeforeItIsTaken) {
  AppendSlots<int> slots(1);
  int keys[] = {0, 1, 2, 3};
  ASSERT_TRUE(slots.take_or_park(keys[0]));
  for (int k = 1; k < 4; ++k) ASSERT_FALSE(slots.take_or_park(keys[k]));
  std::vector<std::string> calls;
  auto take = [&](int key) {
    calls.push_back("take " + std::to_string(key));
    return std::make_unique<int>(key);
  };
  auto warm = [&](const int& next, const int* after) {
    calls.push_back("warm " + std::to_string(next) + (after != nullptr ? "," + std::to_string(*after) : ""));
  };
  for (int k = 1; k < 4; ++k) {
    auto served = slots.give(take, warm);
    ASSERT_TRUE(served);
    EXPECT_EQ(*served, k);
  }
  EXPECT_EQ(calls, (std::vector<std::string>{"warm 2,3", "take 1", "warm 3", "take 2", "take 3"}));
  EXPECT_FALSE(slots.give(take, warm)) << "nobody parked: the slot is free, nothing taken or warmed";
  EXPECT_EQ(calls.size(), 5u);
}

}  // namespace
}  // namespace kingest::pipeline
