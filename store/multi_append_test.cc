// The atomic multi-stream append: request order in the log, revisions per stream, checks evaluated
// with the write (all failures reported, nothing written), tombstones, concurrency with plain
// appends, storage errors.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "store/event_store.h"

namespace kingest::store {
namespace {

using namespace std::chrono_literals;

enum class Mode { kFile, kMemory };

std::string mode_name(const ::testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::kFile ? "File" : "Memory";
}

ProposedEvent make_event(const std::string& data) {
  ProposedEvent e;
  e.id = Uuid::v4();
  e.type = "Happened";
  e.content_type = "application/json";
  e.data = data;
  e.metadata = R"({"m":1})";
  return e;
}

std::vector<ProposedEvent> make_events(int n, const std::string& prefix) {
  std::vector<ProposedEvent> v;
  for (int i = 0; i < n; ++i) v.push_back(make_event(prefix + std::to_string(i)));
  return v;
}

// A request over `streams` whose records go to the streams named by `order` (indexes), with data
// "<stream>:<k>" where k counts that stream's records in the request.
MultiAppend request(std::vector<std::string> streams, const std::vector<uint32_t>& order,
                    std::vector<StreamCheck> checks = {}) {
  MultiAppend m;
  std::map<uint32_t, int> count;
  for (uint32_t s : order) {
    m.records.push_back(RecordWrite{s, make_event(streams[s] + ":" + std::to_string(count[s]++))});
  }
  m.streams = std::move(streams);
  m.checks = std::move(checks);
  return m;
}

std::optional<uint64_t> revision_of(const MultiAppendResult& r, uint32_t stream) {
  for (const auto& [index, revision] : r.revisions) {
    if (index == stream) return revision.value();
  }
  return std::nullopt;
}

class MultiAppendTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ki-multi-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    reopen(options());
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  StoreOptions options(std::chrono::microseconds window = 2000us) const {
    StoreOptions o;
    o.in_memory = GetParam() == Mode::kMemory;
    o.path = (dir_ / "events.db").string();
    o.group_commit_window = window;
    return o;
  }

  void reopen(const StoreOptions& o) {
    store_.reset();
    auto s = EventStore::open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }

  ReadResult read_stream(const std::string& stream, ReadFrom from = ReadFrom::start(),
                         ReadDirection dir = ReadDirection::kForwards, uint64_t max = 10000) {
    auto r = store_->read(stream, from, max, dir);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ReadResult{};
  }

  std::vector<RecordedEvent> all() {
    auto r = store_->read_all(0, 1000000);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<RecordedEvent>{};
  }

  static std::vector<std::string> datas(const std::vector<RecordedEvent>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.data);
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<EventStore> store_;
};

TEST_P(MultiAppendTest, InterleavedStreamsKeepTheRequestOrderAndContinueRevisions) {
  auto before = store_->append_sync("a", ExpectNoStream{}, make_events(2, "a:old"));
  ASSERT_EQ(before.status, AppendStatus::kSuccess) << before.message;

  // a b a c c b a: runs of 1, 1, 1, 2, 1, 1 records.
  MultiAppend m = request({"a", "b", "c"}, {0, 1, 0, 2, 2, 1, 0},
                          {{0, StreamRevision{1}}, {1, ExpectNoStream{}}, {2, ExpectAny{}}});
  std::vector<Uuid> ids;
  for (const auto& w : m.records) ids.push_back(w.event.id);
  auto r = store_->append_multi_sync(std::move(m));
  ASSERT_EQ(r.status, AppendStatus::kSuccess) << r.message;
  EXPECT_TRUE(r.violations.empty());
  EXPECT_EQ(r.position, before.position + 7);
  ASSERT_EQ(r.revisions.size(), 3u);
  EXPECT_EQ(revision_of(r, 0), 4u);
  EXPECT_EQ(revision_of(r, 1), 1u);
  EXPECT_EQ(revision_of(r, 2), 1u);

  // The log: the request's records in order, at consecutive positions after the earlier append.
  auto log = all();
  ASSERT_EQ(log.size(), 9u);
  EXPECT_EQ(datas(log), (std::vector<std::string>{"a:old0", "a:old1", "a:0", "b:0", "a:1", "c:0", "c:1", "b:1", "a:2"}));
  for (size_t i = 2; i < log.size(); ++i) {
    EXPECT_EQ(log[i].position, before.position + i - 1);
    EXPECT_EQ(log[i].id, ids[i - 2]);
  }
  EXPECT_EQ(log[2].stream, "a");
  EXPECT_EQ(log[2].revision.value(), 2u);
  EXPECT_EQ(log[7].stream, "b");
  EXPECT_EQ(log[7].revision.value(), 1u);

  // Stream reads walk the runs, in both directions and from any revision.
  auto a = read_stream("a");
  EXPECT_EQ(datas(a.events), (std::vector<std::string>{"a:old0", "a:old1", "a:0", "a:1", "a:2"}));
  for (size_t i = 0; i < a.events.size(); ++i) EXPECT_EQ(a.events[i].revision.value(), i);
  EXPECT_EQ(datas(read_stream("a", ReadFrom::at(StreamRevision{3})).events), (std::vector<std::string>{"a:1", "a:2"}));
  EXPECT_EQ(datas(read_stream("a", ReadFrom::end(), ReadDirection::kBackwards, 2).events),
            (std::vector<std::string>{"a:2", "a:1"}));
  EXPECT_EQ(datas(read_stream("c").events), (std::vector<std::string>{"c:0", "c:1"}));
  EXPECT_EQ(read_stream("b").events.back().position, log[7].position);

  // The writer's state after the request, and the state a reopened store rebuilds from the runs.
  EXPECT_EQ(store_->append_sync("b", StreamRevision{1}, make_events(1, "b:plain")).status, AppendStatus::kSuccess);
  EXPECT_EQ(store_->stats().events_written, 10u);
  if (GetParam() == Mode::kFile) {
    reopen(options());
    ASSERT_NE(store_, nullptr);
  }
  auto next = store_->append_multi_sync(request({"c", "a", "b"}, {0, 1, 2},
                                                {{0, StreamRevision{1}}, {1, StreamRevision{4}}, {2, StreamRevision{2}}}));
  ASSERT_EQ(next.status, AppendStatus::kSuccess) << next.message;
  EXPECT_EQ(revision_of(next, 0), 2u);
  EXPECT_EQ(revision_of(next, 1), 5u);
  EXPECT_EQ(revision_of(next, 2), 3u);
}

TEST_P(MultiAppendTest, AnyFailingCheckWritesNothingAndEveryFailureIsReported) {
  ASSERT_EQ(store_->append_sync("a", ExpectNoStream{}, make_events(1, "a")).status, AppendStatus::kSuccess);
  auto c = store_->append_sync("c", ExpectNoStream{}, make_events(2, "c"));
  ASSERT_EQ(c.status, AppendStatus::kSuccess);
  const auto written = store_->stats().events_written;

  auto r = store_->append_multi_sync(request({"a", "b", "c"}, {0, 1, 2, 1},
                                             {{0, StreamRevision{0}},     // passes
                                              {1, ExpectStreamExists{}},  // b does not exist
                                              {2, StreamRevision{5}},     // c is at 1
                                              {0, ExpectNoStream{}},      // a exists
                                              {2, ExpectAny{}},           // checks nothing
                                              {1, StreamRevision{0}}}));  // b does not exist
  EXPECT_EQ(r.status, AppendStatus::kWrongExpectedVersion);
  ASSERT_EQ(r.violations.size(), 4u) << r.message;
  const std::vector<std::tuple<uint32_t, uint32_t, int64_t>> want = {{1, 1, -1}, {2, 2, 1}, {3, 0, 0}, {5, 1, -1}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r.violations[i].check_index, std::get<0>(want[i]));
    EXPECT_EQ(r.violations[i].stream, std::get<1>(want[i]));
    EXPECT_EQ(r.violations[i].actual, std::get<2>(want[i]));
  }
  EXPECT_TRUE(std::holds_alternative<ExpectStreamExists>(r.violations[0].expected));
  EXPECT_EQ(std::get<StreamRevision>(r.violations[1].expected).value(), 5u);
  EXPECT_NE(r.message.find("4 checks failed"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("c: expected 5, actual 1"), std::string::npos) << r.message;
  EXPECT_TRUE(r.revisions.empty());

  EXPECT_EQ(store_->stats().events_written, written);
  EXPECT_EQ(all().size(), 3u);
  EXPECT_FALSE(read_stream("b").stream_found);
  EXPECT_EQ(read_stream("a").events.size(), 1u);
  // Nothing was taken: the next write continues the log without a gap.
  auto next = store_->append_sync("b", ExpectNoStream{}, make_events(1, "b"));
  ASSERT_EQ(next.status, AppendStatus::kSuccess);
  EXPECT_EQ(next.position, c.position + 1);
}

TEST_P(MultiAppendTest, ChecksWithoutRecordsAndEmptyRequests) {
  ASSERT_EQ(store_->append_sync("a", ExpectNoStream{}, make_events(1, "a")).status, AppendStatus::kSuccess);
  auto ok = store_->append_multi_sync(request({"a", "b"}, {}, {{0, ExpectStreamExists{}}, {1, ExpectNoStream{}}}));
  EXPECT_EQ(ok.status, AppendStatus::kSuccess) << ok.message;
  EXPECT_TRUE(ok.revisions.empty());
  EXPECT_EQ(ok.position, 0u);
  auto bad = store_->append_multi_sync(request({"a", "b"}, {}, {{0, ExpectNoStream{}}}));
  EXPECT_EQ(bad.status, AppendStatus::kWrongExpectedVersion);
  ASSERT_EQ(bad.violations.size(), 1u);
  EXPECT_EQ(bad.violations[0].actual, 0);
  EXPECT_FALSE(read_stream("b").stream_found);
  EXPECT_EQ(store_->stats().events_written, 1u);
}

TEST_P(MultiAppendTest, TombstonedStreams) {
  ASSERT_EQ(store_->append_sync("t", ExpectNoStream{}, make_events(2, "t")).status, AppendStatus::kSuccess);
  ASSERT_EQ(store_->tombstone("t", StreamRevision{1}).status, AppendStatus::kSuccess);
  const auto written = store_->stats().events_written;

  // A record to it that no check names: a violation of its own.
  auto unchecked = store_->append_multi_sync(request({"u", "t"}, {0, 1, 0}, {{0, ExpectNoStream{}}}));
  EXPECT_EQ(unchecked.status, AppendStatus::kStreamDeleted);
  ASSERT_EQ(unchecked.violations.size(), 1u);
  EXPECT_EQ(unchecked.violations[0].check_index, CheckViolation::kNoCheck);
  EXPECT_EQ(unchecked.violations[0].stream, 1u);
  EXPECT_TRUE(std::holds_alternative<ExpectAny>(unchecked.violations[0].expected));
  EXPECT_EQ(unchecked.violations[0].actual, CheckViolation::kTombstoned);
  EXPECT_NE(unchecked.message.find("t: expected any, actual tombstoned"), std::string::npos) << unchecked.message;

  // Named by a check: the check fails, whatever it expects (any, too, when records go there).
  auto checked = store_->append_multi_sync(
      request({"u", "t"}, {0, 1}, {{1, StreamRevision{1}}, {0, StreamRevision{7}}}));
  EXPECT_EQ(checked.status, AppendStatus::kStreamDeleted);
  ASSERT_EQ(checked.violations.size(), 2u);
  EXPECT_EQ(checked.violations[0].check_index, 0u);
  EXPECT_EQ(checked.violations[0].actual, CheckViolation::kTombstoned);
  EXPECT_EQ(checked.violations[1].check_index, 1u);
  EXPECT_EQ(checked.violations[1].actual, CheckViolation::kNoStream);
  auto any = store_->append_multi_sync(request({"t", "u"}, {0, 1}, {{0, ExpectAny{}}}));
  EXPECT_EQ(any.status, AppendStatus::kStreamDeleted);
  ASSERT_EQ(any.violations.size(), 1u);
  EXPECT_EQ(any.violations[0].check_index, 0u);

  // A check on it without records: the expectation decides (`any` checks nothing).
  auto only_check = store_->append_multi_sync(request({"t", "u"}, {1}, {{0, ExpectNoStream{}}}));
  EXPECT_EQ(only_check.status, AppendStatus::kWrongExpectedVersion);
  ASSERT_EQ(only_check.violations.size(), 1u);
  EXPECT_EQ(only_check.violations[0].actual, CheckViolation::kTombstoned);
  EXPECT_EQ(store_->stats().events_written, written);
  EXPECT_FALSE(read_stream("u").stream_found);

  auto fine = store_->append_multi_sync(request({"t", "u"}, {1}, {{0, ExpectAny{}}}));
  EXPECT_EQ(fine.status, AppendStatus::kSuccess) << fine.message;
  EXPECT_EQ(revision_of(fine, 1), 0u);
}

TEST_P(MultiAppendTest, InvalidRequestsAreAnsweredAtOnce) {
  MultiAppend m = request({"a"}, {0});
  m.records[0].stream = 1;
  auto r = store_->append_multi_sync(std::move(m));
  EXPECT_EQ(r.status, AppendStatus::kError);
  EXPECT_NE(r.message.find("record 0 names stream 1 of 1"), std::string::npos) << r.message;
  r = store_->append_multi_sync(request({"a"}, {0}, {{3, ExpectAny{}}}));
  EXPECT_EQ(r.status, AppendStatus::kError);
  EXPECT_NE(r.message.find("check 0"), std::string::npos) << r.message;
  r = store_->append_multi_sync(request({"a", ""}, {0}));
  EXPECT_EQ(r.status, AppendStatus::kError);
  EXPECT_NE(r.message.find("empty name"), std::string::npos) << r.message;
  EXPECT_EQ(store_->stats().events_written, 0u);
}

// Records may borrow their bytes from the caller (a server's request buffer) instead of owning
// them: written the same way, read back byte for byte, the buffer owned by the callback.
TEST_P(MultiAppendTest, BorrowedRecordsAreWrittenLikeOwnedOnes) {
  auto before = store_->append_sync("b", ExpectNoStream{}, make_events(1, "b:old"));
  ASSERT_EQ(before.status, AppendStatus::kSuccess) << before.message;
  auto buffer = std::make_shared<std::string>();
  struct Span {
    size_t start, size;
  };
  std::vector<std::pair<Span, Span>> spans;  // data, metadata
  for (int i = 0; i < 5; ++i) {
    const std::string data = "{\"n\":" + std::to_string(i) + "}";
    const std::string metadata = "{\"k\":\"" + std::string(static_cast<size_t>(i) * 40, 'x') + "\"}";
    const Span d{buffer->size(), data.size()};
    buffer->append(data);
    const Span m{buffer->size(), metadata.size()};
    buffer->append(metadata);
    spans.emplace_back(d, m);
  }
  const std::string_view bytes(*buffer);
  MultiAppend m;
  m.streams = {"a", "b"};
  std::vector<Uuid> ids;
  const uint32_t order[] = {0, 1, 1, 0, 0};
  for (size_t i = 0; i < spans.size(); ++i) {
    ids.push_back(Uuid::v4());
    m.record_views.push_back(RecordView{order[i], ids.back(), i % 2 == 0 ? "Even" : "Odd",
                                        i % 2 == 0 ? "application/json" : "application/octet-stream",
                                        bytes.substr(spans[i].first.start, spans[i].first.size),
                                        bytes.substr(spans[i].second.start, spans[i].second.size)});
  }
  m.checks = {{0, ExpectNoStream{}}, {1, StreamRevision{0}}};
  std::promise<MultiAppendResult> answered;
  store_->append_multi(std::move(m), [buffer = std::move(buffer), &answered](MultiAppendResult r) {
    answered.set_value(std::move(r));
  });
  const MultiAppendResult r = answered.get_future().get();
  ASSERT_EQ(r.status, AppendStatus::kSuccess) << r.message;
  EXPECT_EQ(revision_of(r, 0), 2u);
  EXPECT_EQ(revision_of(r, 1), 2u);

  const auto log = all();
  ASSERT_EQ(log.size(), 6u);
  for (size_t i = 0; i < spans.size(); ++i) {
    const RecordedEvent& e = log[i + 1];
    EXPECT_EQ(e.stream, order[i] == 0 ? "a" : "b");
    EXPECT_EQ(e.id, ids[i]);
    EXPECT_EQ(e.type, i % 2 == 0 ? "Even" : "Odd");
    EXPECT_EQ(e.content_type, i % 2 == 0 ? "application/json" : "application/octet-stream");
    EXPECT_EQ(e.data, "{\"n\":" + std::to_string(i) + "}");
    EXPECT_EQ(e.metadata, "{\"k\":\"" + std::string(i * 40, 'x') + "\"}");
  }
  EXPECT_EQ(datas(read_stream("a").events), (std::vector<std::string>{R"({"n":0})", R"({"n":3})", R"({"n":4})"}));
  EXPECT_EQ(datas(read_stream("b").events), (std::vector<std::string>{"b:old0", R"({"n":1})", R"({"n":2})"}));
}

TEST_P(MultiAppendTest, BorrowedRecordsAreCheckedLikeOwnedOnes) {
  MultiAppend both = request({"a"}, {0});
  both.record_views.push_back(RecordView{0, Uuid::v4(), "T", "application/json", "{}", "{}"});
  auto r = store_->append_multi_sync(std::move(both));
  EXPECT_EQ(r.status, AppendStatus::kError);
  EXPECT_NE(r.message.find("both records and record views"), std::string::npos) << r.message;
  MultiAppend out_of_range;
  out_of_range.streams = {"a"};
  out_of_range.record_views.push_back(RecordView{1, Uuid::v4(), "T", "application/json", "{}", "{}"});
  r = store_->append_multi_sync(std::move(out_of_range));
  EXPECT_EQ(r.status, AppendStatus::kError);
  EXPECT_NE(r.message.find("record 0 names stream 1 of 1"), std::string::npos) << r.message;
  EXPECT_EQ(store_->stats().events_written, 0u);
}

// Stream names may be borrowed too, with their hashes taken by the caller (a server that indexed
// its request's streams): new and known streams are written under those names, a failing check
// names its stream, and the names are read back (after a reopen, for a file).
TEST_P(MultiAppendTest, BorrowedStreamNamesWithTheirHashes) {
  auto before = store_->append_sync("Order-b", ExpectNoStream{}, make_events(1, "b:old"));
  ASSERT_EQ(before.status, AppendStatus::kSuccess) << before.message;
  auto names = std::make_shared<std::string>("Order-aOrder-bOrder-c");
  const std::string_view text(*names);
  auto borrowed = [&](std::vector<uint32_t> order) {
    MultiAppend m;
    m.stream_views = {text.substr(0, 7), text.substr(7, 7), text.substr(14, 7)};
    for (std::string_view n : m.stream_views) m.stream_hashes.push_back(EventStore::stream_hash(n));
    for (uint32_t s : order) m.record_views.push_back(RecordView{s, Uuid::v4(), "T", "application/json", "{}", "{}"});
    return m;
  };
  auto send = [&](MultiAppend m) {
    std::promise<MultiAppendResult> answered;
    store_->append_multi(std::move(m), [names, &answered](MultiAppendResult r) { answered.set_value(std::move(r)); });
    return answered.get_future().get();
  };
  MultiAppend stale = borrowed({0, 1});
  stale.checks = {{1, ExpectNoStream{}}};
  MultiAppendResult r = send(std::move(stale));
  EXPECT_EQ(r.status, AppendStatus::kWrongExpectedVersion);
  EXPECT_NE(r.message.find("Order-b: expected no_stream, actual 0"), std::string::npos) << r.message;

  MultiAppend ok = borrowed({0, 1, 2, 0});
  ok.checks = {{0, ExpectNoStream{}}, {1, StreamRevision{0}}, {2, ExpectNoStream{}}};
  r = send(std::move(ok));
  ASSERT_EQ(r.status, AppendStatus::kSuccess) << r.message;
  EXPECT_EQ(revision_of(r, 0), 1u);
  EXPECT_EQ(revision_of(r, 1), 1u);
  EXPECT_EQ(revision_of(r, 2), 0u);
  names->assign(names->size(), '?');  // the store kept no view of the caller's names

  if (GetParam() == Mode::kFile) reopen(options());  // a memory store's events end with it
  EXPECT_EQ(read_stream("Order-a").events.size(), 2u);
  EXPECT_EQ(read_stream("Order-b").events.size(), 2u);
  EXPECT_EQ(read_stream("Order-c").events.size(), 1u);
  std::vector<std::string> streams;
  for (const RecordedEvent& e : all()) streams.push_back(e.stream);
  EXPECT_EQ(streams, (std::vector<std::string>{"Order-b", "Order-a", "Order-b", "Order-c", "Order-a"}));
  // And appended to by name afterwards, through the store's own hashing.
  EXPECT_EQ(store_->append_sync("Order-c", StreamRevision{0}, make_events(1, "c")).status, AppendStatus::kSuccess);
}

TEST_P(MultiAppendTest, BorrowedStreamNamesAreCheckedLikeOwnedOnes) {
  MultiAppend both = request({"a"}, {0});
  both.stream_views = {"a"};
  auto r = store_->append_multi_sync(std::move(both));
  EXPECT_EQ(r.status, AppendStatus::kError);
  EXPECT_NE(r.message.find("both stream names and stream name views"), std::string::npos) << r.message;
  MultiAppend hashes = request({"a", "b"}, {0, 1});
  hashes.stream_hashes = {EventStore::stream_hash("a")};
  r = store_->append_multi_sync(std::move(hashes));
  EXPECT_EQ(r.status, AppendStatus::kError);
  EXPECT_NE(r.message.find("1 stream hashes for 2 streams"), std::string::npos) << r.message;
  MultiAppend empty;
  empty.stream_views = {"a", ""};
  empty.record_views.push_back(RecordView{0, Uuid::v4(), "T", "application/json", "{}", "{}"});
  r = store_->append_multi_sync(std::move(empty));
  EXPECT_EQ(r.status, AppendStatus::kError);
  EXPECT_NE(r.message.find("stream 1 has an empty name"), std::string::npos) << r.message;
  EXPECT_EQ(store_->stats().events_written, 0u);
}

// In one group, plain appends and multi-stream requests each see the state the earlier ones left.
TEST_P(MultiAppendTest, JoinsTheGroupCommitInOrder) {
  reopen(options(300ms));
  ASSERT_NE(store_, nullptr);
  std::promise<AppendResult> p0;
  std::promise<MultiAppendResult> p1;
  std::promise<AppendResult> p2;
  std::promise<MultiAppendResult> p3;
  store_->append("a", ExpectNoStream{}, make_events(1, "a"), [&](AppendResult r) { p0.set_value(std::move(r)); });
  store_->append_multi(request({"a", "b"}, {0, 1, 0}, {{0, StreamRevision{0}}, {1, ExpectNoStream{}}}),
                       [&](MultiAppendResult r) { p1.set_value(std::move(r)); });
  store_->append("a", StreamRevision{2}, make_events(1, "x"), [&](AppendResult r) { p2.set_value(std::move(r)); });
  store_->append_multi(request({"b"}, {0}, {{0, ExpectNoStream{}}}),  // b exists by now
                       [&](MultiAppendResult r) { p3.set_value(std::move(r)); });
  auto r0 = p0.get_future().get();
  auto r1 = p1.get_future().get();
  auto r2 = p2.get_future().get();
  auto r3 = p3.get_future().get();
  EXPECT_EQ(r0.status, AppendStatus::kSuccess);
  ASSERT_EQ(r1.status, AppendStatus::kSuccess) << r1.message;
  EXPECT_EQ(revision_of(r1, 0), 2u);
  EXPECT_EQ(r2.status, AppendStatus::kSuccess) << r2.message;
  ASSERT_TRUE(r2.current_revision.has_value());
  EXPECT_EQ(r2.current_revision->value(), 3u);
  EXPECT_EQ(r2.position, r1.position + 1);
  EXPECT_EQ(r3.status, AppendStatus::kWrongExpectedVersion);
  ASSERT_EQ(r3.violations.size(), 1u);
  EXPECT_EQ(r3.violations[0].actual, 0);
  EXPECT_EQ(store_->stats().transactions, 1u);
}

// A request is one unit of the group commit: one larger than group_commit_max_bytes goes through
// alone and whole, never split across transactions.
TEST_P(MultiAppendTest, ARequestIsNeverSplitAcrossTransactions) {
  StoreOptions o = options(300ms);
  o.group_commit_max_bytes = 1000;
  reopen(o);
  ASSERT_NE(store_, nullptr);
  std::promise<AppendResult> before;
  std::promise<MultiAppendResult> big;
  std::promise<AppendResult> after;
  store_->append("x", ExpectNoStream{}, {make_event(std::string(300, 'x'))},
                 [&](AppendResult r) { before.set_value(std::move(r)); });
  MultiAppend m = request({"a", "b", "c"}, {0, 1, 2, 0, 1, 2, 0, 1, 2, 0});
  for (auto& w : m.records) w.event.data.append(300, 'd');  // ~3,600 bytes in all
  store_->append_multi(std::move(m), [&](MultiAppendResult r) { big.set_value(std::move(r)); });
  store_->append("y", ExpectNoStream{}, {make_event(std::string(300, 'y'))},
                 [&](AppendResult r) { after.set_value(std::move(r)); });
  const AppendResult r0 = before.get_future().get();
  const MultiAppendResult r1 = big.get_future().get();
  const AppendResult r2 = after.get_future().get();
  ASSERT_EQ(r0.status, AppendStatus::kSuccess);
  ASSERT_EQ(r1.status, AppendStatus::kSuccess) << r1.message;
  ASSERT_EQ(r2.status, AppendStatus::kSuccess);
  EXPECT_EQ(r1.position, r0.position + 10);
  EXPECT_EQ(r2.position, r1.position + 1);
  EXPECT_EQ(store_->stats().transactions, 3u);
  EXPECT_EQ(revision_of(r1, 0), 3u);
}

// Multi-stream requests and plain appends to the same streams from several threads: every stream's
// revisions stay gapless, every request's records are consecutive in the log, in request order.
TEST_P(MultiAppendTest, ConcurrentWithPlainAppendsToTheSameStreams) {
  constexpr int kStreams = 4;
  constexpr int kPlainThreads = 3;
  constexpr int kPlainPerThread = 200;
  constexpr int kMultiThreads = 2;
  constexpr int kMultiPerThread = 100;
  const std::vector<std::string> names = {"s0", "s1", "s2", "s3"};
  std::latch done(kPlainThreads * kPlainPerThread + kMultiThreads * kMultiPerThread);
  std::atomic<int> failures{0};
  std::mutex mu;
  std::vector<std::pair<uint64_t, std::vector<Uuid>>> requests;  // last position, record ids
  std::vector<std::thread> threads;
  for (int t = 0; t < kPlainThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPlainPerThread; ++i) {
        store_->append(names[(t + i) % kStreams], ExpectAny{}, make_events(1 + i % 3, "p"), [&](AppendResult r) {
          if (r.status != AppendStatus::kSuccess) failures.fetch_add(1);
          done.count_down();
        });
      }
    });
  }
  for (int t = 0; t < kMultiThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kMultiPerThread; ++i) {
        std::vector<uint32_t> order;
        for (int k = 0; k < 6; ++k) order.push_back(static_cast<uint32_t>((t + i + k * (k + 1) / 2) % kStreams));
        MultiAppend m = request(names, order, {{static_cast<uint32_t>(i % kStreams), ExpectStreamExists{}}});
        if (i < 4) m.checks.clear();  // the first requests may create the streams
        std::vector<Uuid> ids;
        for (const auto& w : m.records) ids.push_back(w.event.id);
        store_->append_multi(std::move(m), [&, ids = std::move(ids)](MultiAppendResult r) {
          if (r.status == AppendStatus::kSuccess) {
            std::lock_guard lk(mu);
            requests.emplace_back(r.position, ids);
          } else if (r.status != AppendStatus::kWrongExpectedVersion) {  // the check may precede a first write
            failures.fetch_add(1);
          }
          done.count_down();
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  done.wait();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(requests.size(), static_cast<size_t>(kMultiThreads * (kMultiPerThread - kStreams)));

  auto log = all();
  std::map<std::string, uint64_t> next_revision;
  std::map<uint64_t, size_t> index_of;  // position → log index
  for (size_t i = 0; i < log.size(); ++i) {
    if (i > 0) {
      EXPECT_GT(log[i].position, log[i - 1].position);
    }
    EXPECT_EQ(log[i].revision.value(), next_revision[log[i].stream]++) << log[i].stream;
    index_of[log[i].position] = i;
  }
  for (const auto& [last, ids] : requests) {
    ASSERT_TRUE(index_of.contains(last));
    const size_t end = index_of[last];
    ASSERT_GE(end + 1, ids.size());
    for (size_t k = 0; k < ids.size(); ++k) {
      const RecordedEvent& e = log[end + 1 - ids.size() + k];
      EXPECT_EQ(e.id, ids[k]);
      EXPECT_EQ(e.position, last + 1 - ids.size() + k);
    }
  }
  for (const auto& name : names) {
    auto page = read_stream(name);
    EXPECT_EQ(page.events.size(), next_revision[name]);
    for (size_t i = 0; i < page.events.size(); ++i) EXPECT_EQ(page.events[i].revision.value(), i);
  }
}

// A storage failure fails the request (and its group) with nothing written; the store recovers.
// (File only: the fault is injected through a second connection to the file.)
class MultiAppendFileTest : public MultiAppendTest {};

TEST_P(MultiAppendFileTest, StorageErrorWritesNothingAndTheStoreRecovers) {
  auto first = store_->append_sync("a", ExpectNoStream{}, make_events(1, "a"));
  ASSERT_EQ(first.status, AppendStatus::kSuccess);
  // Take a position the request will need, behind the writer's back.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "events.db").string().c_str(), &raw), SQLITE_OK);
  const std::string sql = "INSERT INTO events(position, stream_id, revision, event_id, type, content_type, data, "
                          "metadata, created) VALUES(" + std::to_string(first.position + 3) +
                          ", 999, 0, zeroblob(16), 't', '', x'', x'', 0)";
  ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  sqlite3_close(raw);

  auto r = store_->append_multi_sync(request({"a", "b"}, {0, 1, 0, 1}, {{0, StreamRevision{0}}}));
  EXPECT_EQ(r.status, AppendStatus::kError);
  EXPECT_NE(r.message.find("constraint"), std::string::npos) << r.message;
  EXPECT_FALSE(read_stream("b").stream_found);
  EXPECT_EQ(read_stream("a").events.size(), 1u);
  EXPECT_EQ(store_->stats().events_written, 1u);

  // The writer forgot what the failed request did (and re-read its counters past the foreign row):
  // the same request succeeds from the same revisions.
  auto again = store_->append_multi_sync(request({"a", "b"}, {0, 1, 0, 1}, {{0, StreamRevision{0}}}));
  ASSERT_EQ(again.status, AppendStatus::kSuccess) << again.message;
  EXPECT_EQ(revision_of(again, 0), 2u);
  EXPECT_EQ(revision_of(again, 1), 1u);
  EXPECT_EQ(again.position, first.position + 3 + 4);
  EXPECT_EQ(datas(read_stream("b").events), (std::vector<std::string>{"b:0", "b:1"}));
}

TEST_P(MultiAppendTest, ClosedStoreAnswersAtOnce) {
  store_->close();
  auto r = store_->append_multi_sync(request({"a"}, {0}));
  EXPECT_EQ(r.status, AppendStatus::kError);
  EXPECT_EQ(r.message, "store closed");
}

INSTANTIATE_TEST_SUITE_P(Modes, MultiAppendTest, ::testing::Values(Mode::kFile, Mode::kMemory), mode_name);
INSTANTIATE_TEST_SUITE_P(Modes, MultiAppendFileTest, ::testing::Values(Mode::kFile), mode_name);

}  // namespace
}  // namespace kingest::store
