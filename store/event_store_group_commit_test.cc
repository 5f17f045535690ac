// The writer's group commit: many appends in few transactions, a failed check that leaves the rest
// of its group alone, the window and the bounds of a group, closing, and reads beside an open group.
#include "store/testing/event_store_fixture.h"

namespace kingest::store::store_testing {
namespace {

TEST_P(EventStoreTest, ThousandConcurrentSingleEventAppendsUseFewTransactions) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 125;
  const auto before = store_->stats();
  std::latch done(kThreads * kPerThread);
  std::atomic<int> successes{0};
  std::mutex mu;
  std::vector<uint64_t> positions;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Half to a stream of their own, half to one shared stream.
        std::string stream = i % 2 == 0 ? "own-" + std::to_string(t) + "-" + std::to_string(i) : "shared";
        ExpectedRevision expected = i % 2 == 0 ? ExpectedRevision{ExpectNoStream{}} : ExpectedRevision{ExpectAny{}};
        store_->append(std::move(stream), expected, {make_event("{}")}, [&](AppendResult r) {
          if (r.status == AppendStatus::kSuccess) successes.fetch_add(1);
          {
            std::lock_guard lk(mu);
            positions.push_back(r.position);
          }
          done.count_down();
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  done.wait();

  const auto after = store_->stats();
  EXPECT_EQ(successes.load(), kThreads * kPerThread);
  EXPECT_EQ(after.appends - before.appends, 1000u);
  EXPECT_EQ(after.events_written - before.events_written, 1000u);
  EXPECT_LE(after.transactions - before.transactions, 50u);
  EXPECT_GE(after.transactions - before.transactions, 1u);
  std::sort(positions.begin(), positions.end());
  EXPECT_EQ(std::adjacent_find(positions.begin(), positions.end()), positions.end()) << "duplicate position";

  auto all = store_->read_all(0, 5000);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1000u);
  auto shared = read_stream("shared");
  EXPECT_EQ(revisions(shared).size(), 496u);  // 62 odd indices per thread (1..123) x 8
  EXPECT_EQ(shared.events.back().revision.value(), 495u);
}

TEST_P(EventStoreTest, FailedCheckInAGroupDoesNotAffectTheOthers) {
  reopen(options(300ms));
  ASSERT_NE(store_, nullptr);
  const auto before = store_->stats();
  auto a_events = make_events(1, "a");
  auto c_events = make_events(1, "c");
  std::vector<std::promise<AppendResult>> promises(5);
  auto answer = [&](int i) { return [&promises, i](AppendResult r) { promises[i].set_value(std::move(r)); }; };
  store_->append("g1", ExpectNoStream{}, a_events, answer(0));            // ok: creates g1 at 0
  store_->append("g1", StreamRevision{5}, make_events(1), answer(1));     // fails
  store_->append("g1", StreamRevision{0}, c_events, answer(2));           // ok: sees the first append
  store_->append("g2", ExpectStreamExists{}, make_events(1), answer(3));  // fails: no g2
  store_->append("g2", ExpectNoStream{}, make_events(2), answer(4));      // ok
  std::vector<AppendResult> r;
  for (auto& p : promises) r.push_back(p.get_future().get());

  EXPECT_EQ(r[0].status, AppendStatus::kSuccess);
  EXPECT_EQ(r[1].status, AppendStatus::kWrongExpectedVersion);
  EXPECT_EQ(rev(r[1]), 0u);
  EXPECT_EQ(r[2].status, AppendStatus::kSuccess);
  EXPECT_EQ(rev(r[2]), 1u);
  EXPECT_EQ(r[3].status, AppendStatus::kWrongExpectedVersion);
  EXPECT_FALSE(r[3].current_revision.has_value());
  EXPECT_EQ(r[4].status, AppendStatus::kSuccess);
  EXPECT_EQ(rev(r[4]), 1u);
  EXPECT_EQ(store_->stats().transactions - before.transactions, 1u);
  EXPECT_EQ(store_->stats().events_written - before.events_written, 4u);

  auto g1 = read_stream("g1");
  ASSERT_EQ(g1.events.size(), 2u);
  EXPECT_EQ(g1.events[0].id, a_events[0].id);
  EXPECT_EQ(g1.events[1].id, c_events[0].id);
  EXPECT_EQ(read_stream("g2").events.size(), 2u);
}

// The writer buffers a group's rows and inserts them many at a time; what it reads back within the
// same group (idempotency checks, an empty append's position) must still see them.
TEST_P(EventStoreTest, RetriesWithinOneGroupSeeTheGroupsEarlierAppends) {
  reopen(options(300ms));
  ASSERT_NE(store_, nullptr);
  auto batch = make_events(3, "a");
  auto any_batch = make_events(2, "y");
  std::vector<std::promise<AppendResult>> promises(6);
  auto answer = [&](int i) { return [&promises, i](AppendResult r) { promises[i].set_value(std::move(r)); }; };
  store_->append("s", ExpectNoStream{}, batch, answer(0));
  store_->append("s", ExpectNoStream{}, batch, answer(1));                  // retry: idempotent
  store_->append("s", StreamRevision{0}, {batch[1], batch[2]}, answer(2));  // retry of a suffix
  store_->append("s", ExpectAny{}, any_batch, answer(3));
  store_->append("s", ExpectAny{}, any_batch, answer(4));  // retry through the recent-id cache
  store_->append("s", StreamRevision{4}, {}, answer(5));   // empty: reports the last event's position
  std::vector<AppendResult> r;
  for (auto& p : promises) r.push_back(p.get_future().get());
  for (size_t i = 0; i < r.size(); ++i) ASSERT_EQ(r[i].status, AppendStatus::kSuccess) << i << ": " << r[i].message;
  EXPECT_FALSE(r[0].idempotent);
  EXPECT_TRUE(r[1].idempotent);
  EXPECT_EQ(r[1].position, r[0].position);
  EXPECT_TRUE(r[2].idempotent);
  EXPECT_EQ(rev(r[2]), 2u);
  EXPECT_FALSE(r[3].idempotent);
  EXPECT_TRUE(r[4].idempotent);
  EXPECT_EQ(r[4].position, r[3].position);
  EXPECT_EQ(rev(r[5]), 4u);
  EXPECT_EQ(r[5].position, r[3].position);
  EXPECT_EQ(store_->stats().transactions, 1u);
  EXPECT_EQ(store_->stats().events_written, 5u);
  EXPECT_EQ(read_stream("s").events.size(), 5u);
}

// New streams' rows are buffered too: a tombstone in the same group must find the row it updates.
TEST_P(EventStoreTest, StreamCreatedAndTombstonedInOneGroup) {
  reopen(options(300ms));
  ASSERT_NE(store_, nullptr);
  std::promise<AppendResult> created;
  store_->append("t", ExpectNoStream{}, make_events(1), [&](AppendResult r) { created.set_value(std::move(r)); });
  auto deleted = std::async(std::launch::async, [&] { return store_->tombstone("t", StreamRevision{0}); });
  EXPECT_EQ(created.get_future().get().status, AppendStatus::kSuccess);
  EXPECT_EQ(deleted.get().status, AppendStatus::kSuccess);
  EXPECT_EQ(store_->stats().transactions, 1u);
  EXPECT_TRUE(read_stream("t").stream_deleted);
  reopen(options());
  ASSERT_NE(store_, nullptr);
  if (GetParam() == Mode::kFile) {
    EXPECT_TRUE(read_stream("t").stream_deleted);
  }
  EXPECT_EQ(store_->append_sync("t", ExpectAny{}, make_events(1)).status,
            GetParam() == Mode::kFile ? AppendStatus::kStreamDeleted : AppendStatus::kSuccess);
}

TEST_P(EventStoreTest, WindowGathersAppendsThatArriveWithinIt) {
  reopen(options(1s));
  ASSERT_NE(store_, nullptr);
  std::latch done(5);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    store_->append("w" + std::to_string(i), ExpectNoStream{}, make_events(1), [&](AppendResult r) {
      EXPECT_EQ(r.status, AppendStatus::kSuccess);
      done.count_down();
    });
    std::this_thread::sleep_for(20ms);  // arrivals spread over the window, not a wait for a result
  }
  const auto enqueued_in = std::chrono::steady_clock::now() - start;
  done.wait();
  if (enqueued_in < 900ms) {  // all five arrived within one window (not so on a badly stalled machine)
    EXPECT_EQ(store_->stats().transactions, 1u);
  }
}

TEST_P(EventStoreTest, GroupCommitMaxBoundsAGroup) {
  reopen(options(200ms, 10));
  ASSERT_NE(store_, nullptr);
  std::latch done(35);
  for (int i = 0; i < 35; ++i) {
    store_->append("s" + std::to_string(i), ExpectNoStream{}, make_events(1), [&](AppendResult) { done.count_down(); });
  }
  done.wait();
  EXPECT_EQ(store_->stats().transactions, 4u);
}

TEST_P(EventStoreTest, GroupCommitMaxBytesBoundsAGroup) {
  StoreOptions o = options(200ms);
  o.group_commit_max_bytes = 1000;
  reopen(o);
  ASSERT_NE(store_, nullptr);
  std::latch done(11);
  for (int i = 0; i < 10; ++i) {
    // 2 (stream) + 300 (data) + 1 (type) + 16 (id) = 319 bytes: three fit in 1000, four do not.
    ProposedEvent e{Uuid::v4(), "T", "", std::string(300, 'd'), ""};
    store_->append("b" + std::to_string(i), ExpectNoStream{}, {e}, [&](AppendResult r) {
      EXPECT_EQ(r.status, AppendStatus::kSuccess);
      done.count_down();
    });
  }
  // An append larger than the limit still goes through, alone.
  ProposedEvent big{Uuid::v4(), "T", "", std::string(5000, 'd'), ""};
  store_->append("big", ExpectNoStream{}, {big}, [&](AppendResult r) {
    EXPECT_EQ(r.status, AppendStatus::kSuccess);
    done.count_down();
  });
  done.wait();
  EXPECT_EQ(store_->stats().transactions, 5u);  // 3 + 3 + 3 + 1 + the big one
  EXPECT_EQ(store_->stats().events_written, 11u);
}

TEST_P(EventStoreTest, CloseDrainsQueuedAppendsThenRejects) {
  reopen(options(std::chrono::seconds(5)));
  ASSERT_NE(store_, nullptr);
  std::vector<std::future<AppendResult>> futures;
  std::vector<std::shared_ptr<std::promise<AppendResult>>> promises;
  for (int i = 0; i < 10; ++i) {
    auto p = std::make_shared<std::promise<AppendResult>>();
    futures.push_back(p->get_future());
    store_->append("s", ExpectAny{}, make_events(1), [p](AppendResult r) { p->set_value(std::move(r)); });
  }
  const auto start = std::chrono::steady_clock::now();
  store_->close();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4)) << "close waited for the window";
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(f.get().status, AppendStatus::kSuccess);
  }
  auto late = store_->append_sync("s", ExpectAny{}, make_events(1));
  EXPECT_EQ(late.status, AppendStatus::kError);
  EXPECT_EQ(late.message, "store closed");
  EXPECT_EQ(store_->tombstone("s", ExpectAny{}).status, AppendStatus::kError);
  EXPECT_FALSE(store_->read("s", ReadFrom::start(), 10, ReadDirection::kForwards).ok());
  store_->close();  // idempotent
}

TEST_P(EventStoreTest, ReadsRunConcurrentlyWithAppends) {
  constexpr int kAppends = 300;
  std::atomic<bool> writing{true};
  std::atomic<int> read_errors{0};
  std::atomic<int> order_errors{0};
  auto reader = [&] {
    size_t last = 0;
    while (writing.load()) {
      auto r = store_->read("s", ReadFrom::start(), 100000, ReadDirection::kForwards);
      auto all = store_->read_all(0, 100000);
      if (!r.ok() || !all.ok()) {
        read_errors.fetch_add(1);
        continue;
      }
      // Appends are never seen half-written: every read sees whole appends of 4 events.
      if (r->events.size() % 4 != 0 || r->events.size() < last) order_errors.fetch_add(1);
      last = r->events.size();
    }
  };
  std::thread r1(reader);
  std::thread r2(reader);
  std::latch done(kAppends);
  for (int i = 0; i < kAppends; ++i) {
    store_->append("s", ExpectAny{}, make_events(4), [&](AppendResult r) {
      EXPECT_EQ(r.status, AppendStatus::kSuccess);
      done.count_down();
    });
    if (i % 50 == 0) std::this_thread::sleep_for(1ms);  // paces the writer so the readers run between groups
  }
  done.wait();
  writing = false;
  r1.join();
  r2.join();
  EXPECT_EQ(read_errors.load(), 0);
  EXPECT_EQ(order_errors.load(), 0);
  EXPECT_EQ(read_stream("s").events.size(), 4u * kAppends);
}

// A read never waits for the group the writer is in the middle of, and sees none of it (in memory
// mode too: the in-memory database is a WAL database on tmpfs, its WAL in memory, with its own read
// connections).
TEST_P(EventStoreTest, ReadsDoNotWaitForAnOpenGroupAndSeeOnlyCommittedData) {
  auto opened = open_sqlite_store();
  ASSERT_NE(opened, nullptr);
  internal::SqliteEventStore& store = *opened;
  auto first = store.append_sync("s", ExpectNoStream{}, make_events(1));
  ASSERT_EQ(first.status, AppendStatus::kSuccess);

  std::promise<void> inside;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> armed{true};
  store.set_before_commit_hook_for_testing([&] {
    if (!armed.exchange(false)) return;
    inside.set_value();
    released.wait();
  });
  std::promise<AppendResult> second;
  store.append("s", StreamRevision{0}, make_events(2), [&](AppendResult r) { second.set_value(std::move(r)); });
  store.append("new", ExpectNoStream{}, make_events(1), [](AppendResult) {});
  inside.get_future().wait();  // the writer now holds the group's transaction open

  auto tail =
      std::async(std::launch::async, [&] { return store.read("s", ReadFrom::end(), 1, ReadDirection::kBackwards); });
  auto all = std::async(std::launch::async, [&] { return store.read_all(0, 100); });
  auto fresh = std::async(std::launch::async,
                          [&] { return store.read("new", ReadFrom::start(), 10, ReadDirection::kForwards); });
  const bool answered = tail.wait_for(10s) == std::future_status::ready &&
                        all.wait_for(10s) == std::future_status::ready &&
                        fresh.wait_for(10s) == std::future_status::ready;
  release.set_value();
  ASSERT_TRUE(answered) << "a read waited for the open group";
  auto t = tail.get();
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->events.size(), 1u);
  EXPECT_EQ(t->events[0].revision.value(), 0u);
  auto a = all.get();
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size(), 1u);
  auto f = fresh.get();
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->stream_found);

  auto r = second.get_future().get();
  ASSERT_EQ(r.status, AppendStatus::kSuccess);
  EXPECT_EQ(rev(r), 2u);
  auto after = store.read("s", ReadFrom::end(), 1, ReadDirection::kBackwards);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->events.size(), 1u);
  EXPECT_EQ(after->events[0].revision.value(), 2u);
  store.close();
}

// Every stream is found by name, in memory mode from the writer's indexes (its database has
// none): created in one group with hundreds of others, tombstoned, tombstoned before any event,
// and missing.
TEST_P(EventStoreTest, StreamsAreFoundByNameWithOrWithoutTheDatabasesIndexes) {
  auto opened = open_sqlite_store();
  ASSERT_NE(opened, nullptr);
  internal::SqliteEventStore& store = *opened;
  constexpr int kStreams = 300;
  std::latch done(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    store.append("s-" + std::to_string(i), ExpectNoStream{}, make_events(i % 3 + 1), [&](AppendResult r) {
      EXPECT_EQ(r.status, AppendStatus::kSuccess) << r.message;
      done.count_down();
    });
  }
  done.wait();
  EXPECT_EQ(store.tombstone("s-7", ExpectAny{}).status, AppendStatus::kSuccess);
  EXPECT_EQ(store.tombstone("never-written", ExpectAny{}).status, AppendStatus::kSuccess);
  for (int i = 0; i < kStreams; ++i) {
    auto r = store.read("s-" + std::to_string(i), ReadFrom::start(), 10, ReadDirection::kForwards);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->stream_found) << i;
    EXPECT_EQ(r->stream_deleted, i == 7) << i;
    EXPECT_EQ(r->events.size(), i == 7 ? 0u : static_cast<size_t>(i % 3 + 1)) << i;
  }
  auto never = store.read("never-written", ReadFrom::start(), 10, ReadDirection::kForwards);
  ASSERT_TRUE(never.ok());
  EXPECT_TRUE(never->stream_found);
  EXPECT_TRUE(never->stream_deleted);
  auto missing = store.read("s-300", ReadFrom::start(), 10, ReadDirection::kForwards);
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->stream_found);

  // The database's own indexes on names and runs: in file mode only.
  sqlite3* raw = open_raw(store, SQLITE_OPEN_READONLY);
  ASSERT_NE(raw, nullptr);
  int indexes = 0;
  ASSERT_EQ(sqlite3_exec(
                raw, "SELECT count(*) FROM sqlite_master WHERE type = 'index'",
                [](void* n, int, char** v, char**) {
                  *static_cast<int*>(n) = std::atoi(v[0]);
                  return 0;
                },
                &indexes, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(raw);
  sqlite3_close(raw);
  EXPECT_EQ(indexes, GetParam() == Mode::kMemory ? 0 : 2);  // sqlite_autoindex_streams_1, events_runs
  store.close();
}

// A failed group leaves nothing behind in either mode; in memory mode the writer's indexes of
// names and runs are then rebuilt from the tables, and reads and appends go on finding every
// stream and event.
TEST_P(EventStoreTest, AFailedGroupLeavesTheStreamsAsTheTableHasThem) {
  auto opened = open_sqlite_store();
  ASSERT_NE(opened, nullptr);
  internal::SqliteEventStore& store = *opened;
  ASSERT_EQ(store.append_sync("gone", ExpectNoStream{}, make_events(2)).status, AppendStatus::kSuccess);
  ASSERT_EQ(store.tombstone("gone", ExpectAny{}).status, AppendStatus::kSuccess);
  const std::vector<ProposedEvent> a_events = make_events(1);
  auto first = store.append_sync("a", ExpectNoStream{}, a_events);
  ASSERT_EQ(first.status, AppendStatus::kSuccess);

  // Take the position the writer will use next, behind its back: its next insert must fail.
  sqlite3* raw = open_raw(store, SQLITE_OPEN_READWRITE);
  ASSERT_NE(raw, nullptr);
  const std::string sql =
      "INSERT INTO events(position, stream_id, revision, event_id, type, content_type, data, "
      "metadata, created) VALUES(" +
      std::to_string(first.position + 1) + ", 999, 0, zeroblob(16), 't', '', x'', x'', 0)";
  ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  sqlite3_close(raw);

  std::promise<AppendResult> pa;
  std::promise<AppendResult> pb;
  store.append("b", ExpectNoStream{}, make_events(1), [&](AppendResult r) { pb.set_value(std::move(r)); });
  store.append("a", StreamRevision{0}, make_events(1), [&](AppendResult r) { pa.set_value(std::move(r)); });
  ASSERT_EQ(pb.get_future().get().status, AppendStatus::kError);
  ASSERT_EQ(pa.get_future().get().status, AppendStatus::kError);

  auto read = [&](const std::string& s) {
    auto r = store.read(s, ReadFrom::start(), 10, ReadDirection::kForwards);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ReadResult{};
  };
  EXPECT_FALSE(read("b").stream_found);
  EXPECT_EQ(read("a").events.size(), 1u);
  EXPECT_TRUE(read("gone").stream_deleted);

  auto again = store.append_sync("a", StreamRevision{0}, make_events(1));
  ASSERT_EQ(again.status, AppendStatus::kSuccess) << again.message;
  EXPECT_EQ(rev(again), 1u);
  EXPECT_EQ(store.append_sync("gone", ExpectAny{}, make_events(1)).status, AppendStatus::kStreamDeleted);
  auto b = store.append_sync("b", ExpectNoStream{}, make_events(1));
  ASSERT_EQ(b.status, AppendStatus::kSuccess) << b.message;
  EXPECT_EQ(rev(b), 0u);
  EXPECT_EQ(read("b").events.size(), 1u);
  EXPECT_EQ(read("a").events.size(), 2u);
  // Its first append again: found where it is (memory mode: through the runs reloaded).
  auto retried = store.append_sync("a", ExpectNoStream{}, a_events);
  ASSERT_EQ(retried.status, AppendStatus::kSuccess) << retried.message;
  EXPECT_TRUE(retried.idempotent);
  EXPECT_EQ(retried.position, first.position);
  auto last = store.read("a", ReadFrom::end(), 1, ReadDirection::kBackwards);
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->events.size(), 1u);
  EXPECT_EQ(last->events[0].revision.value(), 1u);
  store.close();
}

}  // namespace
}  // namespace kingest::store::store_testing
